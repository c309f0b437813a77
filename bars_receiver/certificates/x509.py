"""x509 questions answered on the controller with cryptography.

The host makes keys and CSRs with openssl; the controller re-checks what it gets back, because
a CSR with the wrong subject or key is only discovered days later when NHS England replies.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID


def spki_der(public_key) -> bytes:
    """The DER SubjectPublicKeyInfo: what "the same key" means when comparing keys."""
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_der(public_key_pem: str) -> bytes:
    return spki_der(serialization.load_pem_public_key(public_key_pem.encode()))


def key_bits(public_key_pem: str) -> int:
    """The size of the key itself: existing keys keep theirs when key_size changes."""
    return serialization.load_pem_public_key(public_key_pem.encode()).key_size


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in digest)


def fingerprint(data: bytes) -> str:
    """SHA-256 as colon-separated hex, the form people compare by eye."""
    return colon_hex(hashlib.sha256(data).digest())


def csr_problem(csr_pem: str, fqdn: str, public_key_pem: str) -> str | None:
    """Why this CSR must not be sent for ``fqdn`` with this key, or None if it is right."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as error:
        return f"the CSR does not parse ({error})"
    if not csr.is_signature_valid:
        return "the CSR's signature is not valid"
    expected = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)])
    if csr.subject != expected:
        return f"the CSR subject is {csr.subject.rfc4514_string()!r}; it must be exactly 'CN={fqdn}'"
    if len(csr.attributes) or len(csr.extensions):
        return "the CSR carries attributes or extensions; it must hold the CN alone"
    csr_key = spki_der(csr.public_key())
    if csr_key != public_key_der(public_key_pem):
        return "the CSR is for a different key than the endpoint's private key"
    return None
