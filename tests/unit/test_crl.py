"""The client CRL: nginx refuses every client unless each CA in the chain has a current CRL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from bars_receiver.certificates.crl import check_client_crl
from bars_receiver.certificates.ca_bundle import CABundle
from lab.ca import Authority

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority.create()


@pytest.fixture(scope="module")
def stranger() -> Authority:
    return Authority.create("Other Root", "Other Sub")


def bundle(authority: Authority) -> CABundle:
    return CABundle(directory="files/ca/int/", certificates=[("root.pem", authority.root), ("sub.pem", authority.sub)])


def crl(issuer: x509.Certificate, key, next_update: dt.timedelta = dt.timedelta(days=7), revoked=()) -> bytes:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(NOW - dt.timedelta(hours=1)).next_update(NOW + next_update))
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "int.crl"
    path.write_bytes(data)
    return path


def test_a_current_crl_from_each_ca_is_accepted(tmp_path, authority):
    data = authority.crls_pem(revoked=(1234,))
    check = check_client_crl(write(tmp_path, data), bundle(authority))
    assert check.problems == [] and check.warnings == []
    assert check.pem.count("BEGIN X509 CRL") == 2


def test_der_is_accepted_when_one_ca(tmp_path, authority):
    der = x509.load_pem_x509_crl(crl(authority.root, authority.root_key)).public_bytes(serialization.Encoding.DER)
    one_ca = CABundle(directory="files/ca/int/", certificates=[("root.pem", authority.root)])
    assert check_client_crl(write(tmp_path, der), one_ca).problems == []


def test_a_missing_ca_crl_is_refused(tmp_path, authority):
    check = check_client_crl(write(tmp_path, crl(authority.sub, authority.sub_key)), bundle(authority))
    [problem] = check.problems
    assert "has no current CRL from 'CN=BaRS Lab Root Authority" in problem and "whole chain" in problem
    assert check.pem is None


def test_an_expired_crl_is_refused(tmp_path, authority):
    data = crl(authority.root, authority.root_key) + crl(authority.sub, authority.sub_key, dt.timedelta(hours=-1))
    [problem] = check_client_crl(write(tmp_path, data), bundle(authority)).problems
    assert "expired on" in problem and "nginx would refuse every client" in problem


def test_a_crl_about_to_expire_warns(tmp_path, authority):
    data = crl(authority.root, authority.root_key) + crl(authority.sub, authority.sub_key, dt.timedelta(hours=12))
    check = check_client_crl(write(tmp_path, data), bundle(authority))
    assert check.problems == [] and "re-run the deploy before then" in check.warnings[0]


def test_a_crl_from_another_ca_is_refused(tmp_path, authority, stranger):
    data = crl(authority.root, authority.root_key) + crl(stranger.sub, stranger.sub_key)
    problems = check_client_crl(write(tmp_path, data), bundle(authority)).problems
    assert any("'CN=Other Sub" in p and "not a CA in files/ca/int/" in p for p in problems)


def test_a_forged_crl_is_refused(tmp_path, authority, stranger):
    forged = crl(authority.sub, stranger.sub_key)  # right issuer name, wrong key
    data = crl(authority.root, authority.root_key) + forged
    problems = check_client_crl(write(tmp_path, data), bundle(authority)).problems
    assert any("signature does not verify" in p for p in problems)


def test_garbage_and_missing_files_are_refused(tmp_path, authority):
    assert "is not a PEM or DER CRL" in check_client_crl(write(tmp_path, b"nope"), bundle(authority)).problems[0]
    assert "does not exist" in check_client_crl(tmp_path / "absent.crl", bundle(authority)).problems[0]


def test_inventory_names_the_crl_file_and_the_setting(tmp_path, authority):
    import shutil

    import yaml

    from bars_receiver.inventory.errors import InventoryError
    from bars_receiver.inventory.loader import load_hosts

    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "group_data", tmp_path / "group_data")
    (tmp_path / "inventories").mkdir()
    ca_dir = tmp_path / "files" / "ca" / "int"
    authority.write_bundle(ca_dir)
    (tmp_path / "files" / "crl").mkdir(parents=True)
    (tmp_path / "files" / "crl" / "int.crl").write_bytes(crl(authority.sub, authority.sub_key))
    document = {"environment": "int", "settings": {"client_crl": "files/crl/int.crl"},
                "hosts": {"rx": {"endpoints": [{"ods": "RX809", "supplier": "Acme", "upstream": "http://127.0.0.1:1"}]}}}
    (tmp_path / "inventories" / "int.yml").write_text(yaml.safe_dump(document))
    with pytest.raises(InventoryError) as raised:
        load_hosts(tmp_path / "inventories" / "int.yml")
    [problem] = [str(p) for p in raised.value.problems]
    assert problem.startswith("files/crl/int.crl: has no current CRL from 'CN=BaRS Lab Root Authority")
    assert problem.endswith("(named by settings.client_crl in inventories/int.yml)")

    (tmp_path / "files" / "crl" / "int.crl").write_bytes(authority.crls_pem())
    [(_, data)] = load_hosts(tmp_path / "inventories" / "int.yml")
    assert data["receiver"].client_crl_pem.count("BEGIN X509 CRL") == 2
