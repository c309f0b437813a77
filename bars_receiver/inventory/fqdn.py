"""FQDN rules for BaRS receiver endpoints.

The FQDN is the certificate CN, so a wrong one costs a multi-day round trip with NHS England.
Everything here is checked on the controller before a CSR is made.
"""

from __future__ import annotations

import re

MAX_CN_LENGTH = 64  # X.509 ub-common-name
MAX_LABEL_LENGTH = 63
REQUIRED_SUFFIX = ".nhs.uk"

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
# ODS codes are alphanumeric, 3-12 characters; a setting suffix such as "-pharmoutcomes" is seen.
_ODS = re.compile(r"^[A-Za-z0-9]{3,12}(?:-[A-Za-z0-9]+)*$")


def check_label(label: str, what: str) -> None:
    """Raise ValueError unless ``label`` is a valid DNS label."""
    if not label:
        raise ValueError(f"{what} is empty; DNS labels need 1-63 letters, digits or hyphens")
    if len(label) > MAX_LABEL_LENGTH:
        raise ValueError(f"{what} {label!r} is {len(label)} characters; a DNS label holds at most 63")
    if not _LABEL.fullmatch(label):
        raise ValueError(
            f"{what} {label!r} is not a DNS label: use letters, digits and hyphens, "
            "not starting or ending with a hyphen"
        )


def check_ods(ods: str) -> str:
    """Return the ODS code upper-cased; ODS codes compare case-insensitively."""
    if not _ODS.fullmatch(ods):
        raise ValueError(
            f"{ods!r} is not an ODS code: use 3-12 letters or digits, optionally followed by a "
            "setting suffix such as '-pharmoutcomes' (e.g. 'RX809')"
        )
    return ods.upper()


def check_fqdn(fqdn: str) -> str:
    """Check the rules every receiver FQDN must meet, whatever the convention."""
    if len(fqdn) > MAX_CN_LENGTH:
        raise ValueError(
            f"{fqdn!r} is {len(fqdn)} characters; the certificate CN holds at most {MAX_CN_LENGTH}: "
            "shorten the supplier or provider name"
        )
    if not fqdn.lower().endswith(REQUIRED_SUFFIX):
        raise ValueError(
            f"{fqdn!r} is not under {REQUIRED_SUFFIX}; NHS England only issues certificates for "
            f"names ending in {REQUIRED_SUFFIX}"
        )
    for label in fqdn.split("."):
        check_label(label, f"label in {fqdn!r}")
    return fqdn


def convention_pattern(convention: str) -> re.Pattern[str]:
    """Turn a convention such as 'BaRS-INT-{ods}.{supplier}.thirdparty.nhs.uk' into a regex.

    Placeholders match one DNS label (or the ODS code); literal parts compare case-insensitively.
    """
    parts = re.split(r"(\{[a-z]+\})", convention)
    regex = ""
    for part in parts:
        if part == "{ods}":
            regex += r"(?P<ods>[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)"
        elif part.startswith("{") and part.endswith("}"):
            regex += rf"(?P<{part[1:-1]}>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)"
        else:
            regex += re.escape(part)
    return re.compile(f"^{regex}\\Z", re.IGNORECASE)


def derive_fqdn(convention: str, **names: str) -> str:
    """Fill in a convention; the result is checked with ``check_fqdn``."""
    return check_fqdn(convention.format(**names))
