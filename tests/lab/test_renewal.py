"""Renewal on a real lab host: active -> renewing (next key staged) -> active (keys swapped).

The lab CA (lab/ca.py) plays NHS England: first it issues a certificate that expires inside
renewal_days, so the endpoint is renewing; then it signs the .next.csr the renewing run wrote,
as ops would commit the renewed certificate. The keys are encrypted (key_passphrase_env) so that
next/key.pass is staged and swapped too.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from lab.ca import LabCA
from lab.project import endpoint, fqdn

RENEWING, STEADY = fqdn("REN01"), fqdn("REN02")
ENDPOINTS = [endpoint("REN01"), endpoint("REN02")]
KEY_DIR = f"/etc/bars-receiver/{RENEWING}"
NEXT_DIR = f"{KEY_DIR}/next"
HANDOFF = f"/etc/bars-receiver-app/{RENEWING}"
SETTINGS = {"key_passphrase_env": "BARS_RENEWAL_TEST_PASSPHRASE", "renewal_days": 30}
ENV = {"BARS_RENEWAL_TEST_PASSPHRASE": "renewal-test-passphrase"}
PROXY = "127.0.0.2"


def on_host(lab, command: str) -> str:
    return lab.ssh(command).stdout


def fetch(lab, path: str) -> bytes:
    """A copy of a host file, for this test only (the deploy never moves keys off the host)."""
    return base64.b64decode(on_host(lab, f"base64 -w0 {path}"))


def status(run, name: str) -> str:
    """The row for ``name`` in the status table printed at the end of the run."""
    table = run.stderr[run.stderr.rindex("--> BaRS receiver endpoints:"):]
    for line in table.splitlines():
        if f" {name} " in line:
            return line
    raise AssertionError(f"no status row for {name} in:\n{table}")


def requests(project, name: str) -> object:
    return project.root / "requests" / "test" / name


def cer(project, name: str = RENEWING):
    return project.root / "files" / "certs" / "test" / f"{name}.cer"


def leaf(project) -> x509.Certificate:
    return x509.load_pem_x509_certificates(cer(project).read_bytes())[0]


def served_certificate(lab, name: str = RENEWING) -> x509.Certificate:
    """The leaf nginx presents for ``name``, seen by a real handshake from the BaRS proxy's address."""
    result = lab.netns_run(["openssl", "s_client", "-connect", "127.0.0.1:443", "-bind", f"{PROXY}:0",
                            "-servername", name], input="", capture_output=True, text=True, timeout=20)
    assert "-----BEGIN CERTIFICATE-----" in result.stdout, result.stdout + result.stderr
    return x509.load_pem_x509_certificates(result.stdout.encode())[0]


def public_key(lab, path: str, passfile: str) -> str:
    return on_host(lab, f"openssl pkey -in {path} -passin file:{passfile} -pubout")


def key_files(lab) -> dict[str, str]:
    """Every private key and passphrase file under base_dir: path -> sha256."""
    listing = on_host(lab, "find /etc/bars-receiver -type f \\( -name key.pem -o -name key.pass \\) "
                           "-exec sha256sum {} +")
    return {path: digest for digest, path in (line.split() for line in listing.splitlines())}


def key_inodes(lab) -> set[str]:
    """The distinct key and passphrase files under base_dir (a generation hard-links, never copies)."""
    return set(on_host(lab, "find /etc/bars-receiver -type f \\( -name key.pem -o -name key.pass \\) "
                            "-printf '%i\\n'").split())


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> LabCA:
    return LabCA(tmp_path_factory.mktemp("lab-ca"))


@pytest.fixture(scope="module")
def renewing(project, ca):
    """REN01 active with a certificate expiring in 10 days (inside renewal_days); REN02 has a year."""
    project.write_inventory(ENDPOINTS, settings=SETTINGS)
    project.deploy(env=ENV)
    now = dt.datetime.now(dt.timezone.utc)
    ca.sign_csr_file(requests(project, f"{RENEWING}.csr"), project.root, "test",
                     not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=10))
    ca.sign_csr_file(requests(project, f"{STEADY}.csr"), project.root, "test")
    return project.deploy(env=ENV)


