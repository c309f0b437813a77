"""Issued certificates, checked on the controller before any host is touched.

NHS England sends a certificate days after the CSR went out; ops save it as
``files/certs/<inventory>/<fqdn>.cer`` (PEM or DER, the leaf alone or followed by its chain)
and re-run the deploy. Everything that can be known without the host is checked here while the
inventory loads: the file parses, its CN is the FQDN, its key is the key behind the committed CSR
``requests/<inventory>/<fqdn>.csr`` (or, during a renewal, behind ``<fqdn>.next.csr``), and
cryptography's path validation (``chain.py``) accepts it against the CA certificates in
``files/ca/<inventory>/`` (which match ``ca_pins`` when pins are set): signatures, validity, CA
constraints, TLS server use. A refusal names the file, says what is wrong and what is right.

A refused certificate affects its endpoint only: it is not installed, and every other endpoint
of the inventory goes ahead (``CertificateCheck.refused``). What concerns the inventory as a whole
(the CA bundle and its pins, a certificate file under the wrong name or twice) still stops the
run before any host is touched (``CertificateCheck.problems``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import chain
from .errors import Problem
from .x509 import colon_hex, fingerprint, sha256_hex, spki_der

CERT_SUFFIX = ".cer"
NEXT_CSR_SUFFIX = ".next.csr"  # the renewal request pack's CSR, for the key staged in next/
CA_SUFFIXES = (".pem", ".crt", ".cer")
MAX_CHAIN = chain.MAX_DEPTH  # CAs above the leaf
_BOM = b"\xef\xbb\xbf"


class CertificateProblem(Exception):
    """One reason a certificate file is refused; the message follows the file name."""


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
class CABundle:
    """The CA certificates of one inventory's ``files/ca/<inventory>/`` directory."""

    directory: str
    certificates: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def pem(self) -> str:
        return "".join(_pem(cert) for _, cert in self.certificates)

    def describe(self) -> str:
        if not self.certificates:
            return "no CA certificates"
        return "; ".join(f"{_subject(cert)} ({name})" for name, cert in self.certificates)


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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


_subject = chain.subject  # 'CN=...,O=...' as messages quote a certificate


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # wrong issuer name, bad signature, or an algorithm cryptography cannot check
        return False
    return True


def normalise_fingerprint(value: str) -> str:
    """'7e05fa...' or '7E:05:FA:...' -> '7E:05:FA:...'; ValueError unless SHA-1 or SHA-256 sized."""
    digits = "".join(ch for ch in value if ch not in ": ").upper()
    if len(digits) not in (40, 64) or any(ch not in "0123456789ABCDEF" for ch in digits):
        raise ValueError(
            f"{value!r} is not a certificate fingerprint; give SHA-1 (40 hex digits) or SHA-256 "
            "(64 hex digits), e.g. '7E:05:FA:62:9B:5E:66:DB:B8:0E:97:41:7D:24:73:CB:CF:5A:31:06'"
        )
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def _fingerprints(cert: x509.Certificate) -> dict[str, str]:
    der = _der(cert)
    return {"SHA-1": colon_hex(hashlib.sha1(der).digest()), "SHA-256": fingerprint(der)}


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------ parsing

