"""Request notes carry exactly what ops must enter or send, and are stable between runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bars_receiver.certificates.x509 import fingerprint
from bars_receiver.inventory.loader import load_hosts
from bars_receiver.request_packs import RequestPackError, write_request_pack

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pems(key, fqdn):
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    return csr.decode(), public.decode()


@pytest.fixture
def project(tmp_path):
    for name in ("group_data", "files", "inventories"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def host(project, name):
    [(host_name, data)] = load_hosts(project / "inventories" / f"{name}.yml")
    return host_name, data["receiver"]


def test_int_note_has_the_itoc_form_fields(project, key):
    host_name, receiver = host(project, "int")
    endpoint = receiver.endpoints[0]
    csr, public = pems(key, endpoint.fqdn)
    written = write_request_pack(receiver, endpoint, host_name, csr, public)
    csr_file = project / "requests" / "int" / f"{endpoint.fqdn}.csr"
    note = (project / "requests" / "int" / f"{endpoint.fqdn}.md").read_text()
    assert set(written) == {csr_file, csr_file.with_suffix(".md")}
    assert csr_file.read_text() == csr
    for line in (
        "| Request type | Create/renew a certificate only (No endpoint) |",
        "| Environment | Integration |",
        f"| FQDN | {endpoint.fqdn} |",
        "| Existing party key | N/A |",
        "| Additional comments/notes | 'BaRS' certificate request |",
        "To: england.bookingandreferralstandard@nhs.net",
        f"> Receiver URL: https://{endpoint.fqdn}/",
        f"`{fingerprint(key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))}`",
        f"`files/certs/int/{endpoint.fqdn}.cer`",
    ):
        assert line in note, line
    assert "dir@nhs.net" not in note


def test_prod_note_goes_to_dir_after_technical_conformance(project, key):
    host_name, receiver = host(project, "prod")
    endpoint = [e for e in receiver.endpoints if e.hosting == "provider"][0]
    csr, public = pems(key, endpoint.fqdn)
    write_request_pack(receiver, endpoint, host_name, csr, public)
    note = (project / "requests" / "prod" / f"{endpoint.fqdn}.md").read_text()
    assert "To: dir@nhs.net" in note
    assert "Technical\nConformance certificate" in note
    assert "BaRS Receiver endpoint" in note
    assert "service-provider-hosted, on-premise" in note
    assert "34.89.0.111/32, 34.89.69.6/32" in note
    assert "ITOC" not in note


def test_second_write_changes_nothing(project, key):
    host_name, receiver = host(project, "int")
    endpoint = receiver.endpoints[0]
    csr, public = pems(key, endpoint.fqdn)
    write_request_pack(receiver, endpoint, host_name, csr, public)
    assert write_request_pack(receiver, endpoint, host_name, csr, public) == []


def test_wrong_csr_is_not_written(project, key):
    host_name, receiver = host(project, "int")
    endpoint = receiver.endpoints[0]
    csr, public = pems(key, "BaRS-INT-OTHER.Acme.thirdparty.nhs.uk")
    with pytest.raises(RequestPackError, match="must be exactly"):
        write_request_pack(receiver, endpoint, host_name, csr, public)
    assert not (project / "requests").exists()


def test_note_gives_the_size_of_the_key_itself(project, key):
    """key_size only applies to new keys; the note describes the key the CSR was made from."""
    inventory = project / "inventories" / "int.yml"
    inventory.write_text(inventory.read_text().replace("key_size: 2048", "key_size: 4096"))
    host_name, receiver = host(project, "int")
    assert receiver.settings.key_size == 4096
    endpoint = receiver.endpoints[0]
    csr, public = pems(key, endpoint.fqdn)
    write_request_pack(receiver, endpoint, host_name, csr, public)
    assert "| Key | RSA 2048, made on" in (project / "requests" / "int" / f"{endpoint.fqdn}.md").read_text()