@pytest.fixture(scope="module")
def before_swap(renewing, project, lab):
    """What the host and the project hold just before the renewed certificate arrives."""
    return {
        "keys": key_files(lab),
        "key_inodes": key_inodes(lab),
        "live_generation": on_host(lab, f"readlink {KEY_DIR}/live").strip(),
        "live_key": fetch(lab, f"{KEY_DIR}/key.pem"),
        "live_pass": fetch(lab, f"{KEY_DIR}/key.pass"),
        "live_cert": fetch(lab, f"{KEY_DIR}/cert.pem"),
        "live_csr": fetch(lab, f"{KEY_DIR}/csr.pem"),
        "next_key": fetch(lab, f"{NEXT_DIR}/key.pem"),
        "next_csr": fetch(lab, f"{NEXT_DIR}/csr.pem"),
        "next_public": public_key(lab, f"{NEXT_DIR}/key.pem", f"{NEXT_DIR}/key.pass"),
        "pfx": on_host(lab, f"sha256sum {HANDOFF}/receiver.pfx"),
    }


@pytest.fixture(scope="module")
def renewed(before_swap, project, ca):
    """Ops commit the certificate NHS England issued for the .next.csr, and run the deploy."""
    ca.sign_csr_file(requests(project, f"{RENEWING}.next.csr"), project.root, "test")
    return project.deploy(env=ENV)


# ---------------------------------------------------------------- renewing

def test_renewing_endpoint_stages_a_root_only_next_key_and_csr(renewing, lab):
    row = status(renewing, RENEWING)
    assert row.split()[2] == "renewing"
    assert f"next key staged: send requests/test/{RENEWING}.next.csr" in row
    assert on_host(lab, f"stat -L -c '%a %U %G' {NEXT_DIR} {NEXT_DIR}/key.pem {NEXT_DIR}/key.pass "
                        f"{NEXT_DIR}/csr.pem").split() == ["700", "root", "root", *["600", "root", "root"] * 3]
    assert on_host(lab, f"head -1 {NEXT_DIR}/key.pem").strip() == "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    subject = on_host(lab, f"openssl req -in {NEXT_DIR}/csr.pem -noout -subject -nameopt RFC2253")
    assert subject.strip() == f"subject=CN={RENEWING}"
    next_public = public_key(lab, f"{NEXT_DIR}/key.pem", f"{NEXT_DIR}/key.pass")
    assert on_host(lab, f"openssl req -in {NEXT_DIR}/csr.pem -noout -pubkey") == next_public
    assert next_public != public_key(lab, f"{KEY_DIR}/key.pem", f"{KEY_DIR}/key.pass")


def test_an_endpoint_outside_its_renewal_window_stages_nothing(renewing, lab):
    assert status(renewing, STEADY).split()[2] == "active"
    assert lab.ssh(f"test -e /etc/bars-receiver/{STEADY}/next", check=False).returncode == 1


def test_renewal_request_pack_holds_the_next_csr_and_the_live_pack_is_unchanged(renewing, project, lab):
    assert requests(project, f"{RENEWING}.next.csr").read_bytes() == fetch(lab, f"{NEXT_DIR}/csr.pem")
    note = requests(project, f"{RENEWING}.next.md").read_text()
    assert "This is a renewal" in note and f"{NEXT_DIR}/key.pem" in note and f"{RENEWING}.next.csr" in note
    assert requests(project, f"{RENEWING}.csr").read_bytes() == fetch(lab, f"{KEY_DIR}/csr.pem")
    assert "This is a renewal" not in requests(project, f"{RENEWING}.md").read_text()


def test_the_live_key_and_certificate_keep_serving(renewing, project, lab):
    assert served_certificate(lab) == leaf(project)
    assert x509.load_pem_x509_certificate(fetch(lab, f"{KEY_DIR}/cert.pem")) == leaf(project)


def test_a_second_renewing_run_changes_nothing(renewing, project, lab):
    keys = key_files(lab)
    run = project.deploy(env=ENV)
    assert run.changed == 0, run.output[-3000:]
    assert key_files(lab) == keys
    assert status(run, RENEWING).split()[2] == "renewing"


# ---------------------------------------------------------------- renewed: the key swap

