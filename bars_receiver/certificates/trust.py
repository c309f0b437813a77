"""Does the environment's CA vouch for an issued certificate: the path from the leaf to a root.

Before the verifier runs, what the file itself carries is checked: every chain certificate in the
``.cer`` must already be in ``files/ca/<inventory>/`` (the only source of trust) and the leaf must
not be self-signed. Then cryptography's path validation (``chain.verify``) decides. A refusal is
put into words afterwards, most specific first: which link of names and signatures is broken
(another environment's CA, a wrong signature, an unknown issuer, a CA out of its dates), the
leaf's own dates and usage, then ``chain.explain``, else the verifier's own reason. The words
never accept what the verifier refused.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from bars_receiver.certificates import chain
from bars_receiver.certificates.ca_bundle import CABundle
from bars_receiver.certificates.pem import (
    CertificateProblem, fingerprints, format_date, self_signed, signed_by, subject, to_der,
)

MAX_CHAIN = chain.MAX_DEPTH  # CAs above the leaf


def self_signed_message(cert: x509.Certificate, ca_dir: str) -> str:
    return (
        f"is self-signed ({subject(cert)} issued by itself); NHS England certificates are issued by the "
        f"environment's sub CA in {ca_dir}: send the CSR to NHS England and save what they return"
    )


def trusted_path(leaf: x509.Certificate, extras: list[x509.Certificate], bundle: CABundle,
                 others: list[CABundle], now: datetime, fqdn: str) -> list[x509.Certificate]:
    """The path above ``leaf`` up to a root in ``bundle``, [sub CA..., root], as cryptography's
    verifier (``chain.verify``) found it. A refusal is put into words by today's specific checks
    (``_explain_chain``, validity, usage), then ``chain.explain``, else the verifier's own reason."""
    pool = [cert for _, cert in bundle.certificates]
    pool_der = {to_der(cert) for cert in pool}
    for extra in extras:
        if to_der(extra) not in pool_der:
            raise CertificateProblem(
                f"carries {subject(extra)} (SHA-256 {fingerprints(extra)['SHA-256']}) in its chain, which is not "
                f"among the CA certificates in {bundle.directory}; that directory is the only source of trust: "
                "remove the extra certificate from the file, or commit the CA to the bundle after checking it"
            )
    if self_signed(leaf):
        raise CertificateProblem(self_signed_message(leaf, bundle.directory))
    if not pool:
        raise CertificateProblem(
            f"cannot be checked: {bundle.directory} holds no CA certificates; commit the environment's root and "
            "sub CA certificates (PEM) there"
        )
    try:
        return chain.verify(leaf, pool, fqdn, now)[1:]
    except chain.Refused as refused:
        path = _explain_chain(leaf, bundle, others, now)
        _check_validity(leaf, now)
        _check_usage(leaf)
        raise CertificateProblem(chain.explain(leaf, path) or (
            f"is refused by certificate path validation (cryptography's x509.verification): {refused}; the "
            f"certificate or the CA certificates in {bundle.directory} break a rule of RFC 5280: ask NHS England "
            "to check the certificate and its chain"
        )) from None


def _explain_chain(leaf: x509.Certificate, bundle: CABundle, others: list[CABundle],
                   now: datetime) -> list[x509.Certificate]:
    """Walk names and signatures from ``leaf`` to a root in ``bundle`` to say which link is broken;
    the path, [sub CA..., root], when none is. Explains a refusal; never accepts anything."""
    pool = [cert for _, cert in bundle.certificates]
    path: list[x509.Certificate] = []
    current = leaf
    for _ in range(MAX_CHAIN):
        named = [ca for ca in pool if ca.subject == current.issuer]
        parents = [ca for ca in named if signed_by(current, ca)]
        if not parents:
            what = "it" if current is leaf else f"its issuer {subject(current)}"
            foreign = _find_issuer(current, others)
            if foreign is not None:
                raise CertificateProblem(
                    f"chains to another environment's CA: {what} was issued by {subject(foreign[1])} from "
                    f"{foreign[0]}, but this inventory trusts only {bundle.directory}. The certificate was saved "
                    "under the wrong environment, or requested with the other environment's process"
                )
            if named:
                raise CertificateProblem(chain.weak_signature(current, what) or (
                    f"does not verify: {what} names issuer {current.issuer.rfc4514_string()!r}, but the signature "
                    f"does not verify with that CA's key in {bundle.directory}; it was not issued by this "
                    "environment's CA (or the CA file is wrong): ask NHS England for the certificate and its chain"
                ))
            raise CertificateProblem(
                f"does not chain to {bundle.directory}: {what} was issued by {current.issuer.rfc4514_string()!r}, "
                f"which is not there (it holds: {bundle.describe()}); a certificate from another CA is refused"
            )
        parent = parents[0]
        if now < parent.not_valid_before_utc:
            raise CertificateProblem(
                f"chains through CA {subject(parent)}, which is not valid until "
                f"{format_date(parent.not_valid_before_utc)}; check the CA file in {bundle.directory} and this machine's clock"
            )
        if now > parent.not_valid_after_utc:
            raise CertificateProblem(
                f"chains through CA {subject(parent)}, which expired on {format_date(parent.not_valid_after_utc)}; "
                f"commit the current CA certificate to {bundle.directory}"
            )
        path.append(parent)
        if parent.subject == parent.issuer:
            return path
        current = parent
    raise CertificateProblem(f"has a chain longer than {MAX_CHAIN} certificates; this is not an NHS certificate")


def _find_issuer(cert: x509.Certificate, others: list[CABundle]) -> tuple[str, x509.Certificate] | None:
    for other in others:
        for _, ca in other.certificates:
            if ca.subject == cert.issuer and signed_by(cert, ca):
                return other.directory, ca
    return None


def _check_validity(leaf: x509.Certificate, now: datetime) -> None:
    if now < leaf.not_valid_before_utc:
        raise CertificateProblem(
            f"is not valid yet: valid from {format_date(leaf.not_valid_before_utc)}, it is now {format_date(now)}; re-run once it "
            "is valid, or check this machine's clock"
        )
    if now > leaf.not_valid_after_utc:
        raise CertificateProblem(
            f"expired on {format_date(leaf.not_valid_after_utc)}; request a new certificate (send this endpoint's CSR "
            "again) and replace the file"
        )


def _check_usage(leaf: x509.Certificate) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        have = ", ".join(getattr(oid, "_name", oid.dotted_string) for oid in eku) or "none"
        raise CertificateProblem(
            f"does not allow TLS server use: its extended key usage is ({have}) without serverAuth; NHS receiver "
            "certificates carry serverAuth and clientAuth: ask NHS England for a server certificate"
        )
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (ku.digital_signature or ku.key_encipherment):
        raise CertificateProblem(
            "does not allow TLS server use: its key usage has neither digitalSignature nor keyEncipherment; "
            "ask NHS England for a server certificate"
        )