def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Read PEM (one or more CERTIFICATE blocks) or DER (one certificate)."""
    data = data.removeprefix(_BOM)
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


# ------------------------------------------------------------------ CA bundles

def load_ca_bundle(directory: Path, label: str, pins: dict[str, str] | None = None,
                   pins_file: str = "group_data") -> CABundle:
    """Read every CA certificate in ``directory``; check each is a CA and matches ``pins``.

    With pins, every CA certificate must match one pin and every pin must match one certificate.
    """
    bundle = CABundle(directory=label)
    seen: set[bytes] = set()
    paths = sorted(p for p in directory.glob("*") if p.is_file() and p.suffix.lower() in CA_SUFFIXES
                   and not p.name.startswith(".")) if directory.is_dir() else []
    for path in paths:
        file = f"{label}{path.name}"
        try:
            certs = parse_certificates(path.read_bytes())
        except CertificateProblem as problem:
            bundle.problems.append(Problem(file, "", str(problem)))
            continue
        for cert in certs:
            if not _is_ca(cert):
                bundle.problems.append(Problem(
                    file, "", f"holds {_subject(cert)}, which is not a CA certificate (no basicConstraints "
                    f"CA:TRUE); {label} is for the environment's root and sub CA certificates only"))
                continue
            if _der(cert) in seen:
                continue
            seen.add(_der(cert))
            bundle.certificates.append((path.name, cert))
    if pins:
        _check_pins(bundle, pins, pins_file)
    return bundle


def _check_pins(bundle: CABundle, pins: dict[str, str], pins_file: str) -> None:
    matched: set[str] = set()
    for name, cert in bundle.certificates:
        prints = _fingerprints(cert)
        hits = [label for label, pin in pins.items() if pin in prints.values()]
        matched.update(hits)
        if not hits:
            expected = ", ".join(f"{label} = {pin}" for label, pin in pins.items())
            bundle.problems.append(Problem(
                f"{bundle.directory}{name}", "",
                f"{_subject(cert)} has SHA-1 {prints['SHA-1']} and SHA-256 {prints['SHA-256']}, which match "
                f"none of ca_pins in {pins_file} ({expected}); this is not a pinned CA certificate: replace the "
                "file with the CA certificate NHS England publishes, or, if the CA really changed, update the pin "
                "after checking the new fingerprint out of band"))
    for label, pin in pins.items():
        if label not in matched and bundle.certificates:
            bundle.problems.append(Problem(
                pins_file, f"ca_pins[{label!r}]",
                f"{pin} matches no certificate in {bundle.directory} ({bundle.describe()}); commit that CA "
                "certificate there, or remove the pin if the environment no longer uses that CA"))


# ------------------------------------------------------------------ one certificate

def _self_signed_message(cert: x509.Certificate, ca_dir: str) -> str:
    return (
        f"is self-signed ({_subject(cert)} issued by itself); NHS England certificates are issued by the "
        f"environment's sub CA in {ca_dir}: send the CSR to NHS England and save what they return"
    )


def _leaf_and_chain(certs: list[x509.Certificate], fqdn: str, ca_dir: str) -> tuple[x509.Certificate, list[x509.Certificate]]:
    leaves = [cert for cert in certs if not _is_ca(cert)]
    if len(certs) == 1 and _self_signed(certs[0]):
        raise CertificateProblem(_self_signed_message(certs[0], ca_dir))
    if not leaves:
        raise CertificateProblem(
            f"holds only CA certificates ({', '.join(_subject(c) for c in certs)}); the endpoint's own "
            f"certificate (CN={fqdn}) is missing: save the certificate NHS England issued for this endpoint"
        )
    if len(leaves) > 1:
        raise CertificateProblem(
            f"holds {len(leaves)} end-entity certificates ({', '.join(_subject(c) for c in leaves)}); keep only "
            f"the one for CN={fqdn}, optionally followed by its sub CA"
        )
    leaf = leaves[0]
    return leaf, [cert for cert in certs if cert is not leaf]


def _check_cn(leaf: x509.Certificate, fqdn: str) -> None:
    names = [attr.value for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names:
        raise CertificateProblem(f"has no CN (subject {_subject(leaf)}); it must be CN={fqdn}")
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


def _chain(leaf: x509.Certificate, extras: list[x509.Certificate], bundle: CABundle,
           others: list[CABundle], now: datetime, fqdn: str) -> list[x509.Certificate]:
    """The path above ``leaf`` up to a root in ``bundle``, [sub CA..., root], as cryptography's
    verifier (``chain.verify``) found it. A refusal is put into words by today's specific checks
    (``_explain_chain``, validity, usage), then ``chain.explain``, else the verifier's own reason."""
    pool = [cert for _, cert in bundle.certificates]
    pool_der = {_der(cert) for cert in pool}
    for extra in extras:
        if _der(extra) not in pool_der:
            raise CertificateProblem(
                f"carries {_subject(extra)} (SHA-256 {_fingerprints(extra)['SHA-256']}) in its chain, which is not "
                f"among the CA certificates in {bundle.directory}; that directory is the only source of trust: "
                "remove the extra certificate from the file, or commit the CA to the bundle after checking it"
            )
    if _self_signed(leaf):
        raise CertificateProblem(_self_signed_message(leaf, bundle.directory))
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
        parents = [ca for ca in named if _signed_by(current, ca)]
        if not parents:
            what = "it" if current is leaf else f"its issuer {_subject(current)}"
            foreign = _find_issuer(current, others)
            if foreign is not None:
                raise CertificateProblem(
                    f"chains to another environment's CA: {what} was issued by {_subject(foreign[1])} from "
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
                f"chains through CA {_subject(parent)}, which is not valid until "
                f"{_date(parent.not_valid_before_utc)}; check the CA file in {bundle.directory} and this machine's clock"
            )
        if now > parent.not_valid_after_utc:
            raise CertificateProblem(
                f"chains through CA {_subject(parent)}, which expired on {_date(parent.not_valid_after_utc)}; "
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
            if ca.subject == cert.issuer and _signed_by(cert, ca):
                return other.directory, ca
    return None


def _check_validity(leaf: x509.Certificate, now: datetime) -> None:
    if now < leaf.not_valid_before_utc:
        raise CertificateProblem(
            f"is not valid yet: valid from {_date(leaf.not_valid_before_utc)}, it is now {_date(now)}; re-run once it "
            "is valid, or check this machine's clock"
        )
    if now > leaf.not_valid_after_utc:
        raise CertificateProblem(
            f"expired on {_date(leaf.not_valid_after_utc)}; request a new certificate (send this endpoint's CSR "
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
    path = _chain(leaf, extras, bundle, others, now, fqdn)
    intermediates = [ca for ca in path if ca.subject != ca.issuer]
    key_der = spki_der(leaf.public_key())
    return IssuedCertificate(
        fqdn=fqdn,
        source=source,
        leaf_pem=_pem(leaf),
        chain_pem=_pem(leaf) + "".join(_pem(ca) for ca in intermediates),
        ca_pem=bundle.pem,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        public_key_sha256=sha256_hex(key_der),
        issuer=leaf.issuer.rfc4514_string(),
        serial=f"{leaf.serial_number:X}",
        fingerprint_sha256=_fingerprints(leaf)["SHA-256"],
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

    bundle_needed = bool(found) or _has_ca_files(ca_root / inventory)
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
                f"{label}: expires on {_date(issued.not_after)}, in {days} day(s), inside renewal_days "
                f"({renewal_days}); the run stages a next key: send requests/{inventory}/{fqdn}{NEXT_CSR_SUFFIX} "
                "to NHS England now")
    return result


def _has_ca_files(directory: Path) -> bool:
    return directory.is_dir() and any(
        p.is_file() and p.suffix.lower() in CA_SUFFIXES and not p.name.startswith(".") for p in directory.iterdir()
    )
