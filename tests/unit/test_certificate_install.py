"""The host side of certificates, run locally: the install script, the PKCS#12 build, the batched
fact, and the controller's decision whether to rebuild.

The shell scripts are the ones the operations send to the host; here they run against a temporary
directory with this machine's sh and openssl (as root, like the deploy), so every branch is cheap
to exercise. The lab tests run the same scripts on a real host.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import SecretStr
from pyinfra.api import FileUploadCommand, StringCommand

from bars_receiver.application import handoff
from bars_receiver.certificates import operations as ops
from bars_receiver.certificates import renewal
from bars_receiver.certificates.facts import CertificateFiles, InstalledCertificate, InstalledCertificates
from bars_receiver.certificates.issued import check_inventory_certificates
from bars_receiver.keys.facts import EndpointState, FileMeta
from bars_receiver.scripts import script_text
from bars_receiver.status.report import Row, endpoint_rows, format_table
from lab.ca import Authority, new_key

FQDN = "BaRS-INT-UNIT1.Acme.thirdparty.nhs.uk"
AUTHORITY = Authority.create()
KEY = new_key()
OTHER_KEY = new_key()


def public_pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def issued(project: Path, key=KEY):
    """An IssuedCertificate for ``key`` that passed the controller's checks."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    AUTHORITY.write_bundle(project / "files" / "ca" / "int")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FQDN)])).sign(key, hashes.SHA256()))
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    (project / "requests" / "int").mkdir(parents=True, exist_ok=True)
    (project / "requests" / "int" / f"{FQDN}.csr").write_bytes(csr_pem)
    (project / "files" / "certs" / "int").mkdir(parents=True, exist_ok=True)
    cert = AUTHORITY.sign_csr(csr_pem)
    (project / "files" / "certs" / "int" / f"{FQDN}.cer").write_bytes(AUTHORITY.chain_pem(cert))
    result = check_inventory_certificates(project, "int", [FQDN])
    assert result.problems == []
    return result.certificates[FQDN]


AS_ROOT = os.geteuid() == 0


def sh(script: str, *args: str) -> subprocess.CompletedProcess:
    env = None
    if not AS_ROOT:  # without root, chown to root cannot work: a no-op chown stands in (the lab tests do it for real)
        shim = Path(os.environ.get("TMPDIR", "/tmp")) / f"bars-fake-chown-{os.getuid()}"
        shim.mkdir(exist_ok=True)
        (shim / "chown").write_text("#!/bin/sh\nexit 0\n")
        (shim / "chown").chmod(0o755)
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", script, "bars", *args], capture_output=True, text=True, env=env)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def run(name: str, *args: str) -> subprocess.CompletedProcess:
    """files/scripts/<name>.sh exactly as the deploy sends it (lib.sh inlined)."""
    return sh(script_text(name), *args)


