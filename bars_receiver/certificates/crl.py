"""The optional client CRL for the TLS-MA listener, checked on the controller.

With ``ssl_crl`` set, nginx checks revocation for every certificate in a client's chain, so the
file must hold a current CRL from each CA in files/ca/<inventory>/; one missing or past its
nextUpdate and nginx refuses every client, the BaRS proxy included. That is checked here, before
any host is touched, rather than discovered as an outage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bars_receiver.certificates.ca_bundle import CABundle
from bars_receiver.certificates.pem import utcnow

WARN_BEFORE = timedelta(days=2)
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.S)


@dataclass
class CRLCheck:
    pem: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _parse(data: bytes) -> list[x509.CertificateRevocationList]:
    blocks = _PEM_CRL.findall(data)
    if blocks:
        return [x509.load_pem_x509_crl(block) for block in blocks]
    return [x509.load_der_x509_crl(data)]


def check_client_crl(path: Path, bundle: CABundle, now: datetime | None = None) -> CRLCheck:
    """Parse ``path`` (PEM CRLs, or one DER CRL) and check it against ``bundle``.

    Problems and warnings are messages about the file, to be prefixed with its name.
    """
    now = now or utcnow()
    check = CRLCheck()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        check.problems.append("does not exist; commit the CRLs of the environment's CAs there, or unset client_crl")
        return check
    except OSError as error:  # a directory, or unreadable
        check.problems.append(f"cannot be read as a file ({error.strerror}); client_crl names one file of CRLs")
        return check
    try:
        crls = _parse(data)
    except ValueError as error:
        check.problems.append(f"is not a PEM or DER CRL ({error})")
        return check
    covered = set()
    for crl in crls:
        issuer = crl.issuer.rfc4514_string()
        authority = next((cert for _, cert in bundle.certificates if cert.subject == crl.issuer), None)
        if authority is None:
            check.problems.append(f"holds a CRL from {issuer!r}, which is not a CA in {bundle.directory}")
            continue
        if not crl.is_signature_valid(authority.public_key()):
            check.problems.append(f"holds a CRL claiming to be from {issuer!r} whose signature does not verify")
            continue
        if crl.next_update_utc is None or crl.next_update_utc <= now:
            check.problems.append(
                f"holds a CRL from {issuer!r} that expired on {crl.next_update_utc:%Y-%m-%d %H:%M} UTC; nginx "
                "would refuse every client. Fetch a current CRL from NHS England and commit it"
            )
            continue
        if crl.next_update_utc - now < WARN_BEFORE:
            check.warnings.append(
                f"the CRL from {issuer!r} expires on {crl.next_update_utc:%Y-%m-%d %H:%M} UTC; after that nginx "
                "refuses every client. Fetch a current one and re-run the deploy before then"
            )
        covered.add(authority.subject)
    missing = [cert.subject.rfc4514_string() for _, cert in bundle.certificates if cert.subject not in covered]
    if missing and not check.problems:
        check.problems.append(
            f"has no current CRL from {', '.join(repr(m) for m in missing)}; nginx checks revocation for the "
            "whole chain, so it needs one from every CA in " + bundle.directory
        )
    if not check.problems:
        check.pem = "".join(crl.public_bytes(serialization.Encoding.PEM).decode() for crl in crls)
    return check
