"""Issued certificates on a real lab host: requested -> active, the PKCS#12 and its hand-off.

The lab CA (lab/ca.py) plays NHS England: it signs the CSR the first run wrote to requests/,
exactly as ops would commit the certificate NHS England sends back.
"""

from __future__ import annotations

import base64
import secrets
import shlex
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from lab.ca import Authority, LabCA, new_key
from lab.project import endpoint, fqdn

ENDPOINTS = [endpoint("CRT01"), endpoint("CRT02")]
ACTIVE, WAITING = fqdn("CRT01"), fqdn("CRT02")
KEY_DIR = f"/etc/bars-receiver/{ACTIVE}"
APP_DIR = "/etc/bars-receiver-app"
HANDOFF = f"{APP_DIR}/{ACTIVE}"
PFX, PFX_PASS, KESTREL_ENV = f"{HANDOFF}/receiver.pfx", f"{HANDOFF}/pfx.pass", f"{HANDOFF}/kestrel.env"
SECRET = "pfx-" + secrets.token_hex(12)  # the CI secret, random for each test run
SECRET_ENV = {"BARS_TEST_PFX_PASSWORD": SECRET}
HANDOFF_SETTINGS = {"pfx_profile": "legacy", "pfx_password_env": "BARS_TEST_PFX_PASSWORD", "app_group": "barsapp"}


def on_host(lab, command: str) -> str:
    return lab.ssh(command).stdout


def stat(lab, *paths: str) -> list[str]:
    return on_host(lab, "stat -L -c '%a %U %G' " + " ".join(paths)).splitlines()  # through live/ links


def fetch(lab, path: str) -> bytes:
    """A copy of a host file, for this test only (the deploy never moves secrets off the host)."""
    return base64.b64decode(on_host(lab, f"base64 -w0 {path}"))


def host_snapshot(lab, times: bool = True) -> str:
    """Every file under /etc with its mode, owner, inode, mtime (optional) and content hash."""
    fields = "%p %m %u %g %s %i %T@" if times else "%p %m %u %g %s %i"
    return on_host(lab, f"find /etc -xdev \\( -type f -o -type d -o -type l \\) -printf '{fields}\\n' | sort;"
                        " find /etc -xdev -type f -exec sha256sum {} + | sort")


def pfx_identity(lab) -> str:
    """Inode, mtime and hash of the PFX: a rebuild changes all three."""
    return on_host(lab, f"stat -c '%i %Y' {PFX}; sha256sum {PFX}")


def status(run, name: str) -> list[str]:
    """The row for ``name`` in the status table printed at the end of the run."""
    table = run.stderr[run.stderr.rindex("--> BaRS receiver endpoints:"):]
    for line in table.splitlines():
        if f" {name} " in line:
            return line.split()
    raise AssertionError(f"no status row for {name} in:\n{table}")


def csr_path(project, name: str = ACTIVE):
    return project.root / "requests" / "test" / f"{name}.csr"


def cert_path(project, name: str = ACTIVE):
    return project.root / "files" / "certs" / "test" / f"{name}.cer"


class ProcessWatcher:
    """Polls ``ps -eo args`` on the host from a background thread while the deploy runs."""

    def __init__(self, lab):
        self.lab = lab
        self.samples: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            result = self.lab.ssh("ps -eo args", check=False, timeout=30)
            self.samples.append(result.stdout)

    def __enter__(self):
        self.samples.append(on_host(self.lab, "ps -eo args"))
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)
        self.samples.append(on_host(self.lab, "ps -eo args"))


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> LabCA:
    return LabCA(tmp_path_factory.mktemp("lab-ca"))


@pytest.fixture(scope="module")
def requested(project, lab):
    lab.ssh("groupadd -f barsapp")  # the application's group; its own install would make it
    project.write_inventory(ENDPOINTS)
    return project.deploy()


@pytest.fixture(scope="module")
def activated(requested, project, ca):
    ca.sign_csr_file(csr_path(project))
    return project.deploy()


@pytest.fixture(scope="module")
def handed_off(activated, project, lab):
    project.write_inventory(ENDPOINTS, settings=HANDOFF_SETTINGS)
    with ProcessWatcher(lab) as watcher:
        run = project.deploy("-vvv", env=SECRET_ENV)
    return run, watcher.samples


# ---------------------------------------------------------------- requested

def test_without_a_certificate_the_endpoint_stays_requested(requested, project, lab):
    assert requested.returncode == 0
    assert status(requested, ACTIVE)[2:5] == ["requested", "-", "-"]
    assert status(requested, WAITING)[2] == "requested"
    assert csr_path(project).exists() and csr_path(project, WAITING).exists()
    assert lab.ssh(f"test -e {KEY_DIR}/cert.pem || test -e {APP_DIR}", check=False).returncode == 1


# ---------------------------------------------------------------- active

