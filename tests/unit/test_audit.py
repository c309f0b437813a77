"""The audit reads only the repository: every endpoint of the lab inventory, as a table and as
JSON; --fail-within fails on a due or expired certificate; an expired one is reported, not refused."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bars_receiver.certificates.x509 import fingerprint, spki_der
from bars_receiver.status.audit import main
from lab.ca import Authority

REPO = Path(__file__).resolve().parents[2]
ACTIVE = "BaRS-INT-LAB01.ExampleSupplier.thirdparty.nhs.uk"
EXPIRED = "BaRS-INT-LAB02.ExampleSupplier.thirdparty.nhs.uk"
NOW = dt.datetime.now(dt.timezone.utc)


def make_csr(path: Path, fqdn: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)])).sign(key, hashes.SHA256()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".md").write_text(f"request for {fqdn}\n")
    return key


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A committed copy of the project: LAB01 with a year left, LAB02 expired yesterday."""
    root = tmp_path_factory.mktemp("audit")
    for name in ("group_data", "files", "inventories"):
        shutil.copytree(REPO / name, root / name)
    ca = Authority.create()
    ca.write_bundle(root / "files" / "ca" / "lab")
    requests = root / "requests" / "lab"
    certs = root / "files" / "certs" / "lab"
    certs.mkdir(parents=True)
    keys = {}
    for fqdn, validity in ((ACTIVE, {}),
                           (EXPIRED, {"not_before": NOW - dt.timedelta(days=400), "not_after": NOW - dt.timedelta(days=1)})):
        keys[fqdn] = make_csr(requests / f"{fqdn}.csr", fqdn)
        cert = ca.sign_csr((requests / f"{fqdn}.csr").read_bytes(), **validity)
        (certs / f"{fqdn}.cer").write_bytes(ca.chain_pem(cert))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                    "commit", "-qm", "lab"], check=True)
    return root, keys


def audit(project, capsys, *args):
    root, _ = project
    status = main(["--project", str(root), *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_lists_every_endpoint_with_certificate_and_pack(project, capsys):
    status, out, _ = audit(project, capsys, "lab", "--json")
    assert status == 0
    report = json.loads(out)
    assert report["schema"] == "bars-receiver-audit/1" and report["git"] is True
    (inventory,) = report["inventories"]
    assert inventory["listen_port"] == 443 and inventory["proxy_addresses"] == ["127.0.0.2/32"]
    assert inventory["client_dn_allowlist"] == [] and inventory["client_crl"] is None
    by_fqdn = {e["fqdn"]: e for e in inventory["endpoints"]}
    assert set(by_fqdn) == {ACTIVE, EXPIRED}
    active = by_fqdn[ACTIVE]
    key = project[1][ACTIVE].public_key()
    assert active["state"] == "active" and active["host"] == "bars-lab"
    assert active["public_key_sha256"] == fingerprint(spki_der(key))
    assert active["certificate_matches"] is True
    assert active["csr_committed"] is True and active["certificate_committed"] is True
    assert active["days_left"] >= 360 and "Lab" in active["issuer"] and active["serial"]
    assert active["problem"] is None


def test_an_expired_certificate_is_reported_not_refused(project, capsys):
    status, out, _ = audit(project, capsys, "lab", "--json")
    expired = {e["fqdn"]: e for e in json.loads(out)["inventories"][0]["endpoints"]}[EXPIRED]
    assert status == 0
    assert expired["state"] == "expired" and expired["days_left"] < 0
    assert expired["problem"].startswith("expired on "), expired["problem"]


def test_table_shows_every_endpoint(project, capsys):
    status, out, _ = audit(project, capsys, "lab")
    assert status == 0
    assert "--> inventory lab (int): listen_port 443, proxy_addresses 127.0.0.2/32" in out
    rows = {line.split()[1]: line.split()[2] for line in out.splitlines() if "BaRS-INT-" in line and "PROBLEM" not in line
            and "issuer" not in line}
    assert rows == {ACTIVE: "active", EXPIRED: "expired"}


def test_fail_within(project, capsys):
    status, _, err = audit(project, capsys, "lab", "--fail-within", "30")
    assert status == 1
    assert f"audit: DUE lab: {EXPIRED}: certificate expired" in err
    assert ACTIVE not in err
    status, _, err = audit(project, capsys, "lab", "--fail-within", "400")
    assert status == 1 and f"{ACTIVE}: certificate expires in" in err


def test_uncommitted_and_mismatched_files_are_shown(project, capsys, tmp_path):
    root, _ = project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    make_csr(copy / "requests" / "lab" / f"{ACTIVE}.csr", ACTIVE)  # a new key's CSR, not committed
    main(["--project", str(copy), "lab", "--json"])
    active = {e["fqdn"]: e for e in json.loads(capsys.readouterr().out)["inventories"][0]["endpoints"]}[ACTIVE]
    assert active["csr_committed"] is False
    assert active["certificate_matches"] is False
    assert active["state"] == "invalid" and "another key" in active["problem"]


def test_unknown_inventory_is_one_line(project, capsys):
    status, _, err = audit(project, capsys, "nope")
    assert status == 2
    assert err.startswith("audit: no inventory 'nope'") and "lab" in err


def test_a_stale_client_crl_fails_the_audit(project, capsys, tmp_path):
    root, _ = project
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    inventory = copy / "inventories" / "lab.yml"
    inventory.write_text(inventory.read_text().replace(
        "  proxy_addresses: [127.0.0.2]\n", "  proxy_addresses: [127.0.0.2]\n  client_crl: files/crl/lab.crl\n"))
    ca = Authority.create()  # any CA will do: the audit reads the next update, the deploy checks the rest
    (copy / "files" / "crl").mkdir()
    (copy / "files" / "crl" / "lab.crl").write_bytes(ca.crls_pem(days=1))

    status = main(["--project", str(copy), "lab", "--fail-within", "0"])
    err = capsys.readouterr().err
    assert status == 1
    assert "audit: DUE lab: client CRL files/crl/lab.crl: next update" in err
    main(["--project", str(copy), "lab", "--fail-within", "0", "--crl-within", "0"])
    assert "client CRL" not in capsys.readouterr().err  # a day left is enough when asked for none
