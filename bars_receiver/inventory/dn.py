"""Client subject DNs for ``client_dn_allowlist``, in the exact form nginx compares them.

nginx 1.22 sets ``$ssl_client_s_dn`` with OpenSSL's ``X509_NAME_print_ex`` and the RFC 2253 flags
(less the escaping of bytes above 0x7F): the most specific RDN first (``CN=...,OU=...,O=...``),
``,`` between RDNs with no space, OpenSSL's short attribute names, and a backslash before
``, + " \\ < > ;``, before a leading ``#`` or space and before a trailing space. An entry written
any other way can never equal what nginx sees, so the real caller would get 403 with no warning.

Each entry is parsed and rebuilt in that form. Harmless variants (OpenSSL's ``/O=../CN=..`` form,
``", "`` separators, lower-case attribute names) are rewritten and the loader notes the rewrite;
an entry in the reverse order is refused with the right spelling, because a DN whose order is
unclear may be a different DN. Values are restricted to printable ASCII characters that have a
place in a certificate name; ``~`` (nginx would read a regular expression), ``$``, braces,
control characters and the like are refused.
"""

from __future__ import annotations

import re
from types import MappingProxyType

# OpenSSL short names (what nginx prints), keyed by the upper-cased spellings accepted.
ATTRIBUTES = MappingProxyType({
    "CN": "CN", "COMMONNAME": "CN",
    "OU": "OU", "ORGANIZATIONALUNITNAME": "OU",
    "O": "O", "ORGANIZATIONNAME": "O",
    "L": "L", "LOCALITYNAME": "L",
    "ST": "ST", "STATEORPROVINCENAME": "ST",
    "C": "C", "COUNTRYNAME": "C",
    "STREET": "street",
    "DC": "DC", "DOMAINCOMPONENT": "DC",
    "UID": "UID", "USERID": "UID",
    "EMAILADDRESS": "emailAddress", "E": "emailAddress",
    "SERIALNUMBER": "serialNumber",
})
# How specific each attribute is: nginx's order puts larger numbers first.
_RANK = MappingProxyType({"C": 1, "DC": 1, "ST": 2, "L": 2, "street": 2, "O": 3, "OU": 4,
                          "CN": 5, "UID": 5, "emailAddress": 5, "serialNumber": 5})
# Characters a value may hold (after unescaping). Specials are escaped again when rendered.
_VALUE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?@&_*\"<>;#]+")
_ESCAPED = ',+"\\<>;'
MAX_DN = 1024
EXAMPLE = "'CN=bars-proxy.int.api.service.nhs.uk,OU=Devices,O=nhs'"


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped by a backslash; escapes are kept."""
    parts, current, index = [], "", 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            current += text[index:index + 2]
            index += 2
            continue
        if char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    parts.append(current)
    return parts


def _unescape(raw: str, dn: str) -> str:
    out, index = "", 0
    while index < len(raw):
        char = raw[index]
        if char != "\\":
            out += char
            index += 1
            continue
        pair = raw[index + 1:index + 3]
        if re.fullmatch(r"[0-9A-Fa-f]{2}", pair):
            out += chr(int(pair, 16))
            index += 3
        elif raw[index + 1:index + 2] and raw[index + 1] in _ESCAPED + "#= ":
            out += raw[index + 1]
            index += 2
        else:
            raise ValueError(f"{dn!r} has a backslash that escapes nothing RFC 4514 allows; e.g. {EXAMPLE}")
    return out


def escape_value(value: str) -> str:
    """OpenSSL's RFC 2253 escaping of one attribute value."""
    out = "".join("\\" + c if c in _ESCAPED else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def _attribute(part: str, dn: str) -> tuple[str, str]:
    """(short name, value) for one ``type=value``."""
    name, equals, raw = part.partition("=")
    if not equals:
        raise ValueError(f"{dn!r}: {part!r} is not type=value; nginx shows DNs as {EXAMPLE}")
    short = ATTRIBUTES.get(name.strip().upper())
    if short is None:
        raise ValueError(
            f"{dn!r}: attribute {name.strip()!r} is not one nginx prints by name; use "
            f"{', '.join(sorted(set(ATTRIBUTES.values())))}"
        )
    stripped = raw.strip(" ")
    if raw.endswith("\\ "):  # an escaped trailing space is part of the value
        stripped = raw.lstrip(" ")
    plain = re.sub(r"\\(?:[0-9A-Fa-f]{2}|.)", "", stripped)  # what is left unescaped
    unescaped = next((c for c in plain if c in '"<>;\\'), None)
    if unescaped == "\\":
        raise ValueError(f"{dn!r}: a lone backslash in the {short} value escapes nothing; write '\\\\' for a backslash")
    if unescaped is not None:
        raise ValueError(f"{dn!r}: {unescaped!r} in the {short} value must be escaped as '\\{unescaped}' (RFC 4514)")
    if stripped.startswith("#"):
        raise ValueError(f"{dn!r}: a value starting with '#' is read as hex-encoded BER; write '\\#' for a literal '#'")
    value = _unescape(stripped, dn)
    if not value:
        raise ValueError(f"{dn!r}: {short} has an empty value")
    if not _VALUE.fullmatch(value):
        bad = next(c for c in value if not _VALUE.fullmatch(c))
        raise ValueError(
            f"{dn!r}: {short} holds {bad!r}, which has no place in a client DN here (printable ASCII "
            "letters, digits, spaces and ' ( ) + , - . / : = ? @ & _ * \" < > ; # only)"
        )
    return short, value


def normalise_dn(dn: str) -> str:
    """The entry in nginx's ``$ssl_client_s_dn`` form, or ValueError saying what is right."""
    if not isinstance(dn, str) or not dn.strip():
        raise ValueError(f"{dn!r} is not a subject DN; write it as nginx shows it, e.g. {EXAMPLE}")
    if len(dn) > MAX_DN:
        raise ValueError(f"a DN of {len(dn)} characters is longer than any client certificate's ({MAX_DN} at most)")
    if dn.startswith("~"):
        raise ValueError(
            f"{dn!r} starts with '~', which nginx would read as a regular expression; entries are compared "
            f"exactly: write the DN itself, e.g. {EXAMPLE}"
        )
    bad = next((c for c in dn if not (c.isascii() and c.isprintable())), None)
    if bad is not None:
        raise ValueError(f"{dn!r} contains {bad!r}; a client DN here is printable ASCII, e.g. {EXAMPLE}")
    slash_form = dn.startswith("/")
    parts = _split(dn[1:], "/") if slash_form else _split(dn, ",")
    rdns = []
    for part in parts:
        if len(_split(part, "+")) > 1:
            raise ValueError(f"{dn!r} has a multi-valued RDN ('+'); such DNs are not supported here")
        rdns.append(_attribute(part, dn))
    if slash_form:
        rdns.reverse()  # OpenSSL's one-line form lists the least specific RDN first
    text = ",".join(f"{short}={escape_value(value)}" for short, value in rdns)
    ranks = [_RANK[short] for short, _ in rdns]
    if ranks != sorted(ranks, reverse=True) and ranks == sorted(ranks):
        right = ",".join(f"{short}={escape_value(value)}" for short, value in reversed(rdns))
        raise ValueError(
            f"{dn!r} is written least-specific first; nginx shows this DN as {right!r} (most specific "
            "first), so write that"
        )
    return text


def notes(dn: str, normalised: str) -> str | None:
    """A note for the operator when the entry was rewritten, else None."""
    if dn == normalised:
        return None
    return f"{dn!r} is read as {normalised!r}, the form nginx compares; write it that way to silence this note"