def test_signed_certificate_activates_the_endpoint(activated, project, lab):
    leaf = x509.load_pem_x509_certificates(cert_path(project).read_bytes())[0]
    row = status(activated, ACTIVE)
    assert row[2:4] == ["active", f"{leaf.not_valid_after_utc:%Y-%m-%d}"] and int(row[4]) >= 363
    assert status(activated, WAITING)[2] == "requested"
    assert x509.load_pem_x509_certificate(fetch(lab, f"{KEY_DIR}/cert.pem")) == leaf
    chain = x509.load_pem_x509_certificates(fetch(lab, f"{KEY_DIR}/chain.pem"))
    assert chain[0] == leaf and [c.subject.rfc4514_string() for c in chain[1:]] == [leaf.issuer.rfc4514_string()]
    verified = lab.ssh(f"cd {KEY_DIR} && openssl verify -CAfile ca.pem -untrusted chain.pem cert.pem", check=False)
    assert verified.stdout.strip() == "cert.pem: OK", verified.stderr
    assert lab.ssh(f"test -e {APP_DIR}/{WAITING}", check=False).returncode == 1  # requested: no PFX


def test_pfx_opens_with_its_password_and_holds_the_key_certificate_and_chain(activated, lab):
    key, cert, extra = pkcs12.load_key_and_certificates(fetch(lab, PFX), fetch(lab, PFX_PASS).strip())
    host_public = on_host(lab, f"openssl pkey -in {KEY_DIR}/key.pem -pubout").encode()
    assert key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) == host_public
    assert cert == x509.load_pem_x509_certificate(fetch(lab, f"{KEY_DIR}/cert.pem"))
    assert extra == x509.load_pem_x509_certificates(fetch(lab, f"{KEY_DIR}/chain.pem"))[1:]
    info = lab.ssh(f"openssl pkcs12 -in {PFX} -passin file:{PFX_PASS} -info -noout -legacy").stderr
    assert "PBES2, PBKDF2, AES-256-CBC" in info and "MAC: sha256" in info  # the default profile: modern
    assert "TripleDES" not in info
    env = fetch(lab, KESTREL_ENV).decode()
    live_pfx = on_host(lab, f"readlink -f {PFX}").strip()  # in the hand-off's live generation
    assert live_pfx.startswith(f"{HANDOFF}/archive/") and on_host(lab, f"readlink {HANDOFF}/live").startswith("archive/")
    assert env == (f"Kestrel__Certificates__Default__Path={live_pfx}\n"
                   f'Kestrel__Certificates__Default__Password="{fetch(lab, PFX_PASS).decode().strip()}"\n')


def test_without_app_group_everything_is_root_only(activated, lab):
    assert stat(lab, KEY_DIR, f"{KEY_DIR}/key.pem", f"{KEY_DIR}/pfx.inputs") == ["700 root root", "600 root root", "600 root root"]
    assert stat(lab, APP_DIR, HANDOFF) == ["700 root root"] * 2
    assert stat(lab, PFX, PFX_PASS, KESTREL_ENV) == ["600 root root"] * 3


def test_second_run_changes_nothing_and_does_not_rebuild_the_pfx(activated, project, lab):
    before = pfx_identity(lab)
    run = project.deploy()
    assert run.changed == 0, run.output[-3000:]
    assert pfx_identity(lab) == before
    assert status(run, ACTIVE)[2] == "active"


def test_the_host_itself_refuses_a_certificate_for_another_key(activated, project, lab, ca):
    """The switch script compares public keys on the host before it renames anything."""
    from bars_receiver.scripts import script_text

    other = ca.authority.issue_client(ACTIVE)[1].decode()  # right CN and CA, another key: leaf + sub CA
    leaf = other[:other.index("-----END CERTIFICATE-----\n") + len("-----END CERTIFICATE-----\n")]
    before = host_snapshot(lab, times=False)  # staging a file here touches the directory's mtime
    lab.ssh(f"sh -c {shlex.quote(script_text('prepare'))} bars {KEY_DIR} live")
    for name, text in (("cert.pem", leaf), ("chain.pem", other), ("ca.pem", other)):
        lab.ssh(f"cat > {KEY_DIR}/.staging/gen/{name} <<'EOF'\n{text}EOF")
    result = lab.ssh(f"sh -c {shlex.quote(script_text('switch'))} bars {KEY_DIR} live", check=False)
    assert result.returncode == 1
    assert "is not for live/key.pem" in result.stderr and "nothing was switched" in result.stderr
    assert host_snapshot(lab, times=False) == before


# ---------------------------------------------------------------- hand-off: legacy, CI secret, app group

def test_secret_never_appears_in_output_or_process_list(handed_off):
    run, samples = handed_off
    assert run.returncode == 0 and run.changed > 0
    from bars_receiver.shipping import script_hash

    assert f"{script_hash('build_pfx')}.sh" in run.output  # -vvv really printed the commands (the PKCS#12 build's)
    assert SECRET not in run.output
    assert len(samples) >= 2 and all("ps -eo args" in sample for sample in samples)
    assert not [sample for sample in samples if SECRET in sample]


