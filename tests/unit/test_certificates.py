"""Issued certificates are checked on the controller before any host is touched.

Every refusal names the file, says what is wrong and what is right. Certificates are built here
with cryptography; keys are made once per module (RSA is slow) and reused across cases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bars_receiver.certificates.ca_bundle import normalise_fingerprint
from bars_receiver.certificates.issued import check_inventory_certificates
from bars_receiver.inventory.errors import InventoryError
from bars_receiver.inventory.loader import load_hosts
from lab.ca import Authority

REPO = Path(__file__).resolve().parents[2]
FQDN = "BaRS-INT-RX809.Acme.thirdparty.nhs.uk"
OTHER_FQDN = "BaRS-INT-RX810.Acme.thirdparty.nhs.uk"
CERT_FILE = f"files/certs/int/{FQDN}.cer"
NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEYS = {name: _key() for name in ("int_root", "int_sub", "prod_root", "prod_sub", "rogue", "leaf", "other")}


def name(cn: str, org: str = "nhs") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca_cert(subject: x509.Name, key, issuer: x509.Name | None = None, issuer_key=None, not_after=None,
            path_length: int | None = None, bc_critical: bool = True, extra=()):
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer or subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 100 * DAY).not_valid_after(not_after or NOW + 3000 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=bc_critical)
    )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key or key, hashes.SHA256())


INT_ROOT = ca_cert(name("Lab INT Root G2"), KEYS["int_root"])
INT_SUB = ca_cert(name("Lab INT Authentication G2"), KEYS["int_sub"], INT_ROOT.subject, KEYS["int_root"])
PROD_ROOT = ca_cert(name("Lab PROD Root G2"), KEYS["prod_root"])
PROD_SUB = ca_cert(name("Lab PROD Authentication G2"), KEYS["prod_sub"], PROD_ROOT.subject, KEYS["prod_root"])
ROGUE = ca_cert(name("Rogue Authentication"), KEYS["rogue"])


def key_usage(**flags) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{flag: flags.get(flag, False) for flag in names})


def leaf(cn: str = FQDN, key=None, issuer=INT_SUB, issuer_key=None, not_before=None, not_after=None,
         eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
         ku=key_usage(digital_signature=True, key_encipherment=True), subject=None, extra=()) -> x509.Certificate:
    key = key or KEYS["leaf"]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhs"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]))
        .issuer_name(issuer.subject if isinstance(issuer, x509.Certificate) else issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY).not_valid_after(not_after or NOW + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if ku is not None:
        builder = builder.add_extension(ku, critical=True)
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key or KEYS["int_sub"], hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def csr_pem(key, cn: str = FQDN) -> bytes:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def sha1(cert: x509.Certificate) -> str:
    return hashlib.sha1(der(cert)).hexdigest()


def sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(der(cert)).hexdigest()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the INT and PROD lab CA bundles and the committed CSR for FQDN."""
    for env, certs in (("int", (INT_ROOT, INT_SUB)), ("prod", (PROD_ROOT, PROD_SUB))):
        directory = tmp_path / "files" / "ca" / env
        directory.mkdir(parents=True)
        (directory / "root.pem").write_bytes(pem(certs[0]))
        (directory / "sub.pem").write_bytes(pem(certs[1]))
    (tmp_path / "files" / "certs" / "int").mkdir(parents=True)
    (tmp_path / "requests" / "int").mkdir(parents=True)
    (tmp_path / "requests" / "int" / f"{FQDN}.csr").write_bytes(csr_pem(KEYS["leaf"]))
    return tmp_path


def save(project: Path, data: bytes, fqdn: str = FQDN, suffix: str = ".cer") -> None:
    (project / "files" / "certs" / "int" / f"{fqdn}{suffix}").write_bytes(data)


def check(project: Path, fqdns=(FQDN,), **kwargs):
    return check_inventory_certificates(project, "int", list(fqdns), now=NOW, **kwargs)


def refusal(project: Path, data: bytes, **kwargs) -> str:
    """A bad certificate refuses its own endpoint only: it is not a problem that stops the run."""
    save(project, data)
    result = check(project, **kwargs)
    assert FQDN not in result.certificates
    assert result.problems == [] and list(result.refused) == [FQDN], (result.problems, result.refused)
    return result.refused[FQDN]


def truncated(data: bytes) -> bytes:
    return data[: data.index(b"-----END")]


