"""Issued certificates, checked on the controller before any host is touched.

NHS England sends a certificate days after the CSR went out; ops save it as
``files/certs/<inventory>/<fqdn>.cer`` (PEM or DER, the leaf alone or followed by its chain)
and re-run the deploy. Everything that can be known without the host is checked here while the
inventory loads: the file parses, its CN is the FQDN, its key is the key behind the committed CSR
``requests/<inventory>/<fqdn>.csr`` (or, during a renewal, behind ``<fqdn>.next.csr``), and
cryptography's path validation (``certificates/trust.py``, ``certificates/chain.py``) accepts it against the CA certificates in
``files/ca/<inventory>/`` (``certificates/ca_bundle.py``: they match ``ca_pins`` when pins are set): signatures, validity, CA
constraints, TLS server use. A refusal names the file, says what is wrong and what is right.

A refused certificate affects its endpoint only: it is not installed, and every other endpoint
of the inventory goes ahead (``CertificateCheck.refused``). What concerns the inventory as a whole
(the CA bundle and its pins, a certificate file under the wrong name or twice) still stops the
run before any host is touched (``CertificateCheck.problems``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from bars_receiver.certificates.ca_bundle import CA_SUFFIXES, CABundle, has_ca_files, load_ca_bundle
from bars_receiver.certificates.pem import (
    CertificateProblem, fingerprints, format_date, is_ca, parse_certificates, self_signed, subject, to_pem, utcnow,
)
from bars_receiver.certificates.trust import self_signed_message, trusted_path
from bars_receiver.certificates.x509 import fingerprint, sha256_hex, spki_der
from bars_receiver.inventory.errors import Problem

CERT_SUFFIX = ".cer"
NEXT_CSR_SUFFIX = ".next.csr"  # the renewal request pack's CSR, for the key staged in next/


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate that passed every controller-side check, ready to install.

    ``chain_pem`` is the leaf followed by its sub CA(s) (no root): what the endpoint presents.
    ``ca_pem`` is the environment's whole CA bundle: what the endpoint trusts for client certificates.
    """

    fqdn: str
    source: str
    leaf_pem: str
    chain_pem: str
    ca_pem: str
    not_before: datetime
    not_after: datetime
    public_key_sha256: str
    issuer: str
    serial: str
    fingerprint_sha256: str
    # Issued for the next key staged for renewal (requests/<inventory>/<fqdn>.next.csr), not the
    # live one: installing it means swapping keys on the host.
    for_next_key: bool = False

    def days_left(self, now: datetime | None = None) -> int:
        """Whole days until expiry (negative once expired)."""
        return (self.not_after - (now or utcnow())).days

    def state(self, renewal_days: int, now: datetime | None = None) -> str:
        """``active``, or ``renewing`` inside the renewal window before expiry."""
        return "renewing" if self.days_left(now) < renewal_days else "active"


@dataclass
class CertificateCheck:
    """What checking one inventory's certificates found.

    ``problems`` stop the run; ``refused`` maps an FQDN to why its certificate file was refused
    (``"<file>: <reason>"``): that endpoint is reported and left as it is on its host.
    """

    certificates: dict[str, IssuedCertificate] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    bundle: CABundle | None = None  # files/ca/<inventory>/, when there was a reason to read it


def _leaf_and_chain(certs: list[x509.Certificate], fqdn: str, ca_dir: str) -> tuple[x509.Certificate, list[x509.Certificate]]:
    leaves = [cert for cert in certs if not is_ca(cert)]
    if len(certs) == 1 and self_signed(certs[0]):
        raise CertificateProblem(self_signed_message(certs[0], ca_dir))
    if not leaves:
        raise CertificateProblem(
            f"holds only CA certificates ({', '.join(subject(c) for c in certs)}); the endpoint's own "
            f"certificate (CN={fqdn}) is missing: save the certificate NHS England issued for this endpoint"
        )
    if len(leaves) > 1:
        raise CertificateProblem(
            f"holds {len(leaves)} end-entity certificates ({', '.join(subject(c) for c in leaves)}); keep only "
            f"the one for CN={fqdn}, optionally followed by its sub CA"
        )
    leaf = leaves[0]
    return leaf, [cert for cert in certs if cert is not leaf]


