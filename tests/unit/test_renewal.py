"""Renewal, the pure and locally runnable parts: the next key in the batched fact, the controller
accepting a certificate for the next CSR, which host key a certificate is for, the swap script
(run here with sh and openssl against a temporary directory), the status note and the .next pack.

tests/lab/test_renewal.py runs the whole renewal on a real host.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bars_receiver.certificates import operations as ops
from bars_receiver.certificates import renewal
from bars_receiver.certificates.facts import InstalledCertificates
from bars_receiver.certificates.issued import check_inventory_certificates
from bars_receiver.inventory.loader import load_hosts
from bars_receiver.keys.facts import EndpointFiles, EndpointState, FileMeta
from bars_receiver.request_packs import remove_renewal_pack, write_request_pack
from bars_receiver.scripts import script_text
from bars_receiver.status.report import endpoint_rows
from lab.ca import new_key

from .test_certificate_install import (
    AUTHORITY, FQDN, KEY, OTHER_KEY, commands_of, issued, public_pem, receiver_with, run, runs, sh, snapshot,
)

NEXT_KEY = new_key()
REPO = Path(__file__).resolve().parents[2]


def csr_pem(key, cn: str = FQDN) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def key_pem(key, passphrase: bytes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase))


def renewed(project: Path):
    """The live CSR for KEY, a .next.csr for NEXT_KEY, and a .cer for NEXT_KEY: checked as the inventory loads."""
    issued(project)  # writes the CA bundle and the live CSR (for KEY)
    requests = project / "requests" / "int"
    (requests / f"{FQDN}.next.csr").write_bytes(csr_pem(NEXT_KEY))
    cert = AUTHORITY.sign_csr(csr_pem(NEXT_KEY))
    (project / "files" / "certs" / "int" / f"{FQDN}.cer").write_bytes(AUTHORITY.chain_pem(cert))
    return check_inventory_certificates(project, "int", [FQDN])


def state_with(live_key=KEY, next_key=None) -> EndpointState:
    state = EndpointState(key=FileMeta("600", 0, 0), key_public_pem=public_pem(live_key))
    if next_key is not None:
        state.next = EndpointState(key=FileMeta("600", 0, 0), key_public_pem=public_pem(next_key))
    return state


# ---------------------------------------------------------------- the batched fact

def test_fact_reads_the_next_key_and_csr_in_the_same_command(tmp_path):
    """The real fact script, run here: next/ is described by the same one command."""
    endpoint = tmp_path / FQDN
    (endpoint / "next").mkdir(parents=True, mode=0o700)
    (endpoint / "key.pem").write_bytes(key_pem(KEY, b"pw"))
    (endpoint / "key.pass").write_text("pw")
    (endpoint / "next" / "key.pem").write_bytes(key_pem(NEXT_KEY, b"pw"))
    (endpoint / "next" / "key.pass").write_text("pw")
    (endpoint / "next" / "csr.pem").write_bytes(csr_pem(NEXT_KEY))
    # The script the fact runs (through the host-side output cache, tests/unit/test_fact_cache.py).
    command = EndpointFiles().command(str(tmp_path))
    assert "bars-cached_fact" in str(command)
    result = sh(script_text("endpoint_files"), str(tmp_path))
    assert result.returncode == 0, result.stderr
    state = EndpointFiles().process(result.stdout.splitlines())[FQDN]
    assert state.key_public_pem == public_pem(KEY) and state.csr_pem is None
    assert state.next.key_public_pem == public_pem(NEXT_KEY)
    assert state.next.csr_pem == csr_pem(NEXT_KEY).decode()
    assert state.next.key_pass is not None and state.next.next is None


def test_fact_without_next_directory_has_no_next_state():
    output = ["@@endpoint X.nhs.uk", "@@dir 700 0 0", "@@key 600 0 0", "@@key_public", "PUB"]
    assert EndpointFiles().process(output)["X.nhs.uk"].next is None


def test_unreadable_next_key_is_marked_on_the_next_state_only():
    output = ["@@endpoint X.nhs.uk", "@@key 600 0 0", "@@key_public", "PUB",
              "@@next_dir 700 0 0", "@@next_key 600 0 0", "@@next_key_public", "@@next_key_unreadable"]
    state = EndpointFiles().process(output)["X.nhs.uk"]
    assert state.key_public_pem == "PUB\n" and not state.key_unreadable
    assert state.next.key_unreadable and state.next.key_public_pem is None


# ---------------------------------------------------------------- the controller's check

def test_certificate_for_the_next_csr_is_accepted_and_remembered(tmp_path):
    result = renewed(tmp_path)
    assert result.problems == []
    assert result.certificates[FQDN].for_next_key


def test_certificate_for_the_live_csr_is_not_for_the_next_key(tmp_path):
    assert not issued(tmp_path).for_next_key


def test_certificate_for_neither_csr_names_both(tmp_path):
    renewed(tmp_path)
    stranger = AUTHORITY.sign_csr(csr_pem(OTHER_KEY))
    (tmp_path / "files" / "certs" / "int" / f"{FQDN}.cer").write_bytes(AUTHORITY.chain_pem(stranger))
    result = check_inventory_certificates(tmp_path, "int", [FQDN])
    assert result.problems == []
    problem = result.refused[FQDN]
    assert "is for another key" in problem
    assert f"requests/int/{FQDN}.csr" in problem and f"requests/int/{FQDN}.next.csr" in problem


# ---------------------------------------------------------------- which key, and host refusals

def test_key_role_compares_with_the_hosts_own_keys(tmp_path):
    certificate = renewed(tmp_path).certificates[FQDN]
    assert renewal.key_role(certificate, state_with(KEY, NEXT_KEY)) == "next"
    assert renewal.key_role(certificate, state_with(NEXT_KEY)) == "live"  # a swap already done
    assert renewal.key_role(certificate, state_with(KEY)) is None
    assert renewal.serving_state(certificate, state_with(KEY, NEXT_KEY)).key_public_pem == public_pem(NEXT_KEY)


def test_key_refusals_accept_a_certificate_for_the_next_key(tmp_path):
    receiver = receiver_with(renewed(tmp_path).certificates[FQDN])
    assert renewal.key_refusals(receiver, {FQDN: state_with(KEY, NEXT_KEY)}) == {}
    problem = renewal.key_refusals(receiver, {FQDN: state_with(KEY, OTHER_KEY)})[FQDN]
    assert "is a different key (and so is next/key.pem)" in problem and f"{FQDN}.next.csr" in problem


def test_renewal_is_due_only_inside_the_window_and_for_the_live_key(tmp_path):
    certificate = issued(tmp_path)  # a year left
    assert not renewal.renewal_due(certificate, state_with(KEY), 30)
    assert renewal.renewal_due(certificate, state_with(KEY), 400)
    assert not renewal.renewal_due(certificate, state_with(OTHER_KEY), 400)
    assert not renewal.renewal_due(None, state_with(KEY), 400)


def test_swap_uploads_all_three_files_then_runs_the_swap_script(tmp_path, monkeypatch):
    import tarfile

    certificate = renewed(tmp_path).certificates[FQDN]
    assert ops.install_action(certificate, ops.InstalledCertificate(), swap_keys=True) == "next"
    files = (certificate.leaf_pem, certificate.chain_pem, certificate.ca_pem)
    monkeypatch.setattr(ops, "host", None)  # a swap never takes the no-op path
    prepare, upload, batch = commands_of(ops.certificates_installed, "/etc/bars-receiver",
                                         [("/etc/bars-receiver/x", "next", *files)])
    assert runs(prepare, "prepare") == "/etc/bars-receiver"
    with tarfile.open(fileobj=upload.src) as tar:
        assert tar.getnames() == [f"x/.staging/gen/{n}" for n in ("cert.pem", "chain.pem", "ca.pem")]
    assert runs(batch, "install_certificates").endswith("/etc/bars-receiver/x next")


# ---------------------------------------------------------------- migration and the swap, run here

@pytest.fixture
def legacy_dir(tmp_path: Path) -> Path:
    """An endpoint directory of the previous layout: live key, certificate and CSR as files at the
    top, a staged next/ key and CSR (with a different passphrase)."""
    directory = tmp_path / FQDN
    (directory / "next").mkdir(parents=True, mode=0o700)
    old = AUTHORITY.sign_csr(csr_pem(KEY))
    files = {
        "key.pem": key_pem(KEY, b"pw"), "key.pass": b"pw", "csr.pem": csr_pem(KEY),
        "cert.pem": old.public_bytes(serialization.Encoding.PEM), "chain.pem": AUTHORITY.chain_pem(old),
        "ca.pem": b"", "next/key.pem": key_pem(NEXT_KEY, b"pw2"), "next/key.pass": b"pw2",
        "next/csr.pem": csr_pem(NEXT_KEY),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600 if "key" in name else 0o644)
    return directory


def migrate(directory: Path) -> None:
    result = run("reconcile", str(directory.parent), str(directory.parent / "no-app-dir"))
    assert result.returncode == 0, result.stderr


def inodes(directory: Path) -> set[int]:
    return {p.stat().st_ino for p in directory.rglob("*") if p.is_file() and not p.is_symlink()}


def stage(directory: Path, key) -> x509.Certificate:
    cert = AUTHORITY.sign_csr(csr_pem(key))
    assert run("prepare", str(directory), "next").returncode == 0
    (directory / ".staging/gen/cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / ".staging/gen/chain.pem").write_bytes(AUTHORITY.chain_pem(cert))
    (directory / ".staging/gen/ca.pem").write_bytes(b"bundle")
    return cert


def test_the_previous_layout_migrates_into_generations_without_losing_a_file(legacy_dir):
    before = snapshot(legacy_dir)
    files_before = inodes(legacy_dir)
    migrate(legacy_dir)
    assert inodes(legacy_dir) == files_before  # the same files, hard-linked into generations
    live, next_ = os.readlink(legacy_dir / "live"), os.readlink(legacy_dir / "next")
    assert (live, next_) == ("archive/1", "archive/2")
    for name in ("key.pem", "key.pass", "csr.pem", "cert.pem", "chain.pem", "ca.pem"):
        assert os.readlink(legacy_dir / name) == f"live/{name}"
        assert (legacy_dir / live / name).read_bytes() == before[name], name
    for name in ("key.pem", "key.pass", "csr.pem"):
        assert (legacy_dir / next_ / name).read_bytes() == before[f"next/{name}"], name
    assert (legacy_dir / "next" / "key.pem").read_bytes() == before["next/key.pem"]  # the old path still reads
    assert not (legacy_dir / ".staging").exists()
    state = EndpointFiles().process(run("endpoint_files", str(legacy_dir.parent)).stdout.splitlines())[FQDN]
    assert state.repairs == [] and state.key_public_pem == public_pem(KEY)
    assert state.next.key_public_pem == public_pem(NEXT_KEY)
    migrated = snapshot(legacy_dir)
    migrate(legacy_dir)  # a second run changes nothing
    assert snapshot(legacy_dir) == migrated


def test_the_fact_describes_a_previous_layout_as_the_migration_will_leave_it(legacy_dir):
    output = run("endpoint_files", str(legacy_dir.parent)).stdout.splitlines()
    before = EndpointFiles().process(output)[FQDN]
    assert before.repairs == ["previous layout (key.pem is a file)"]
    migrate(legacy_dir)
    after = EndpointFiles().process(run("endpoint_files", str(legacy_dir.parent)).stdout.splitlines())[FQDN]
    assert (before.key_public_pem, before.csr_pem, before.next.key_public_pem, before.next.csr_pem) == \
        (after.key_public_pem, after.csr_pem, after.next.key_public_pem, after.next.csr_pem)


def test_swap_makes_a_new_generation_and_keeps_the_old_one(legacy_dir):
    migrate(legacy_dir)
    before = snapshot(legacy_dir)
    cert = stage(legacy_dir, NEXT_KEY)
    result = run("switch", str(legacy_dir), "next")
    assert result.returncode == 0, result.stderr
    after = snapshot(legacy_dir)
    assert os.readlink(legacy_dir / "live") == "archive/3" and not (legacy_dir / "next").exists()
    assert oct((legacy_dir / "archive").stat().st_mode & 0o777) == "0o700"
    for name in ("key.pem", "key.pass", "cert.pem", "chain.pem", "csr.pem"):
        assert after[f"archive/1/{name}"] == before[f"archive/1/{name}"], name  # the old generation, untouched
    for name in ("key.pem", "key.pass", "csr.pem"):
        assert after[name] == before[f"archive/2/{name}"], name
        assert (legacy_dir / "archive/3" / name).samefile(legacy_dir / "archive/2" / name)
    assert after["cert.pem"] == cert.public_bytes(serialization.Encoding.PEM) and after["ca.pem"] == b"bundle"
    assert not (legacy_dir / ".staging").exists()
    assert oct((legacy_dir / "key.pem").stat().st_mode & 0o777) == "0o600"
    assert "renewed; the previous key and certificate stay in" in result.stdout


def test_swap_refuses_a_certificate_not_for_the_next_key_and_switches_nothing(legacy_dir):
    migrate(legacy_dir)
    before = snapshot(legacy_dir)
    stage(legacy_dir, KEY)  # for the live key: not a renewal of it
    result = run("switch", str(legacy_dir), "next")
    assert result.returncode == 1
    assert "is not for next/key.pem" in result.stderr and "nothing was switched" in result.stderr
    assert snapshot(legacy_dir) == before and not (legacy_dir / "archive" / "3").exists()


# ---------------------------------------------------------------- status and request packs

def test_renewing_row_says_the_next_key_is_staged(tmp_path):
    receiver = receiver_with(issued(tmp_path), {"renewal_days": 400})
    (row,) = endpoint_rows("rx-1", receiver, InstalledCertificates())
    assert row.state == "renewing" and row.note == f"next key staged: send requests/int/{FQDN}.next.csr"


def test_the_row_after_a_swap_is_active(tmp_path):
    receiver = receiver_with(renewed(tmp_path).certificates[FQDN])
    assert endpoint_rows("rx-1", receiver, InstalledCertificates())[0].state == "active"


@pytest.fixture
def project(tmp_path):
    for name in ("group_data", "files", "inventories"):
        shutil.copytree(REPO / name, tmp_path / name)
    [(host_name, data)] = load_hosts(tmp_path / "inventories" / "int.yml")
    return host_name, data["receiver"]


def test_renewal_pack_is_written_beside_the_live_one_and_says_it_is_a_renewal(project):
    host_name, receiver = project
    endpoint = receiver.endpoints[0]
    written = write_request_pack(receiver, endpoint, host_name, csr_pem(NEXT_KEY, endpoint.fqdn).decode(),
                                 public_pem(NEXT_KEY), renewal=True)
    directory = Path(receiver.requests_dir)
    assert set(written) == {directory / f"{endpoint.fqdn}.next.csr", directory / f"{endpoint.fqdn}.next.md"}
    note = (directory / f"{endpoint.fqdn}.next.md").read_text()
    assert note.startswith(f"# BaRS certificate renewal request: {endpoint.fqdn}")
    assert "This is a renewal" in note and f"`{endpoint.fqdn}.next.csr`" in note and "/next/key.pem`" in note
    assert not (directory / f"{endpoint.fqdn}.csr").exists()
    assert set(remove_renewal_pack(receiver.requests_dir, endpoint.fqdn)) == set(written)
    assert not list(directory.glob("*.next.*"))


def test_live_note_does_not_mention_renewal(project):
    host_name, receiver = project
    endpoint = receiver.endpoints[0]
    write_request_pack(receiver, endpoint, host_name, csr_pem(KEY, endpoint.fqdn).decode(), public_pem(KEY))
    note = (Path(receiver.requests_dir) / f"{endpoint.fqdn}.md").read_text()
    assert note.startswith(f"# BaRS certificate request: {endpoint.fqdn}") and "renewal" not in note.lower()