def damaged(data: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[3] = b"!!!!" + lines[3][4:]
    return b"\n".join(lines)


FORGED = leaf(issuer=INT_SUB, issuer_key=KEYS["rogue"])  # names the INT sub CA but signed by another key

# (id, certificate file bytes, words the message must contain besides the file name)
BAD = [
    ("wrong CN", lambda: pem(leaf(cn=OTHER_FQDN)), [f"CN='{OTHER_FQDN}'", f"this file is for '{FQDN}'", "saved under the wrong file name"]),
    ("CN differs in case", lambda: pem(leaf(cn=FQDN.lower())), ["letter case", "must equal the FQDN exactly"]),
    ("no CN", lambda: pem(leaf(subject=x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nhs")]))), ["has no CN", f"CN={FQDN}"]),
    ("certificate for another key", lambda: pem(leaf(key=KEYS["other"])), ["is for another key", f"requests/int/{FQDN}.csr", "send them this endpoint's CSR again"]),
    ("expired", lambda: pem(leaf(not_before=NOW - 400 * DAY, not_after=NOW - DAY)), ["expired on", "request a new certificate"]),
    ("not yet valid", lambda: pem(leaf(not_before=NOW + 2 * DAY, not_after=NOW + 300 * DAY)), ["is not valid yet", "valid from"]),
    ("unknown CA", lambda: pem(leaf(issuer=ROGUE, issuer_key=KEYS["rogue"])), ["does not chain to files/ca/int/", "Rogue Authentication", "Lab INT Authentication G2"]),
    ("other environment's CA", lambda: pem(leaf(issuer=PROD_SUB, issuer_key=KEYS["prod_sub"])), ["another environment's CA", "files/ca/prod/", "trusts only files/ca/int/"]),
    ("forged signature", lambda: pem(FORGED), ["does not verify", "signature"]),
    ("self-signed", lambda: pem(leaf(issuer=leaf(cn=FQDN).subject, issuer_key=KEYS["leaf"])), ["is self-signed", "send the CSR to NHS England"]),
    ("self-signed CA-style (openssl req -x509)", lambda: pem(ca_cert(name(FQDN), KEYS["leaf"])), ["is self-signed"]),
    ("garbage bytes", lambda: b"\x00\x01garbage\xff" * 20, ["neither a PEM certificate", "nor a DER certificate"]),
    ("empty file", lambda: b"\n", ["is empty"]),
    ("truncated PEM", lambda: truncated(pem(leaf())), ["truncated or damaged PEM", "-----END CERTIFICATE-----"]),
    ("damaged base64", lambda: damaged(pem(leaf())), ["damaged PEM", "save it again"]),
    ("private key committed", lambda: pem(leaf()) + KEYS["leaf"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
     ["contains a PRIVATE KEY", "compromised"]),
    ("PKCS#7 bundle", lambda: b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n", ["PKCS#7", "openssl pkcs7 -print_certs"]),
    ("only CA certificates", lambda: pem(INT_SUB, INT_ROOT), ["holds only CA certificates", "is missing"]),
    ("two leaves", lambda: pem(leaf(), leaf(cn=OTHER_FQDN)), ["2 end-entity certificates"]),
    ("chain carries a CA not in the bundle", lambda: pem(leaf(), ROGUE), ["Rogue Authentication", "not among the CA certificates in files/ca/int/"]),
    ("client-only EKU", lambda: pem(leaf(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))), ["does not allow TLS server use", "without serverAuth"]),
    ("key usage without signature or encipherment", lambda: pem(leaf(ku=key_usage(crl_sign=True))), ["does not allow TLS server use", "digitalSignature nor keyEncipherment"]),
]


@pytest.mark.parametrize("data, words", [(case[1], case[2]) for case in BAD], ids=[case[0] for case in BAD])
def test_bad_certificate_is_refused_naming_the_file(project, data, words):
    message = refusal(project, data())
    assert message.startswith(f"{CERT_FILE}: "), message
    for word in words:
        assert word in message, message


def test_expired_sub_ca_is_refused(project):
    old_sub = ca_cert(INT_SUB.subject, KEYS["int_sub"], INT_ROOT.subject, KEYS["int_root"], not_after=NOW - DAY)
    (project / "files" / "ca" / "int" / "sub.pem").write_bytes(pem(old_sub))
    message = refusal(project, pem(leaf()))
    assert "expired on" in message and "commit the current CA certificate" in message


def test_missing_csr_is_refused(project):
    (project / "requests" / "int" / f"{FQDN}.csr").unlink()
    message = refusal(project, pem(leaf()))
    assert message.startswith(CERT_FILE) and f"requests/int/{FQDN}.csr is missing" in message
    assert "Restore the committed CSR" in message


def test_missing_ca_bundle_is_refused(project):
    shutil.rmtree(project / "files" / "ca" / "int")
    message = refusal(project, pem(leaf()))
    assert message.startswith("files/ca/int/: holds no CA certificates (it does not exist)")


def test_certificate_under_another_extension_is_refused_with_the_right_name(project):
    save(project, pem(leaf()), suffix=".crt")
    (problem,) = check(project).problems
    assert str(problem).startswith(f"files/certs/int/{FQDN}.crt: ") and f"rename it to {FQDN}.cer" in str(problem)


def test_pem_leaf_alone_is_accepted_with_chain_and_bundle(project):
    save(project, pem(leaf()))
    result = check(project)
    assert result.problems == [] and result.warnings == []
    issued = result.certificates[FQDN]
    assert issued.source == CERT_FILE
    loaded = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    assert [c.subject for c in loaded] == [leaf().subject, INT_SUB.subject]  # leaf first, then sub CA, no root
    assert {der(c) for c in x509.load_pem_x509_certificates(issued.ca_pem.encode())} == {der(INT_ROOT), der(INT_SUB)}
    assert issued.state(30, NOW) == "active" and 363 <= issued.days_left(NOW) <= 365


def test_der_is_accepted(project):
    save(project, der(leaf()))
    result = check(project)
    assert result.problems == [] and FQDN in result.certificates


def test_leaf_followed_by_its_chain_is_accepted(project):
    save(project, pem(leaf(), INT_SUB, INT_ROOT))
    issued = check(project).certificates[FQDN]
    assert len(x509.load_pem_x509_certificates(issued.chain_pem.encode())) == 2


def test_windows_line_endings_and_bom_are_accepted(project):
    save(project, b"\xef\xbb\xbf" + pem(leaf(), INT_SUB).replace(b"\n", b"\r\n"))
    assert FQDN in check(project).certificates


def test_expiry_inside_renewal_window_warns(project):
    save(project, pem(leaf(not_before=NOW - 300 * DAY, not_after=NOW + 10 * DAY)))
    result = check(project, renewal_days=30)
    assert result.problems == []
    (warning,) = result.warnings
    assert warning.startswith(CERT_FILE) and "renewal_days (30)" in warning and "send requests/int/BaRS-INT-RX809.Acme.thirdparty.nhs.uk.next.csr" in warning
    assert result.certificates[FQDN].state(30, NOW) == "renewing"


def test_expiry_outside_renewal_window_does_not_warn(project):
    save(project, pem(leaf(not_before=NOW - 300 * DAY, not_after=NOW + 10 * DAY)))
    assert check(project, renewal_days=5).warnings == []


def test_certificate_for_an_endpoint_not_in_the_inventory_is_ignored_with_a_warning(project):
    save(project, pem(leaf()), fqdn=OTHER_FQDN)
    result = check(project)
    assert result.problems == [] and result.certificates == {}
    assert "no endpoint" in result.warnings[0] and OTHER_FQDN in result.warnings[0]


def test_no_certificate_means_requested_not_an_error(project):
    shutil.rmtree(project / "files" / "ca" / "int")  # no CA bundle committed yet either
    result = check(project)
    assert result.problems == [] and result.certificates == {}


# ---------------------------------------------------------------- path validation (cryptography's verifier)

UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.2")  # a private OID no verifier knows
SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")  # DER of the OID sha256WithRSAEncryption
SHA1_RSA = bytes.fromhex("06092a864886f70d010105")  # ... and sha1WithRSAEncryption (same length)


def unknown(critical: bool = True):
    return x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), critical


def resigned_with_sha1(cert: x509.Certificate, issuer_key) -> x509.Certificate:
    """``cert`` signed again with SHA-1, as an old CA would (cryptography no longer makes these)."""
    tbs = cert.tbs_certificate_bytes.replace(SHA256_RSA, SHA1_RSA)
    signature = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    data = der(cert).replace(cert.tbs_certificate_bytes, tbs).replace(SHA256_RSA, SHA1_RSA)
    return x509.load_der_x509_certificate(data.replace(cert.signature, signature))


def replace_ca(project: Path, name: str, cert: x509.Certificate) -> None:
    (project / "files" / "ca" / "int" / f"{name}.pem").write_bytes(pem(cert))


def test_sha1_signed_sub_ca_is_refused_as_sha1(project):
    """The leaf case is in test_certificate_messages.py; a sub CA signed with SHA-1 is named too."""
    replace_ca(project, "sub", resigned_with_sha1(INT_SUB, KEYS["int_root"]))
    message = refusal(project, pem(leaf()))
    assert "its issuer 'CN=Lab INT Authentication G2,O=nhs' is signed with SHA-1 (sha1WithRSAEncryption)" in message
    assert "SHA-1 and MD5 signatures are refused" in message and "does not verify" not in message


def test_ca_without_key_cert_sign_is_refused(project):
    replace_ca(project, "sub", ca_cert(INT_SUB.subject, KEYS["int_sub"], INT_ROOT.subject, KEYS["int_root"],
                                       extra=[(key_usage(digital_signature=True, crl_sign=True), True)]))
    message = refusal(project, pem(leaf()))
    assert "CA 'CN=Lab INT Authentication G2,O=nhs' has a key usage without keyCertSign" in message


def test_path_length_exceeded_is_refused(project):
    # The root allows no CA below it, but the sub CA is one.
    replace_ca(project, "root", ca_cert(INT_ROOT.subject, KEYS["int_root"], path_length=0))
    message = refusal(project, pem(leaf()))
    assert "CA 'CN=Lab INT Root G2,O=nhs' allows 0 CA(s) below it (basicConstraints pathlen:0)" in message
    assert "the path to this certificate has 1" in message


def test_path_length_that_fits_is_accepted(project):
    replace_ca(project, "root", ca_cert(INT_ROOT.subject, KEYS["int_root"], path_length=1))
    replace_ca(project, "sub", ca_cert(INT_SUB.subject, KEYS["int_sub"], INT_ROOT.subject, KEYS["int_root"], path_length=0))
    save(project, pem(leaf()))
    assert check(project).problems == []


def test_unknown_critical_extension_on_the_leaf_is_refused(project):
    message = refusal(project, pem(leaf(extra=[unknown()])))
    assert f"it carries the critical extension {UNKNOWN_OID.dotted_string}" in message and "RFC 5280" in message


def test_unknown_critical_extension_on_a_ca_is_refused(project):
    replace_ca(project, "sub", ca_cert(INT_SUB.subject, KEYS["int_sub"], INT_ROOT.subject, KEYS["int_root"],
                                       extra=[unknown()]))
    message = refusal(project, pem(leaf()))
    assert f"CA 'CN=Lab INT Authentication G2,O=nhs' carries the critical extension {UNKNOWN_OID.dotted_string}" in message


def test_unknown_non_critical_extension_is_accepted(project):
    save(project, pem(leaf(extra=[unknown(critical=False)])))
    assert check(project).problems == []


def test_ca_with_a_small_rsa_key_is_refused(project):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    replace_ca(project, "sub", ca_cert(INT_SUB.subject, small, INT_ROOT.subject, KEYS["int_root"]))
    message = refusal(project, pem(leaf(issuer_key=small)))
    assert "CA 'CN=Lab INT Authentication G2,O=nhs' has a 1024-bit RSA key; signatures made with a key under 2048 bits are refused" in message


def test_subject_alt_name_must_name_the_fqdn_when_present(project):
    san = x509.SubjectAlternativeName([x509.DNSName(OTHER_FQDN)])
    message = refusal(project, pem(leaf(extra=[(san, False)])))
    assert "is refused by certificate path validation" in message
    assert f"the leaf's subjectAltName does not name {FQDN}" in message


def test_subject_alt_name_naming_the_fqdn_is_accepted(project):
    save(project, pem(leaf(extra=[(x509.SubjectAlternativeName([x509.DNSName(FQDN.lower())]), False)])))
    assert check(project).problems == []


def test_ca_limited_to_client_auth_is_refused_with_the_verifiers_reason(project):
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    replace_ca(project, "sub", ca_cert(INT_SUB.subject, KEYS["int_sub"], INT_ROOT.subject, KEYS["int_root"],
                                       extra=[(eku, False)]))
    message = refusal(project, pem(leaf()))
    assert "is refused by certificate path validation (cryptography's x509.verification)" in message
    assert "a CA's extended key usage lacks serverAuth" in message and "(encountered" not in message


def test_ca_with_non_critical_basic_constraints_is_accepted(project):
    """RFC 5280 path validation and OpenSSL accept it; refusing it would refuse a working chain."""
    replace_ca(project, "sub", ca_cert(INT_SUB.subject, KEYS["int_sub"], INT_ROOT.subject, KEYS["int_root"],
                                       bc_critical=False))
    save(project, pem(leaf()))
    assert check(project).problems == []


def test_nhs_shaped_certificate_from_the_lab_ca_is_accepted(tmp_path):
    """O=nhs, OU=Devices, CN=<fqdn>, no subjectAltName, EKU serverAuth + clientAuth, SKI/AKI, CA key usage."""
    authority = Authority.create()
    authority.write_bundle(tmp_path / "files" / "ca" / "int")
    (tmp_path / "requests" / "int").mkdir(parents=True)
    (tmp_path / "requests" / "int" / f"{FQDN}.csr").write_bytes(csr_pem(KEYS["leaf"]))
    cert = authority.sign_csr(csr_pem(KEYS["leaf"]))
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    (tmp_path / "files" / "certs" / "int").mkdir(parents=True)
    (tmp_path / "files" / "certs" / "int" / f"{FQDN}.cer").write_bytes(authority.chain_pem(cert))
    result = check_inventory_certificates(tmp_path, "int", [FQDN])
    assert result.problems == [] and FQDN in result.certificates


# ---------------------------------------------------------------- pins

def test_ca_files_matching_pins_are_accepted(project):
    save(project, pem(leaf()))
    pins = {"root": normalise_fingerprint(sha1(INT_ROOT)), "sub": normalise_fingerprint(sha256(INT_SUB))}
    result = check(project, ca_pins=pins)
    assert result.problems == [] and FQDN in result.certificates


def test_ca_file_not_matching_its_pin_is_refused(project):
    save(project, pem(leaf()))
    pins = {"root": normalise_fingerprint(sha1(INT_ROOT)), "sub": normalise_fingerprint(sha1(PROD_SUB))}
    result = check(project, ca_pins=pins, pins_file="group_data/int.py")
    assert result.certificates == {}
    messages = [str(p) for p in result.problems]
    file_problem = next(m for m in messages if m.startswith("files/ca/int/sub.pem: "))
    assert "match none of ca_pins in group_data/int.py" in file_problem
    assert normalise_fingerprint(sha1(INT_SUB)) in file_problem  # says what the file's fingerprint is
    pin_problem = next(m for m in messages if m.startswith("group_data/int.py: ca_pins['sub']"))
    assert "matches no certificate in files/ca/int/" in pin_problem


def test_pins_are_checked_even_before_any_certificate_arrives(project):
    pins = {"root": normalise_fingerprint(sha1(PROD_ROOT))}
    result = check(project, fqdns=(), ca_pins=pins)
    assert any(str(p).startswith("files/ca/int/root.pem") for p in result.problems)


def test_non_ca_certificate_in_ca_directory_is_refused(project):
    (project / "files" / "ca" / "int" / "oops.pem").write_bytes(pem(leaf()))
    save(project, pem(leaf()))
    messages = [str(p) for p in check(project).problems]
    assert any(m.startswith("files/ca/int/oops.pem: ") and "not a CA certificate" in m for m in messages)


@pytest.mark.parametrize("value", ["7e05fa629b5e66dbb80e97417d2473cbcf5a3106", "7E:05:FA:62:9B:5E:66:DB:B8:0E:97:41:7D:24:73:CB:CF:5A:31:06"])
def test_fingerprints_normalise(value):
    assert normalise_fingerprint(value) == "7E:05:FA:62:9B:5E:66:DB:B8:0E:97:41:7D:24:73:CB:CF:5A:31:06"


def test_short_fingerprint_is_refused():
    with pytest.raises(ValueError, match="SHA-1 \\(40 hex digits\\) or SHA-256"):
        normalise_fingerprint("7E:05:FA")


# ---------------------------------------------------------------- through the inventory loader

GOOD = {
    "environment": "int",
    "settings": {},
    "hosts": {"rx-1": {"endpoints": [{"ods": "RX809", "supplier": "Acme", "upstream": "http://127.0.0.1:5000"}]}},
}


def inventory(project: Path, settings: dict | None = None, environment: str = "int") -> Path:
    if not (project / "group_data").exists():
        shutil.copytree(REPO / "group_data", project / "group_data")
    (project / "inventories").mkdir(exist_ok=True)
    document = {**GOOD, "environment": environment, "settings": settings or {}}
    path = project / "inventories" / f"{environment}.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_inventory_load_refuses_a_bad_certificate_for_its_endpoint_only(project):
    """An expired or wrong .cer no longer stops the inventory: its endpoint is refused, the host carries why."""
    save(project, pem(leaf(key=KEYS["other"])))
    (name, data), = load_hosts(inventory(project))
    receiver = data["receiver"]
    assert receiver.certificates == {} and list(receiver.refused) == [FQDN]
    assert receiver.refused[FQDN].startswith(f"{CERT_FILE}: is for another key")


def test_inventory_load_still_stops_on_a_ca_bundle_problem(project):
    """What concerns every endpoint (the CA bundle) still stops the run before any host is touched."""
    save(project, pem(leaf()))
    (project / "files" / "ca" / "int" / "extra.pem").write_bytes(pem(leaf(cn=OTHER_FQDN)))
    with pytest.raises(InventoryError) as raised:
        load_hosts(inventory(project))
    assert "nothing was done on any host" in str(raised.value)
    assert "files/ca/int/extra.pem" in str(raised.value) and "not a CA certificate" in str(raised.value)


def test_inventory_load_carries_checked_certificates_to_the_host(project):
    save(project, pem(leaf()))
    (name, data), = load_hosts(inventory(project))
    receiver = data["receiver"]
    assert set(receiver.certificates) == {FQDN}
    assert receiver.settings.pfx_profile == "modern" and receiver.settings.renewal_days == 30
    assert receiver.settings.app_group is None and receiver.pfx_password is None


def test_prod_group_data_pins_the_g2_chain(tmp_path):
    """The lab PROD CA is not NHS Root Authority G2: with the shipped pins it must be refused."""
    project = tmp_path
    for env in ("prod",):
        directory = project / "files" / "ca" / env
        directory.mkdir(parents=True)
        (directory / "root.pem").write_bytes(pem(PROD_ROOT))
    with pytest.raises(InventoryError) as raised:
        load_hosts(inventory(project, environment="prod"))
    text = str(raised.value)
    assert "files/ca/prod/root.pem: " in text and "group_data/prod.py" in text
    assert "7E:05:FA:62:9B:5E:66:DB:B8:0E:97:41:7D:24:73:CB:CF:5A:31:06" in text


@pytest.mark.parametrize("settings, env, field, words", [
    ({"pfx_password_env": "BARS_TEST_UNSET_PFX"}, {}, "settings.pfx_password_env", "is not set"),
    ({"pfx_password_env": "BARS_TEST_PFX"}, {"BARS_TEST_PFX": "short"}, "settings.pfx_password_env", "at least 8"),
    ({"pfx_password_env": "BARS_TEST_PFX"}, {"BARS_TEST_PFX": "pässwörd-long"}, "settings.pfx_password_env", "ASCII"),
    ({"pfx_password_env": "bad name"}, {}, "settings.pfx_password_env", "environment variable name"),
    ({"pfx_profile": "windows"}, {}, "settings.pfx_profile", "'modern' or 'legacy'"),
    ({"app_group": "Bad Group"}, {}, "settings.app_group", "not a usable group name"),
    ({"app_group": "root"}, {}, "settings.app_group", "not a usable group name"),
    ({"app_dir": "/etc/bars-receiver/bars-app"}, {}, "settings.app_dir", "must be directly under /etc"),
    ({"app_dir": "//etc/bars-receiver"}, {}, "settings.app_dir", "overlaps base_dir"),
    ({"app_dir": "relative/dir"}, {}, "settings.app_dir", "absolute"),
    ({"ca_pins": {"root": "12:34"}}, {}, "settings.ca_pins.root", "SHA-1 (40 hex digits)"),
    ({"renewal_days": 0}, {}, "settings.renewal_days", "greater than or equal to 1"),
])
def test_new_settings_are_validated(project, monkeypatch, settings, env, field, words):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InventoryError) as raised:
        load_hosts(inventory(project, settings))
    messages = [str(p) for p in raised.value.problems]
    assert any(f"inventories/int.yml: {field}" in m and words in m for m in messages), messages


def test_pfx_password_is_read_at_load_and_kept_secret(project, monkeypatch):
    monkeypatch.setenv("BARS_TEST_PFX", "correct-horse-battery")
    (name, data), = load_hosts(inventory(project, {"pfx_password_env": "BARS_TEST_PFX"}))
    receiver = data["receiver"]
    assert receiver.pfx_password.get_secret_value() == "correct-horse-battery"
    assert "correct-horse" not in repr(receiver) and "correct-horse" not in str(receiver.model_dump())