def generation(key_dir: Path, key=KEY, passphrase: bytes | None = b"key-passphrase", role: str = "live") -> Path:
    """What make_key.sh leaves: a key (and key.pass) in archive/<N>/, ``role`` naming it."""
    archive = key_dir / "archive"
    archive.mkdir(parents=True, mode=0o700, exist_ok=True)
    gen = archive / str(len(list(archive.iterdir())) + 1)
    gen.mkdir(mode=0o700)
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    if passphrase:
        (gen / "key.pass").write_bytes(passphrase + b"\n")
    (gen / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    (key_dir / role).symlink_to(f"archive/{gen.name}")
    if role == "live":
        for name in ("key.pem", "key.pass", "csr.pem", "cert.pem", "chain.pem", "ca.pem"):
            (key_dir / name).symlink_to(f"live/{name}")
    return gen


@pytest.fixture
def host_dirs(tmp_path: Path) -> SimpleNamespace:
    """base_dir/<fqdn>/ with an encrypted key and key.pass in generation 1 (live), and an empty app_dir."""
    base = tmp_path / "etc" / "bars-receiver"
    key_dir = base / FQDN
    key_dir.mkdir(parents=True, mode=0o700)
    generation(key_dir)
    app = tmp_path / "etc" / "bars-receiver-app"
    app.mkdir(parents=True, mode=0o700)
    return SimpleNamespace(base=base, key_dir=key_dir, app=app, handoff=app / FQDN, project=tmp_path / "project")


def stage(key_dir: Path, certificate, source: str = "live") -> subprocess.CompletedProcess:
    """What install_certificates.sh stages for one endpoint before switch.sh."""
    prepared = run("prepare", str(key_dir), source)
    assert prepared.returncode == 0, prepared.stderr
    for name, text in (("cert.pem", certificate.leaf_pem), ("chain.pem", certificate.chain_pem), ("ca.pem", certificate.ca_pem)):
        (key_dir / ".staging" / "gen" / name).write_text(text)
    return prepared


def install(dirs, certificate, source: str = "live") -> subprocess.CompletedProcess:
    stage(dirs.key_dir, certificate, source)
    return run("switch", str(dirs.key_dir), source)


def build(dirs, profile="modern", password_step="generate", source="generated", group="root", dir_mode="700",
          file_mode="600", prepare=True):
    if prepare:
        assert run("prepare", str(dirs.handoff)).returncode == 0
    return run("build_pfx", str(dirs.key_dir), str(dirs.handoff), FQDN, profile, password_step, source, group,
               dir_mode, file_mode, "", str(handoff.HASH_ROUNDS))


def live_generation(directory: Path) -> Path:
    return directory / os.readlink(directory / "live")


def fact(dirs, source="generated", group="") -> InstalledCertificates:
    command = CertificateFiles().command(str(dirs.base), str(dirs.app), source, group)
    result = run("certificate_files", str(dirs.base), str(dirs.app), source, group)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if not AS_ROOT:  # files this user made stand for root's
        lines = [line.replace(f" {os.getuid()} {os.getgid()}", " 0 0") for line in lines]
    return CertificateFiles().process(lines)


# ---------------------------------------------------------------- install

def test_install_puts_certificate_chain_and_bundle_beside_the_key(host_dirs):
    certificate = issued(host_dirs.project)
    result = install(host_dirs, certificate)
    assert result.returncode == 0, result.stderr
    live = live_generation(host_dirs.key_dir)
    assert live == host_dirs.key_dir / "archive" / "2"  # a new generation; 1 still holds the key alone
    assert (live / "cert.pem").read_text() == certificate.leaf_pem
    assert (live / "chain.pem").read_text() == certificate.chain_pem
    assert (live / "ca.pem").read_text() == certificate.ca_pem
    assert (live / "key.pem").samefile(host_dirs.key_dir / "archive" / "1" / "key.pem")  # hard link, never a copy
    assert (host_dirs.key_dir / "chain.pem").read_text() == certificate.chain_pem  # the top-level names follow live
    assert not (host_dirs.key_dir / ".staging").exists()
    assert oct((live / "cert.pem").stat().st_mode & 0o777) == "0o644"


def test_host_refuses_a_certificate_for_another_key_and_switches_nothing(host_dirs):
    good = issued(host_dirs.project)
    assert install(host_dirs, good).returncode == 0
    before = snapshot(host_dirs.key_dir)
    wrong = issued(host_dirs.project / "other", key=OTHER_KEY)
    result = install(host_dirs, wrong)
    assert result.returncode == 1
    assert "is not for live/key.pem" in result.stderr and "nothing was switched" in result.stderr
    assert snapshot(host_dirs.key_dir) == before  # staged files removed, installed ones untouched
    assert not (host_dirs.key_dir / ".staging").exists()


def _crafted(good, stranger) -> dict[str, tuple[str, str, str]]:
    """(cert.pem, chain.pem, the refusal) that a text comparison laxer than openssl's reading
    would let through: openssl takes the first certificate it can parse, whatever surrounds it."""
    leaf, other = good.leaf_pem, stranger.leaf_pem
    return {
        "a chain for another key": (leaf, stranger.chain_pem, "does not start with the new cert.pem"),
        "a chain of no certificate": (leaf, good.ca_pem.replace("CERTIFICATE", "X509 CRL"), "does not start with"),
        "an empty chain": (leaf, "", "does not start with the new cert.pem"),
        "a second certificate in cert.pem": (leaf + other, stranger.chain_pem, "is not exactly one PEM certificate"),
        "an END line with a trailing space": (leaf.replace("-----END CERTIFICATE-----", "-----END CERTIFICATE----- ")
                                              + other, stranger.chain_pem, "is not exactly one PEM certificate"),
        "CRLF line ends": (leaf.replace("\n", "\r\n") + other, stranger.chain_pem, "is not exactly one PEM certificate"),
        "text before the certificate": ("junk\n" + leaf, "junk\n" + good.chain_pem, "is not exactly one PEM certificate"),
        "no newline at the end": (leaf.rstrip("\n"), good.chain_pem, "is not exactly one PEM certificate"),
        "another label openssl reads": (leaf.replace("CERTIFICATE", "TRUSTED CERTIFICATE"), good.chain_pem,
                                        "is not exactly one PEM certificate"),
    }


@pytest.mark.parametrize("case", list(_crafted(SimpleNamespace(leaf_pem="", chain_pem="", ca_pem=""),
                                                SimpleNamespace(leaf_pem="", chain_pem=""))))
def test_host_refuses_certificate_files_that_could_hide_another_key(host_dirs, case):
    """switch.sh asks openssl only about chain.pem's first certificate (what nginx serves): cert.pem
    must be exactly one certificate and chain.pem must start with exactly its text, so no way of
    writing the files can make the shell and openssl look at different certificates."""
    good = issued(host_dirs.project)
    stranger = issued(host_dirs.project / "other", key=OTHER_KEY)
    cert, chain, refusal = _crafted(good, stranger)[case]
    stage(host_dirs.key_dir, good)
    (host_dirs.key_dir / ".staging" / "gen" / "cert.pem").write_text(cert)
    (host_dirs.key_dir / ".staging" / "gen" / "chain.pem").write_text(chain)
    before = snapshot(host_dirs.key_dir / "archive")
    result = run("switch", str(host_dirs.key_dir), "live")
    assert result.returncode == 1
    assert refusal in result.stderr and "nothing was switched" in result.stderr
    assert snapshot(host_dirs.key_dir / "archive") == before and os.readlink(host_dirs.key_dir / "live") == "archive/1"
    assert not (host_dirs.key_dir / ".staging").exists()


def test_a_replaced_certificate_is_archived(host_dirs):
    first = issued(host_dirs.project)
    assert install(host_dirs, first).returncode == 0
    second = issued(host_dirs.project / "again")  # same key, new certificate (a re-issue)
    assert install(host_dirs, second).returncode == 0
    assert (host_dirs.key_dir / "archive" / "2" / "cert.pem").read_text() == first.leaf_pem
    assert live_generation(host_dirs.key_dir) == host_dirs.key_dir / "archive" / "3"
    assert (host_dirs.key_dir / "cert.pem").read_text() == second.leaf_pem


# ---------------------------------------------------------------- PKCS#12

def open_pfx(dirs):
    password = (dirs.handoff / "pfx.pass").read_text().strip().encode()
    return pkcs12.load_key_and_certificates((dirs.handoff / "receiver.pfx").read_bytes(), password)


def pfx_info(dirs) -> str:
    return subprocess.run(
        ["openssl", "pkcs12", "-in", str(dirs.handoff / "receiver.pfx"), "-passin", f"file:{dirs.handoff / 'pfx.pass'}",
         "-info", "-noout", "-legacy"], capture_output=True, text=True, check=True).stderr


@pytest.mark.parametrize("profile, words", [
    ("modern", ["PBES2, PBKDF2, AES-256-CBC", "MAC: sha256"]),
    ("legacy", ["pbeWithSHA1And3-KeyTripleDES-CBC", "MAC: sha1"]),
])
def test_pfx_is_built_in_the_profile_asked_for_and_opens_with_its_password(host_dirs, profile, words):
    certificate = issued(host_dirs.project)
    assert install(host_dirs, certificate).returncode == 0
    result = build(host_dirs, profile=profile)
    assert result.returncode == 0, result.stderr
    key, cert, extra = open_pfx(host_dirs)
    assert key.public_key().public_numbers() == KEY.public_key().public_numbers()
    assert cert.public_bytes(serialization.Encoding.PEM).decode() == certificate.leaf_pem
    assert [c.subject for c in extra] == [AUTHORITY.sub.subject]
    info = pfx_info(host_dirs)
    for word in words:
        assert word in info
    env = (host_dirs.handoff / "kestrel.env").read_text()
    assert f"Kestrel__Certificates__Default__Path={live_generation(host_dirs.handoff)}/receiver.pfx\n" in env
    assert (host_dirs.handoff / "pfx.pass").read_text().strip() in env
    for name in ("receiver.pfx", "pfx.pass", "kestrel.env"):
        assert (host_dirs.handoff / name).readlink() == Path("live") / name
        assert oct((host_dirs.handoff / name).stat().st_mode & 0o777) == "0o600"
    assert not (host_dirs.handoff / ".staging").exists()
    assert oct((host_dirs.key_dir / "pfx.inputs").stat().st_mode & 0o777) == "0o600"


def test_recorded_inputs_match_what_the_controller_computes(host_dirs):
    """The host records sha256 of chain.pem and of the key's DER public key; the controller must
    compute the same values from the certificate and the EndpointFiles fact, or every run rebuilds."""
    certificate = issued(host_dirs.project)
    install(host_dirs, certificate)
    assert build(host_dirs).returncode == 0
    installed = fact(host_dirs).get(FQDN)
    assert installed.inputs["profile"] == "modern" and installed.inputs["password_source"] == "generated"
    assert "password_hash" not in installed.inputs  # a generated password's hash is never printed
    # ... nor made: only a CI-secret password is compared by its slow hash on the controller.
    assert "password_hash" not in (host_dirs.key_dir / "pfx.inputs").read_text()
    assert "password_sha256" not in installed.inputs
    assert installed.password_matches and installed.env_current
    assert handoff.rebuild_reasons(certificate, public_pem(KEY), installed, "modern", None) == []
    assert handoff.rebuild_reasons(certificate, public_pem(KEY), installed, "legacy", None) == [
        "the profile changed from modern to legacy"]
    assert handoff.rebuild_reasons(certificate, public_pem(OTHER_KEY), installed, "modern", None) == ["the key changed"]
    other = issued(host_dirs.project / "again")
    assert handoff.rebuild_reasons(other, public_pem(KEY), installed, "modern", None) == ["the certificate or its chain changed"]
    assert handoff.rebuild_reasons(certificate, public_pem(KEY), installed, "modern", SecretStr("from-ci-secret")) == [
        "the password source changed from generated to env"]


def test_ci_secret_password_is_compared_by_salted_hash(host_dirs):
    certificate = issued(host_dirs.project)
    install(host_dirs, certificate)
    secret = SecretStr('ci-"secret"-$HOME-`x`\\')
    assert run("prepare", str(host_dirs.handoff)).returncode == 0
    (host_dirs.handoff / ".staging" / "gen" / "pfx.pass").write_text(secret.get_secret_value() + "\n")
    assert build(host_dirs, password_step="upload", source="env", prepare=False).returncode == 0
    key, _, _ = pkcs12.load_key_and_certificates(
        (host_dirs.handoff / "receiver.pfx").read_bytes(), secret.get_secret_value().encode())
    assert key is not None
    installed = fact(host_dirs, source="env").get(FQDN)
    record = installed.inputs["password_hash"]
    assert f"password_hash {record}\n" in (host_dirs.key_dir / "pfx.inputs").read_text()
    assert "password_sha256" not in installed.inputs  # compared on the host, never printed
    assert record.startswith(f"$6$rounds={handoff.HASH_ROUNDS}$") and secret.get_secret_value() not in record
    assert handoff.password_hash(secret, record) == record
    assert handoff.rebuild_reasons(certificate, public_pem(KEY), installed, "modern", secret) == []
    assert handoff.rebuild_reasons(certificate, public_pem(KEY), installed, "modern", SecretStr("rotated-secret")) == [
        "the password (pfx_password_env) changed"]


def test_tampered_password_file_or_env_file_is_noticed(host_dirs):
    certificate = issued(host_dirs.project)
    install(host_dirs, certificate)
    build(host_dirs)
    (host_dirs.handoff / "kestrel.env").write_text("Kestrel__Certificates__Default__Password=guess\n")
    installed = fact(host_dirs).get(FQDN)
    assert installed.password_matches and not installed.env_current
    (host_dirs.handoff / "pfx.pass").write_text("someone-edited-this\n")
    installed = fact(host_dirs).get(FQDN)
    assert not installed.password_matches
    assert handoff.rebuild_reasons(certificate, public_pem(KEY), installed, "modern", None) == [
        "pfx.pass is not the password the PFX was built with"]


def test_failed_build_leaves_the_previous_pfx(host_dirs):
    certificate = issued(host_dirs.project)
    install(host_dirs, certificate)
    build(host_dirs)
    before = snapshot(host_dirs.handoff) | {"inputs": (host_dirs.key_dir / "pfx.inputs").read_bytes()}
    (host_dirs.key_dir / "key.pass").write_text("wrong-passphrase\n")
    result = build(host_dirs, profile="legacy", password_step="keep")
    assert result.returncode != 0
    assert snapshot(host_dirs.handoff) | {"inputs": (host_dirs.key_dir / "pfx.inputs").read_bytes()} == before


# ---------------------------------------------------------------- operations: what they yield

class FakeHost:
    name = "fake-host"

    def __init__(self):
        self.noops: list[str] = []

    def noop(self, message: str) -> None:
        self.noops.append(message)


@pytest.fixture
def fake_host(monkeypatch) -> FakeHost:
    fake = FakeHost()
    monkeypatch.setattr(ops, "host", fake)
    monkeypatch.setattr(handoff, "host", fake)
    return fake


def commands_of(op, *args, **kwargs) -> list:
    """What operation ``op`` yields on a host that already holds every shipped script."""
    from pyinfra.context import ctx_host

    from bars_receiver.shipping import SHIPPED, ShippedScripts, current_hashes

    record = ShippedScripts(directory_ready=True, present=set(current_hashes()))
    with ctx_host.use(SimpleNamespace(name="fake-host", data={SHIPPED: record}, noop=lambda message: None)):
        return list(op._inner(*args, **kwargs))


def runs(command, name: str) -> str:
    """The arguments ``command`` gives host script ``name`` (``sh <its shipped file> ARGS``), or ''."""
    from bars_receiver.shipping import SCRIPTS_DIR, script_hash

    raw = str(command.get_raw_value())
    prefix = f"sh {SCRIPTS_DIR}/{script_hash(name)}.sh"
    return raw[len(prefix):].strip() if raw.startswith(prefix) else ""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def installed_like(certificate, **overrides) -> InstalledCertificate:
    meta = FileMeta("644", 0, 0)
    state = InstalledCertificate(
        files={"cert.pem": sha(certificate.leaf_pem), "chain.pem": sha(certificate.chain_pem), "ca.pem": sha(certificate.ca_pem)},
        modes={"cert.pem": meta, "chain.pem": meta, "ca.pem": meta},
    )
    for key, value in overrides.items():
        setattr(state, key, value)
    return state


def test_installed_certificate_needs_nothing(tmp_path):
    certificate = issued(tmp_path)
    assert ops.install_action(certificate, installed_like(certificate), swap_keys=False) is None
    loose = installed_like(certificate)
    loose.modes["chain.pem"] = FileMeta("600", 0, 0)
    assert ops.install_action(certificate, loose, swap_keys=False) == "modes"


def test_changed_certificate_is_uploaded_in_one_bundle_then_checked_by_the_host(tmp_path, fake_host):
    import tarfile

    certificate = issued(tmp_path)
    state = installed_like(certificate)
    state.files["cert.pem"] = "0" * 64
    assert ops.install_action(certificate, state, swap_keys=False) == "live"
    files = (certificate.leaf_pem, certificate.chain_pem, certificate.ca_pem)
    installs = [("/etc/bars-receiver/x", "live", *files), ("/etc/bars-receiver/y", "live", *files)]
    commands = commands_of(ops.certificates_installed, "/etc/bars-receiver", installs, ["/etc/bars-receiver/z"])
    prepare, upload, batch = commands  # the same three commands for any number of endpoints
    assert runs(prepare, "prepare") == "/etc/bars-receiver"
    assert isinstance(upload, FileUploadCommand) and upload.dest == "/etc/bars-receiver/.staging/certificates.tar"
    with tarfile.open(fileobj=upload.src) as tar:  # never over live files: into staging, then switched
        assert tar.getnames() == [f"{d}/.staging/gen/{name}" for d in "xy" for name in ("cert.pem", "chain.pem", "ca.pem")]
        assert tar.extractfile("y/.staging/gen/chain.pem").read().decode() == certificate.chain_pem
    from bars_receiver.keys.facts import PUBLIC_KEY_CACHE
    from bars_receiver.shipping import SCRIPTS_DIR, script_hash

    assert runs(batch, "install_certificates") == (  # switch.sh's shipped file, then the endpoints
        f"{SCRIPTS_DIR}/{script_hash('switch')}.sh /etc/bars-receiver /etc/bars-receiver/.staging/certificates.tar "
        f"{PUBLIC_KEY_CACHE} /etc/bars-receiver/x live /etc/bars-receiver/y live /etc/bars-receiver/z modes")
    assert ops.certificate_bundle([("x", *files)]).getvalue() == ops.certificate_bundle([("x", *files)]).getvalue()
    (only,) = commands_of(ops.certificates_installed, "/etc/bars-receiver", [], ["/etc/bars-receiver/z"])
    assert runs(only, "install_certificates").endswith(  # no upload
        f" /etc/bars-receiver '' {PUBLIC_KEY_CACHE} /etc/bars-receiver/z modes")


def test_pfx_with_env_password_uploads_into_a_precreated_private_file(tmp_path, fake_host):
    secret = SecretStr("never-in-argv-123")
    handoffs = [("/k", "/a/x", FQDN, "upload"), ("/k2", "/a/y", "BaRS-INT-UNIT2.Acme.thirdparty.nhs.uk", "upload")]
    commands = commands_of(handoff.pkcs12_bundles, handoffs, password=secret)
    prepare, create, upload, build_command = commands  # one upload for every endpoint
    assert runs(prepare, "prepare") == "/a/x"  # clears and makes the root-only staging
    script = str(create.bits[2].obj if hasattr(create.bits[2], "obj") else create.bits[2])
    assert 'umask 077' in script and ': > "$1"' in script  # empty and private before the upload
    assert create.get_raw_value().endswith("/a/x/.staging/gen/pfx.pass")
    assert isinstance(upload, FileUploadCommand) and upload.dest == "/a/x/.staging/gen/pfx.pass"
    assert upload.src.getvalue() == "never-in-argv-123\n"
    assert runs(build_command, "build_pfxs").endswith(f"/k /a/x {FQDN} upload /k2 /a/y BaRS-INT-UNIT2.Acme.thirdparty.nhs.uk upload")
    for command in (create, build_command):
        assert "never-in-argv" not in command.get_raw_value()


def test_missing_app_group_fails_the_operation(tmp_path, fake_host):
    from pyinfra.api import OperationError

    with pytest.raises(OperationError, match="does not exist"):
        commands_of(handoff.pkcs12_bundles, [("/k", "/a/x", FQDN, "generate")], app_group="barsapp", group_gid=None)


def test_permissions_follow_app_group_without_a_rebuild(host_dirs, fake_host):
    certificate = issued(host_dirs.project)
    install(host_dirs, certificate)
    build(host_dirs)
    installed = fact(host_dirs).get(FQDN)
    assert handoff.handoff_actions(certificate, public_pem(KEY), installed, "modern", None, None, None) == []
    actions = handoff.handoff_actions(certificate, public_pem(KEY), installed, "modern", None, "barsapp", 1234)
    assert actions == ["modes"]  # no rebuild
    commands = commands_of(handoff.pkcs12_bundles, [(str(host_dirs.key_dir), str(host_dirs.handoff), FQDN, "modes")],
                           app_group="barsapp", group_gid=1234)
    raw = [runs(c, "build_pfxs") for c in commands]
    assert len(raw) == 1 and " barsapp 750 640 " in raw[0] and raw[0].endswith(f"{host_dirs.handoff} {FQDN} modes")
    pfx_before = (host_dirs.handoff / "receiver.pfx").read_bytes()
    (host_dirs.handoff / "live" / "receiver.pfx").chmod(0o644)
    result = run("build_pfxs", "unused: nothing is built", "modern", "generated", "root", "700", "600", "", "1000", "",
                 str(host_dirs.key_dir), str(host_dirs.handoff), FQDN, "modes")
    assert result.returncode == 0, result.stderr
    assert (host_dirs.handoff / "live" / "receiver.pfx").stat().st_mode & 0o777 == 0o600  # modes put back
    assert (host_dirs.handoff / "receiver.pfx").read_bytes() == pfx_before  # not rebuilt
    (host_dirs.handoff / "kestrel.env").write_text("stale\n")
    assert handoff.handoff_actions(certificate, public_pem(KEY), fact(host_dirs).get(FQDN), "modern", None, None, None) == ["env"]
    assert commands_of(handoff.pkcs12_bundles, []) == [] and "no PKCS#12" in fake_host.noops[-1]


def test_a_rebuild_keeps_the_password_the_application_has(host_dirs):
    certificate = issued(host_dirs.project)
    install(host_dirs, certificate)
    assert handoff.handoff_actions(certificate, public_pem(KEY), fact(host_dirs).get(FQDN), "modern", None, None, None) == [
        "generate"]
    build(host_dirs)
    installed = fact(host_dirs).get(FQDN)
    assert handoff.handoff_actions(certificate, public_pem(KEY), installed, "legacy", None, None, None) == ["keep"]
    assert handoff.handoff_actions(certificate, public_pem(KEY), installed, "modern", SecretStr("s"), None, None) == ["upload"]


# ---------------------------------------------------------------- refusals before the host is touched

def receiver_with(certificate, settings=None):
    settings = SimpleNamespace(**{"app_group": None, "renewal_days": 30, **(settings or {})})
    endpoint = SimpleNamespace(fqdn=FQDN)
    return SimpleNamespace(
        endpoints=[endpoint], certificates={FQDN: certificate}, inventory="int", settings=settings,
        endpoint_dir=lambda fqdn: f"/etc/bars-receiver/{fqdn}",
    )


def test_host_without_the_key_refuses_that_endpoint(tmp_path):
    receiver = receiver_with(issued(tmp_path))
    assert list(renewal.key_refusals(receiver, {})) == [FQDN]
    problem = renewal.key_refusals(receiver, {})[FQDN]
    assert problem.startswith(f"files/certs/int/{FQDN}.cer: ") and "the key it was issued for is gone" in problem
    assert renewal.host_problems(receiver, InstalledCertificates()) == []  # the rest of the host goes ahead


def test_host_with_another_key_refuses_that_endpoint(tmp_path):
    receiver = receiver_with(issued(tmp_path))
    state = EndpointState(key=FileMeta("600", 0, 0), key_public_pem=public_pem(OTHER_KEY))
    problem = renewal.key_refusals(receiver, {FQDN: state})[FQDN]
    assert "is a different key" in problem and f"requests/int/{FQDN}.csr" in problem


def test_host_with_the_right_key_but_no_app_group_is_refused(tmp_path):
    receiver = receiver_with(issued(tmp_path), {"app_group": "barsapp"})
    state = EndpointState(key=FileMeta("600", 0, 0), key_public_pem=public_pem(KEY))
    assert renewal.key_refusals(receiver, {FQDN: state}) == {}
    assert renewal.host_problems(receiver, InstalledCertificates(group_gid=1000)) == []
    (problem,) = renewal.host_problems(receiver, InstalledCertificates(group_missing=True))
    assert "app_group 'barsapp' does not exist" in problem


# ---------------------------------------------------------------- the fact's parser and the status table

def test_fact_parser_reads_every_marker():
    output = [
        "@@group 998",
        f"@@endpoint {FQDN}",
        "@@file cert.pem " + "a" * 64 + " 644 0 0",
        "@@input profile legacy",
        "@@input password_source generated",
        "@@appdir 750 0 998",
        "@@app receiver.pfx 640 0 998",
        "@@password_matches",
        "@@endpoint BaRS-INT-OTHER.Acme.thirdparty.nhs.uk",
    ]
    result = CertificateFiles().process(output)
    state = result.get(FQDN)
    assert result.group_gid == 998 and state.files == {"cert.pem": "a" * 64}
    assert state.inputs == {"profile": "legacy", "password_source": "generated"}
    assert state.app_dir == FileMeta("750", 0, 998) and state.modes["receiver.pfx"].gid == 998
    assert state.password_matches and not state.env_current
    assert result.get("BaRS-INT-OTHER.Acme.thirdparty.nhs.uk").files == {}


def test_status_table_shows_each_state(tmp_path):
    certificate = issued(tmp_path)
    second = SimpleNamespace(fqdn="BaRS-INT-UNIT2.Acme.thirdparty.nhs.uk")
    receiver = receiver_with(certificate)
    receiver.endpoints.append(second)
    rows = endpoint_rows("rx-1", receiver, InstalledCertificates())
    assert [(r.fqdn, r.state) for r in rows] == [(FQDN, "active"), (second.fqdn, "requested")]
    assert rows[0].expires == f"{certificate.not_after:%Y-%m-%d}" and int(rows[0].days_left) >= 363
    receiver.settings.renewal_days = 400
    assert endpoint_rows("rx-1", receiver, InstalledCertificates())[0].state == "renewing"
    table = format_table(rows + [Row("rx-2", "BaRS-INT-X.Acme.thirdparty.nhs.uk", "active", "2030-01-01", "9", "")], {"rx-2"})
    lines = table.splitlines()
    assert lines[1].split()[:5] == ["HOST", "FQDN", "STATE", "EXPIRES", "DAYS"]
    assert "awaiting certificate" in table and "error" in lines[-1]


def test_status_rows_for_refused_unreachable_and_failed(tmp_path):
    from bars_receiver.status.report import host_rows

    certificate = issued(tmp_path)
    receiver = receiver_with(certificate)
    (row,) = endpoint_rows("rx-1", receiver, InstalledCertificates(), refused={FQDN: "files/certs/int/x.cer: expired"})
    assert (row.state, row.note) == ("refused", "left as it is: files/certs/int/x.cer: expired")
    (row,) = host_rows("rx-2", receiver, "unreachable", "could not connect")
    assert (row.host, row.state, row.expires) == ("rx-2", "unreachable", f"{certificate.not_after:%Y-%m-%d}")
    assert "unreachable" in format_table([row])


def test_fact_parser_reads_the_batched_hashes_and_modes_by_path():
    """certificate_files.sh hashes and stats every endpoint's files in one sha256sum and one stat
    at the end; each line is recorded for the endpoint and file its path names."""
    other = "BaRS-INT-OTHER.Acme.thirdparty.nhs.uk"
    output = [
        f"@@endpoint {FQDN}",
        f"@@endpoint {other}",
        f"@@sum {'a' * 64} /etc/bars-receiver/{FQDN}/cert.pem",
        f"@@sum {'b' * 64} /etc/bars-receiver/{other}/chain.pem",
        f"@@stat 644 0 0 /etc/bars-receiver/{FQDN}/cert.pem",
        f"@@stat 600 0 0 /etc/bars-receiver/{other}/chain.pem",
        f"@@sum {'c' * 64} /etc/bars-receiver/UNDESCRIBED.nhs.uk/cert.pem",
        f"@@sum {'d' * 64} /etc/bars-receiver/{FQDN}/key.pem",
    ]
    result = CertificateFiles().process(output)
    assert result.get(FQDN).files == {"cert.pem": "a" * 64}
    assert result.get(FQDN).modes == {"cert.pem": FileMeta("644", 0, 0)}
    assert result.get(other).files == {"chain.pem": "b" * 64}
    assert result.get(other).modes == {"chain.pem": FileMeta("600", 0, 0)}
    assert "UNDESCRIBED.nhs.uk" not in result.endpoints
