"""Certificate files as cryptography objects, and the small questions every certificate check asks.

NHS England's certificates arrive as PEM or DER, the leaf alone or followed by its chain; CA
certificates are committed the same way. Reading them, and quoting a certificate in a message
(subject, fingerprints, dates), is shared by the checks of issued certificates (``issued``), of CA
bundles (``ca_bundle``), of the path between them (``trust``), of the client CRL (``crl``) and by
the audit.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bars_receiver.certificates import chain
from bars_receiver.certificates.x509 import colon_hex, fingerprint

BOM = b"\xef\xbb\xbf"


class CertificateProblem(Exception):
    """One reason a certificate file is refused; the message follows the file name."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def to_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


subject = chain.subject  # 'CN=...,O=...' as messages quote a certificate


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and signed_by(cert, cert)


def signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # wrong issuer name, bad signature, or an algorithm cryptography cannot check
        return False
    return True


def fingerprints(cert: x509.Certificate) -> dict[str, str]:
    der = to_der(cert)
    return {"SHA-1": colon_hex(hashlib.sha1(der).digest()), "SHA-256": fingerprint(der)}


def format_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Read PEM (one or more CERTIFICATE blocks) or DER (one certificate)."""
    data = data.removeprefix(BOM)
    if not data.strip():
        raise CertificateProblem("is empty; save the certificate text NHS England sent into it")
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY-----" in data:
            raise CertificateProblem(
                "contains a PRIVATE KEY; a private key never leaves its host and must not be in git: "
                "remove the file, purge it from git history, and treat that key as compromised"
            )
        if b"-----BEGIN PKCS7-----" in data:
            raise CertificateProblem(
                "is a PKCS#7 bundle, not a certificate; convert it with "
                "'openssl pkcs7 -print_certs -in FILE -out FILE' (leaf first) and commit the result"
            )
        begins = data.count(b"-----BEGIN CERTIFICATE-----")
        ends = data.count(b"-----END CERTIFICATE-----")
        if begins == 0:
            raise CertificateProblem(
                "holds PEM text but no '-----BEGIN CERTIFICATE-----' block; save the certificate itself"
            )
        if begins != ends:
            raise CertificateProblem(
                f"is truncated or damaged PEM: {begins} BEGIN CERTIFICATE line(s) but {ends} END line(s); "
                "copy the whole text from '-----BEGIN CERTIFICATE-----' to '-----END CERTIFICATE-----'"
            )
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as error:
            raise CertificateProblem(
                f"is damaged PEM ({error}); the base64 text between the BEGIN and END lines does not decode "
                "to a certificate: save it again from NHS England's e-mail"
            ) from None
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertificateProblem(
            "is neither a PEM certificate ('-----BEGIN CERTIFICATE-----' ...) nor a DER certificate; "
            "save the certificate NHS England sent, as PEM or DER"
        ) from None