def _check_cn(leaf: x509.Certificate, fqdn: str) -> None:
    names = [attr.value for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names:
        raise CertificateProblem(f"has no CN (subject {subject(leaf)}); it must be CN={fqdn}")
    if len(names) > 1:
        raise CertificateProblem(f"has {len(names)} CNs ({', '.join(map(repr, names))}); it must have exactly CN={fqdn}")
    (cn,) = names
    if cn == fqdn:
        return
    if isinstance(cn, str) and cn.lower() == fqdn.lower():
        raise CertificateProblem(
            f"has CN={cn!r}, which differs from the endpoint FQDN {fqdn!r} in letter case; the CN must equal "
            "the FQDN exactly: check the fqdn/ods/supplier spelling in the inventory against the certificate"
        )
    raise CertificateProblem(
        f"has CN={cn!r} but this file is for {fqdn!r}; the CN must equal the FQDN exactly: was the certificate "
        f"saved under the wrong file name? It belongs in {cn}{CERT_SUFFIX} if that endpoint is in this inventory"
    )


def _load_csr(csr_path: Path, csr_label: str) -> x509.CertificateSigningRequest:
    try:
        return x509.load_pem_x509_csr(csr_path.read_bytes())
    except ValueError as error:
        raise CertificateProblem(f"cannot be compared with {csr_label}, which does not parse ({error}); restore it from git") from None


def _check_key(leaf: x509.Certificate, csr_path: Path, csr_label: str,
               next_csr_path: Path | None = None, next_csr_label: str = "") -> bool:
    """Check the certificate is for the live CSR's key or, during a renewal, the next CSR's.

    Returns True when it is for the next key (the host will swap keys), False for the live key.
    """
    if not csr_path.exists():
        raise CertificateProblem(
            f"has no CSR to compare with: {csr_label} is missing, so nothing shows the certificate is for this "
            "endpoint's key. Restore the committed CSR from git (the deploy also rewrites it from the host on a "
            "run without this certificate)"
        )
    cert_key = spki_der(leaf.public_key())
    csr_key = spki_der(_load_csr(csr_path, csr_label).public_key())
    if cert_key == csr_key:
        return False
    if next_csr_path is not None and next_csr_path.exists():
        next_key = spki_der(_load_csr(next_csr_path, next_csr_label).public_key())
        if cert_key == next_key:
            return True
        raise CertificateProblem(
            f"is for another key: its public key SHA-256 is {fingerprint(cert_key)} but "
            f"{csr_label} (this endpoint's live key) has {fingerprint(csr_key)} and "
            f"{next_csr_label} (its next key, staged for renewal) has {fingerprint(next_key)}. "
            "NHS England signed a different CSR, or the certificate belongs to another endpoint: send them "
            f"{next_csr_label} again"
        )
    raise CertificateProblem(
        f"is for another key: its public key SHA-256 is {fingerprint(cert_key)} but "
        f"{csr_label} (this endpoint's key) has {fingerprint(csr_key)}. NHS England "
        "signed a different CSR, or the certificate belongs to another endpoint: send them this endpoint's CSR again"
    )


def check_certificate(data: bytes, fqdn: str, csr_path: Path, csr_label: str, bundle: CABundle,
                      others: list[CABundle], source: str, now: datetime | None = None,
                      next_csr_path: Path | None = None, next_csr_label: str = "") -> IssuedCertificate:
    """Every controller-side check of one certificate file; raises ``CertificateProblem``.

    With ``next_csr_path`` (a renewal in progress), a certificate for that CSR's key is accepted too.
    """
    now = now or utcnow()
    leaf, extras = _leaf_and_chain(parse_certificates(data), fqdn, bundle.directory)
    _check_cn(leaf, fqdn)
    for_next_key = _check_key(leaf, csr_path, csr_label, next_csr_path, next_csr_label)
    path = trusted_path(leaf, extras, bundle, others, now, fqdn)
    intermediates = [ca for ca in path if ca.subject != ca.issuer]
    key_der = spki_der(leaf.public_key())
    return IssuedCertificate(
        fqdn=fqdn,
        source=source,
        leaf_pem=to_pem(leaf),
        chain_pem=to_pem(leaf) + "".join(to_pem(ca) for ca in intermediates),
        ca_pem=bundle.pem,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        public_key_sha256=sha256_hex(key_der),
        issuer=leaf.issuer.rfc4514_string(),
        serial=f"{leaf.serial_number:X}",
        fingerprint_sha256=fingerprints(leaf)["SHA-256"],
        for_next_key=for_next_key,
    )


# ------------------------------------------------------------------ one inventory

def check_inventory_certificates(
    project_dir: Path,
    inventory: str,
    fqdns: list[str],
    ca_pins: dict[str, str] | None = None,
    renewal_days: int = 30,
    pins_file: str = "group_data",
    now: datetime | None = None,
    retired: tuple[str, ...] | list[str] = (),
) -> CertificateCheck:
    """Check ``files/certs/<inventory>/*.cer`` for the inventory's endpoints.

    ``fqdns`` are the files' stems: the FQDN, or ``<fqdn>@<host>`` for a load-balanced endpoint,
    whose certificate and CSR are that host's own (docs/ha.md). Results are keyed by stem.

    Endpoints without a certificate file are simply not returned: they stay "requested". The
    files of ``retired`` endpoints are left alone (kept in git as a record, never installed).
    """
    now = now or utcnow()
    result = CertificateCheck()
    certs_dir = project_dir / "files" / "certs" / inventory
    ca_root = project_dir / "files" / "ca"
    ca_label = f"files/ca/{inventory}/"
    by_name = {fqdn.lower(): fqdn for fqdn in fqdns}

    found: dict[str, Path] = {}
    if certs_dir.is_dir():
        for path in sorted(certs_dir.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            label = f"files/certs/{inventory}/{path.name}"
            stem_fqdn = by_name.get(path.stem.lower())
            if path.suffix.lower() != CERT_SUFFIX:
                if stem_fqdn is not None and path.suffix.lower() in (".pem", ".crt", ".der", ".cert"):
                    result.problems.append(Problem(
                        label, "", f"is not read: certificates are read from <fqdn>{CERT_SUFFIX}; rename it to "
                        f"{stem_fqdn}{CERT_SUFFIX} (PEM or DER content is fine)"))
                continue
            if stem_fqdn is None and path.stem.lower() in {name.lower() for name in retired}:
                continue
            if stem_fqdn is None:
                result.warnings.append(
                    f"{label}: no endpoint {path.stem!r} in inventories/{inventory}.yml; the file is ignored")
                continue
            if stem_fqdn in found:
                result.problems.append(Problem(
                    label, "", f"is a second certificate file for {stem_fqdn} (also {found[stem_fqdn].name}); keep one"))
                continue
            found[stem_fqdn] = path

    bundle_needed = bool(found) or has_ca_files(ca_root / inventory)
    if not bundle_needed:
        return result
    bundle = result.bundle = load_ca_bundle(ca_root / inventory, ca_label, ca_pins, pins_file)
    result.problems += bundle.problems
    if bundle.problems:
        return result  # an untrusted bundle cannot vouch for anything
    if not bundle.certificates:
        # Named as the directory's problem, not as each certificate's chain failing.
        directory = ca_root / inventory
        there = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        state = f" (only {', '.join(there[:5])}, not read)" if there else "" if directory.is_dir() else " (it does not exist)"
        for fqdn, path in found.items():
            result.refused[fqdn] = str(Problem(
                ca_label, "", f"holds no CA certificates{state}, so files/certs/{inventory}/{path.name} cannot be "
                f"checked; commit the environment's root and sub CA certificates there as PEM files ending in "
                f"{', '.join(CA_SUFFIXES)}"))
        return result
    others = [
        load_ca_bundle(path, f"files/ca/{path.name}/")
        for path in sorted(ca_root.iterdir()) if path.is_dir() and path.name != inventory
    ] if ca_root.is_dir() else []

    for fqdn, path in found.items():  # fqdn: the file's stem, "<fqdn>@<host>" for a load-balanced endpoint
        label = f"files/certs/{inventory}/{path.name}"
        try:
            issued = check_certificate(
                path.read_bytes(), fqdn.split("@", 1)[0],
                csr_path=project_dir / "requests" / inventory / f"{fqdn}.csr",
                csr_label=f"requests/{inventory}/{fqdn}.csr",
                next_csr_path=project_dir / "requests" / inventory / f"{fqdn}{NEXT_CSR_SUFFIX}",
                next_csr_label=f"requests/{inventory}/{fqdn}{NEXT_CSR_SUFFIX}",
                bundle=bundle, others=others, source=label, now=now,
            )
        except CertificateProblem as problem:
            result.refused[fqdn] = str(Problem(label, "", str(problem)))
            continue
        result.certificates[fqdn] = issued
        days = issued.days_left(now)
        if days < renewal_days:
            result.warnings.append(
                f"{label}: expires on {format_date(issued.not_after)}, in {days} day(s), inside renewal_days "
                f"({renewal_days}); the run stages a next key: send requests/{inventory}/{fqdn}{NEXT_CSR_SUFFIX} "
                "to NHS England now")
    return result
