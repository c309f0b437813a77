"""The environment's CA certificates (``files/ca/<inventory>/``) and their pins (``ca_pins``).

The bundle is the only source of trust for an inventory: what issued certificates must chain to,
and what the listener trusts for client certificates. Every file in it must hold CA certificates
only; with pins, every certificate must match one pin and every pin one certificate, so a CA
swapped in the repository is refused before it vouches for anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from bars_receiver.certificates.pem import (
    CertificateProblem, fingerprints, is_ca, parse_certificates, subject, to_der, to_pem,
)
from bars_receiver.inventory.errors import Problem

CA_SUFFIXES = (".pem", ".crt", ".cer")


@dataclass
class CABundle:
    """The CA certificates of one inventory's ``files/ca/<inventory>/`` directory."""

    directory: str
    certificates: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def pem(self) -> str:
        return "".join(to_pem(cert) for _, cert in self.certificates)

    def describe(self) -> str:
        if not self.certificates:
            return "no CA certificates"
        return "; ".join(f"{subject(cert)} ({name})" for name, cert in self.certificates)


def normalise_fingerprint(value: str) -> str:
    """'7e05fa...' or '7E:05:FA:...' -> '7E:05:FA:...'; ValueError unless SHA-1 or SHA-256 sized."""
    digits = "".join(ch for ch in value if ch not in ": ").upper()
    if len(digits) not in (40, 64) or any(ch not in "0123456789ABCDEF" for ch in digits):
        raise ValueError(
            f"{value!r} is not a certificate fingerprint; give SHA-1 (40 hex digits) or SHA-256 "
            "(64 hex digits), e.g. '7E:05:FA:62:9B:5E:66:DB:B8:0E:97:41:7D:24:73:CB:CF:5A:31:06'"
        )
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


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
            if not is_ca(cert):
                bundle.problems.append(Problem(
                    file, "", f"holds {subject(cert)}, which is not a CA certificate (no basicConstraints "
                    f"CA:TRUE); {label} is for the environment's root and sub CA certificates only"))
                continue
            if to_der(cert) in seen:
                continue
            seen.add(to_der(cert))
            bundle.certificates.append((path.name, cert))
    if pins:
        _check_pins(bundle, pins, pins_file)
    return bundle


def _check_pins(bundle: CABundle, pins: dict[str, str], pins_file: str) -> None:
    matched: set[str] = set()
    for name, cert in bundle.certificates:
        prints = fingerprints(cert)
        hits = [label for label, pin in pins.items() if pin in prints.values()]
        matched.update(hits)
        if not hits:
            expected = ", ".join(f"{label} = {pin}" for label, pin in pins.items())
            bundle.problems.append(Problem(
                f"{bundle.directory}{name}", "",
                f"{subject(cert)} has SHA-1 {prints['SHA-1']} and SHA-256 {prints['SHA-256']}, which match "
                f"none of ca_pins in {pins_file} ({expected}); this is not a pinned CA certificate: replace the "
                "file with the CA certificate NHS England publishes, or, if the CA really changed, update the pin "
                "after checking the new fingerprint out of band"))
    for label, pin in pins.items():
        if label not in matched and bundle.certificates:
            bundle.problems.append(Problem(
                pins_file, f"ca_pins[{label!r}]",
                f"{pin} matches no certificate in {bundle.directory} ({bundle.describe()}); commit that CA "
                "certificate there, or remove the pin if the environment no longer uses that CA"))


def has_ca_files(directory: Path) -> bool:
    return directory.is_dir() and any(
        p.is_file() and p.suffix.lower() in CA_SUFFIXES and not p.name.startswith(".") for p in directory.iterdir()
    )