def test_legacy_pfx_opens_with_the_ci_secret(handed_off, lab):
    key, cert, extra = pkcs12.load_key_and_certificates(fetch(lab, PFX), SECRET.encode())
    assert key is not None and cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ACTIVE
    assert len(extra) == 1
    info = lab.ssh(f"openssl pkcs12 -in {PFX} -passin file:{PFX_PASS} -info -noout -legacy").stderr
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info and "MAC: sha1" in info and "AES" not in info
    assert fetch(lab, PFX_PASS).decode() == SECRET + "\n"
    assert f'Kestrel__Certificates__Default__Password="{SECRET}"' in fetch(lab, KESTREL_ENV).decode()


def test_app_group_can_read_the_pfx_and_nobody_else_can(handed_off, lab):
    assert stat(lab, APP_DIR, HANDOFF) == ["750 root barsapp"] * 2
    assert stat(lab, PFX, PFX_PASS, KESTREL_ENV) == ["640 root barsapp"] * 3
    assert stat(lab, KEY_DIR, f"{KEY_DIR}/key.pem", f"{KEY_DIR}/pfx.inputs") == ["700 root root", "600 root root", "600 root root"]
    gid = on_host(lab, "getent group barsapp | cut -d: -f3").strip()
    as_app = f"setpriv --reuid=65534 --regid={gid} --clear-groups"
    as_stranger = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    for path in (PFX, PFX_PASS, KESTREL_ENV):
        assert lab.ssh(f"{as_app} head -c1 {path} >/dev/null", check=False).returncode == 0, path
        assert lab.ssh(f"{as_stranger} head -c1 {path} >/dev/null", check=False).returncode != 0, path
    assert lab.ssh(f"{as_app} head -c1 {KEY_DIR}/key.pem", check=False).returncode != 0


def test_unchanged_run_with_the_ci_secret_changes_nothing(handed_off, project, lab):
    before = pfx_identity(lab)
    run = project.deploy(env=SECRET_ENV)
    assert run.changed == 0, run.output[-3000:]
    assert pfx_identity(lab) == before


def test_rotated_ci_secret_rebuilds_the_pfx(handed_off, project, lab):
    before = pfx_identity(lab)
    rotated = SECRET + "-rotated"
    run = project.deploy(env={"BARS_TEST_PFX_PASSWORD": rotated})
    assert run.changed >= 1 and rotated not in run.output
    assert pfx_identity(lab) != before
    assert pkcs12.load_key_and_certificates(fetch(lab, PFX), rotated.encode())[0] is not None
    assert project.deploy(env=SECRET_ENV).changed >= 1  # and back, for the tests that follow
    assert pkcs12.load_key_and_certificates(fetch(lab, PFX), SECRET.encode())[0] is not None


# ---------------------------------------------------------------- refusals

def _csr_for(key, name: str = ACTIVE) -> bytes:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def _expired(ca, project) -> bytes:
    import datetime as dt

    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    cert = ca.authority.sign_csr(csr_path(project).read_bytes(), not_before=start, not_after=start + dt.timedelta(days=365))
    return ca.authority.chain_pem(cert)


BAD = [
    ("unknown CA", lambda ca, project: (Authority.create("Other Root", "Other Sub").sign_csr(csr_path(project).read_bytes())
                                        .public_bytes(serialization.Encoding.PEM)), None, "does not chain to files/ca/test/"),
    # e.g. signed by the lab CA of another machine: same names, other keys
    ("same-named CA with another key", lambda ca, project: (Authority.create().sign_csr(csr_path(project).read_bytes())
                                                            .public_bytes(serialization.Encoding.PEM)), None,
     "does not verify"),
    ("another key", lambda ca, project: ca.authority.chain_pem(ca.authority.sign_csr(_csr_for(new_key()))), None,
     "is for another key"),
    ("expired", _expired, None, "expired on"),
    ("CSR and certificate for a key the host does not hold", None, "stale", "is a different key"),
]


@pytest.mark.parametrize("make, kind, words", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_certificate_leaves_the_host_byte_for_byte_unchanged(handed_off, project, lab, ca, make, kind, words):
    good_cert, good_csr = cert_path(project).read_bytes(), csr_path(project).read_bytes()
    before = host_snapshot(lab)
    try:
        if kind == "stale":  # e.g. the host was rebuilt: requests/ and the .cer agree, the host's key does not
            key = new_key()
            csr_path(project).write_bytes(_csr_for(key))
            cert_path(project).write_bytes(ca.authority.chain_pem(ca.authority.sign_csr(_csr_for(key))))
        else:
            cert_path(project).write_bytes(make(ca, project))
        run = project.deploy(env=SECRET_ENV, check=False)
        assert run.returncode != 0
        assert f"files/certs/test/{ACTIVE}.cer: " in run.output and words in run.output, run.output[-3000:]
        assert host_snapshot(lab) == before
    finally:
        cert_path(project).write_bytes(good_cert)
        csr_path(project).write_bytes(good_csr)


def test_after_the_refusals_the_good_certificate_still_changes_nothing(handed_off, project, lab):
    before = pfx_identity(lab)
    run = project.deploy(env=SECRET_ENV)
    assert run.changed == 0, run.output[-3000:]
    assert pfx_identity(lab) == before and status(run, ACTIVE)[2] == "active"
