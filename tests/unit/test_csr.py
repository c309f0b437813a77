"""CSR checks on the controller: what is sent to NHS England must be exactly right."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bars_receiver.certificates.x509 import csr_problem, fingerprint
from bars_receiver.keys.facts import EndpointState
from bars_receiver.keys.operations import csr_reason

FQDN = "BaRS-INT-RX809.Acme.thirdparty.nhs.uk"


@pytest.fixture(scope="module")
def keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


def public_pem(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def make_csr(key, *attributes, extension=None) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(list(attributes)))
    if extension is not None:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def cn(value: str = FQDN):
    return x509.NameAttribute(NameOID.COMMON_NAME, value)


def test_right_csr_passes(keys):
    assert csr_problem(make_csr(keys[0], cn()), FQDN, public_pem(keys[0])) is None


def test_other_cn_is_refused(keys):
    problem = csr_problem(make_csr(keys[0], cn("BaRS-INT-RX810.Acme.thirdparty.nhs.uk")), FQDN, public_pem(keys[0]))
    assert "it must be exactly 'CN=BaRS-INT-RX809.Acme.thirdparty.nhs.uk'" in problem


def test_cn_case_must_match_exactly(keys):
    problem = csr_problem(make_csr(keys[0], cn(FQDN.lower())), FQDN, public_pem(keys[0]))
    assert problem is not None and "must be exactly" in problem


def test_email_in_subject_is_refused(keys):
    email = x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@example.org")
    problem = csr_problem(make_csr(keys[0], cn(), email), FQDN, public_pem(keys[0]))
    assert "must be exactly" in problem


def test_other_subject_fields_are_refused(keys):
    organisation = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")
    assert "must be exactly" in csr_problem(make_csr(keys[0], organisation, cn()), FQDN, public_pem(keys[0]))


def test_extensions_are_refused(keys):
    san = x509.SubjectAlternativeName([x509.DNSName(FQDN)])
    problem = csr_problem(make_csr(keys[0], cn(), extension=san), FQDN, public_pem(keys[0]))
    assert "CN alone" in problem


def test_csr_for_other_key_is_refused(keys):
    problem = csr_problem(make_csr(keys[1], cn()), FQDN, public_pem(keys[0]))
    assert "different key" in problem


def test_tampered_signature_is_refused(keys):
    csr = x509.load_pem_x509_csr(make_csr(keys[0], cn()).encode())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature
    pem = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    assert csr_problem(pem, FQDN, public_pem(keys[0])) == "the CSR's signature is not valid"


def test_garbage_is_refused(keys):
    assert csr_problem("-----BEGIN CERTIFICATE REQUEST-----\nnope\n", FQDN, public_pem(keys[0])).startswith(
        "the CSR does not parse"
    )


def test_csr_reason_covers_the_lifecycle(keys):
    csr = make_csr(keys[0], cn())
    assert csr_reason(FQDN, None) == "the key is new"
    assert csr_reason(FQDN, EndpointState(key_public_pem=public_pem(keys[0]))) == "no CSR yet"
    assert csr_reason(FQDN, EndpointState(key_public_pem=public_pem(keys[0]), csr_pem=csr)) is None
    assert "different key" in csr_reason(FQDN, EndpointState(key_public_pem=public_pem(keys[1]), csr_pem=csr))


def test_fingerprint_is_colon_hex_sha256():
    assert fingerprint(b"") == (
        "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
    )