def test_the_renewed_certificate_swaps_in_the_next_key(renewed, before_swap, lab):
    assert renewed.changed > 0
    assert status(renewed, RENEWING).split()[2] == "active"
    assert fetch(lab, f"{KEY_DIR}/key.pem") == before_swap["next_key"]
    assert fetch(lab, f"{KEY_DIR}/csr.pem") == before_swap["next_csr"]
    assert lab.ssh(f"test -e {NEXT_DIR}/key.pem", check=False).returncode == 1
    assert on_host(lab, f"stat -L -c '%a %U %G' {KEY_DIR}/key.pem {KEY_DIR}/key.pass").split() == \
        ["600", "root", "root"] * 2
    cert = x509.load_pem_x509_certificate(fetch(lab, f"{KEY_DIR}/cert.pem"))
    assert cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == before_swap["next_public"].encode()


def test_the_old_key_and_certificate_are_archived_byte_for_byte(renewed, before_swap, lab):
    archived = f"{KEY_DIR}/{before_swap['live_generation']}/"
    assert archived.startswith(f"{KEY_DIR}/archive/")
    assert on_host(lab, f"readlink {KEY_DIR}/live").strip() != before_swap["live_generation"]
    assert on_host(lab, f"stat -c '%a %U %G' {KEY_DIR}/archive {archived}").split() == ["700", "root", "root"] * 2
    assert fetch(lab, f"{archived}key.pem") == before_swap["live_key"]
    assert fetch(lab, f"{archived}key.pass") == before_swap["live_pass"]
    assert fetch(lab, f"{archived}cert.pem") == before_swap["live_cert"]
    assert fetch(lab, f"{archived}csr.pem") == before_swap["live_csr"]
    assert on_host(lab, f"stat -c %a {archived}key.pem").strip() == "600"


def test_the_pfx_is_rebuilt_with_the_new_key_and_certificate(renewed, before_swap, project, lab):
    assert on_host(lab, f"sha256sum {HANDOFF}/receiver.pfx") != before_swap["pfx"]
    key, cert, _ = pkcs12.load_key_and_certificates(fetch(lab, f"{HANDOFF}/receiver.pfx"),
                                                    fetch(lab, f"{HANDOFF}/pfx.pass").strip())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public == before_swap["next_public"].encode()
    assert cert == leaf(project)


def test_nginx_presents_the_renewed_certificate(renewed, project, lab):
    served = served_certificate(lab)
    assert served == leaf(project)
    assert served.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=300)


def test_the_live_request_pack_now_holds_the_new_csr(renewed, before_swap, project):
    assert requests(project, f"{RENEWING}.csr").read_bytes() == before_swap["next_csr"]
    assert not requests(project, f"{RENEWING}.next.csr").exists()
    assert not requests(project, f"{RENEWING}.next.md").exists()


def test_no_private_key_was_ever_deleted(renewed, before_swap, lab):
    after = key_files(lab)
    assert set(before_swap["keys"].values()) <= set(after.values())
    # hard links into the new generation, never copies: one inode per key and passphrase file
    assert key_inodes(lab) == before_swap["key_inodes"]


def test_a_second_run_after_the_swap_changes_nothing(renewed, project, lab):
    keys = key_files(lab)
    run = project.deploy(env=ENV)
    assert run.changed == 0, run.output[-3000:]
    assert key_files(lab) == keys
    assert status(run, RENEWING).split()[2] == "active"


def test_packs_left_by_a_run_interrupted_after_the_swap_are_made_to_match_the_host(renewed, before_swap, project, lab):
    """Issue 10: the host swapped keys but the controller never ran its pack step (the old live
    pack and the .next pack are still there). The next run rewrites the live pack from the host's
    live CSR and removes the stale .next pack; the run after changes nothing."""
    requests(project, f"{RENEWING}.csr").write_bytes(before_swap["live_csr"])
    requests(project, f"{RENEWING}.next.csr").write_bytes(before_swap["next_csr"])
    requests(project, f"{RENEWING}.next.md").write_text("stale renewal note\n")

    run = project.deploy(env=ENV)

    assert "stale renewal request pack removed" in run.output
    assert requests(project, f"{RENEWING}.csr").read_bytes() == fetch(lab, f"{KEY_DIR}/csr.pem")
    assert not requests(project, f"{RENEWING}.next.csr").exists()
    assert not requests(project, f"{RENEWING}.next.md").exists()
    assert project.deploy(env=ENV).changed == 0
