"""Strict grammars for every inventory value that reaches a rendered file or a host command.

Why an allow-list per field: nginx, nft, systemd and the shell each give meaning to quotes,
backslashes, ``;``, braces, ``$`` and control characters. Rather than guess which characters are
dangerous where, each field says exactly which characters and which shape it accepts, and values
that have a canonical form (URLs, DNs, paths) are parsed and rebuilt from their parts, so what is
rendered is never the text as written. Each check raises ``ValueError`` with what is wrong and
what would be right; the loader adds the file and field.

Why this module is long: it is the grammar of every field side by side, one function per kind of
value, so that everything that may reach nginx, nft, systemd or the shell is read, reviewed and
tested (tests/unit/test_grammar.py, test_boundary_properties.py) as one rule set; split by field,
the rules would drift apart.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

# --- DNS names and hosts -------------------------------------------------------------------

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_DNS_NAME = 253


def dns_name(value: str, what: str = "host name") -> str:
    """A DNS name: dot-separated labels of letters, digits and inner hyphens; lower-cased."""
    if not value or len(value) > MAX_DNS_NAME:
        raise ValueError(f"{value!r} is not a {what}: a DNS name is 1-{MAX_DNS_NAME} characters")
    labels = value.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a {what}: use dot-separated labels of letters, digits and hyphens "
            "(1-63 each, no hyphen first or last), e.g. 'app.example.internal'"
        )
    if labels[-1].isdigit():
        raise ValueError(f"{value!r} is neither an IP address nor a DNS name (a DNS name never ends in a number)")
    return value.lower()


def host(value: str, what: str = "host") -> str:
    """An IPv4 address, an IPv6 address (no zone) or a DNS name, in canonical spelling."""
    if "%" in value:
        raise ValueError(f"{value!r} has an IPv6 zone ('%...'); give an address without one")
    if re.fullmatch(r"[0-9.]+", value) or ":" in value:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address (IPv4 as four numbers 0-255 without leading zeros, "
                "e.g. '127.0.0.1'; IPv6 e.g. '::1')"
            ) from None
    return dns_name(value, what)


# --- upstream URL ---------------------------------------------------------------------------

_PORT = re.compile(r"[1-9][0-9]{0,4}")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def upstream(value: str) -> str:
    """The application's URL, rebuilt as ``scheme://host[:port]`` from parsed parts.

    Only http/https, a host (IP literal or DNS name) and an optional port 1-65535; no user, no
    path, query or fragment (nginx passes the request path through unchanged).
    """
    example = "e.g. 'http://127.0.0.1:5000'"
    bad = next((c for c in value if not (c.isascii() and c.isprintable()) or c.isspace()), None)
    if bad is not None:
        raise ValueError(f"{value!r} contains {bad!r}; an upstream URL is printable ASCII with no spaces, {example}")
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError(f"{value!r} is not a URL; write scheme://host:port, {example}")
    if scheme.lower() not in ("http", "https"):
        raise ValueError(f"{value!r} is not an http(s) URL of the application; {example}")
    authority, tail = re.match(r"([^/?#]*)(.*)", rest).groups()
    if "@" in authority:
        raise ValueError(f"{value!r} has a user or password ('...@'); give scheme://host:port only, {example}")
    if tail not in ("", "/"):
        raise ValueError(
            f"{value!r} has a path, query or fragment ({tail!r}); give scheme://host:port only, because the "
            f"request path is passed to the application unchanged ({example})"
        )
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", authority)
    if bracketed:
        name, port = bracketed.groups()
        if "%" in name:
            raise ValueError(f"{value!r}: {name!r} has a zone ('%...'); give an IPv6 address without zone, e.g. '[::1]'")
        try:
            address = ipaddress.IPv6Address(name)
        except ValueError:
            raise ValueError(f"{value!r}: {name!r} in brackets is not an IPv6 address without zone, e.g. '[::1]'") from None
        canonical_host = f"[{address}]"
    else:
        if authority.count(":") > 1:
            raise ValueError(f"{value!r}: write an IPv6 address in brackets, e.g. 'http://[::1]:5000'")
        name, colon, port = authority.partition(":")
        port = port if colon else None
        canonical_host = host(name, "host name in the upstream URL")
    if port is not None:
        if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
            raise ValueError(f"{value!r}: port {port!r} must be a number 1-65535 without leading zeros, {example}")
    address_text = canonical_host.strip("[]")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        address = None
    if address is not None and (address.is_unspecified or address.is_multicast):
        raise ValueError(f"{value!r}: {address} is not an address nginx can connect to; {example}")
    if address is not None and address.version == 6 and not address.is_loopback \
            and (address.ipv4_mapped or address in _IPV4_COMPATIBLE):
        raise ValueError(f"{value!r}: write the IPv4 address itself, not IPv6 {address}; {example}")
    if address is not None and (address.is_link_local or (address.version == 4 and address.is_reserved)):
        raise ValueError(
            f"{value!r}: {address} is a link-local, reserved or broadcast address (for example a cloud "
            f"metadata service), never the application; {example}"
        )
    return f"{scheme.lower()}://{canonical_host}" + (f":{port}" if port is not None else "")


def upstream_parts(canonical: str) -> tuple[str, str, int]:
    """(scheme, host without brackets, port) of the rebuilt form ``upstream`` returns, the scheme's
    default port made explicit; port 0 when it cannot be read (callers refuse it)."""
    parts = urlsplit(canonical)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname or "", port


def upstream_local_port(canonical: str) -> int | None:
    """The port of an upstream on this host's loopback (127.0.0.0/8, ::1 or localhost); None for
    an upstream elsewhere. The firewall keeps that port to the host itself, so an application
    bound wider than loopback is not reached directly."""
    _, name, port = upstream_parts(canonical)
    try:
        local = ipaddress.ip_address(name).is_loopback
    except ValueError:
        local = name == "localhost"
    return port if local else None


# --- receiver_path --------------------------------------------------------------------------

_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
MAX_RECEIVER_PATH = 255
# Where nginx's own error answers live on every server (nginx/edge_errors.py): never proxied.
ERROR_PATH = "/__bars_error/"


def receiver_path(value: str) -> str:
    """An absolute URL path ending in '/', made of RFC 3986 unreserved characters only."""
    right = "e.g. '/' or '/bars/' (segments of letters, digits, '-', '.', '_', '~')"
    # nginx matches the path as a prefix: without the closing "/", '/bars' would also take '/barsX'.
    if not value.startswith("/") or not value.endswith("/"):
        raise ValueError(f"{value!r} must be a URL path that starts and ends with '/', {right}")
    if len(value) > MAX_RECEIVER_PATH:
        raise ValueError(f"{value!r} is {len(value)} characters; at most {MAX_RECEIVER_PATH}")
    if value == "/":
        return value
    if value.startswith(ERROR_PATH[:-1]):
        raise ValueError(f"{value!r}: paths starting {ERROR_PATH[:-1]} are where nginx's own error answers live; {right}")
    for segment in value[1:-1].split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"{value!r} has an empty, '.' or '..' segment; {right}")
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(f"{value!r}: segment {segment!r} has a character outside the allowed set; {right}")
    return value


# --- directories on the host ----------------------------------------------------------------

# Persistent system directories: a deploy directory may be neither one of these nor a parent of one.
SYSTEM_DIRS = frozenset({
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
})
# Virtual or wiped at boot: keys kept there would vanish.
VOLATILE_DIRS = ("/dev", "/proc", "/run", "/sys", "/tmp", "/var/tmp", "/var/run", "/boot")
DEPLOY_MARK = "bars"
# Where a deploy directory may sit, and its own name: 'bars' then letters, digits, '-' or '_'
# (no '.', so never a file-like name such as conf.d/bars.conf that another program would include).
DEPLOY_PARENTS = ("/etc", "/srv", "/opt", "/var/lib")
_DEPLOY_NAME = re.compile(r"bars[a-z0-9_-]*")
MAX_PATH = 200
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def deploy_dir(value: str) -> str:
    """A directory the deploy owns, normalised (``//``, ``/./`` and a closing ``/`` removed).

    It is absolute, made of plain segments, its own name contains 'bars' (so it is a directory of
    this deploy, never an existing system directory such as /etc/ssl or /srv, nor a parent of
    one), and it is not under a virtual or boot-wiped directory (/proc, /run, /tmp, ...).
    """
    right = "e.g. '/etc/bars-receiver'"
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute directory, {right}")
    if len(value) > MAX_PATH:
        raise ValueError(f"{value!r} is {len(value)} characters; at most {MAX_PATH}")
    segments = [s for s in value.split("/") if s not in ("", ".")]
    for segment in segments:
        if segment == "..":
            raise ValueError(f"{value!r} contains '..'; write the directory it means directly, {right}")
        if not _PATH_SEGMENT.fullmatch(segment):
            raise ValueError(
                f"{value!r}: {segment!r} is not a plain path segment (letters, digits, '.', '_', '-', "
                f"not starting with '.' or '-'), {right}"
            )
    path = posixpath.normpath("/" + "/".join(segments))
    if path == "/" or path in SYSTEM_DIRS or DEPLOY_MARK not in posixpath.basename(path).lower():
        raise ValueError(
            f"{value!r} is not a directory of this deploy: the deploy makes it root-only, so it must be "
            f"one of its own, whose name contains '{DEPLOY_MARK}' (never /, a system directory such as "
            f"/etc/ssl or /srv, or a parent of one), {right}"
        )
    for volatile in VOLATILE_DIRS:
        if path == volatile or path.startswith(volatile + "/"):
            raise ValueError(f"{value!r} is under {volatile}, which does not survive a reboot; {right}")
    parent, name = posixpath.split(path)
    if parent not in DEPLOY_PARENTS or not _DEPLOY_NAME.fullmatch(name):
        raise ValueError(
            f"{value!r} is not a directory of this deploy: it must be directly under "
            f"{', '.join(DEPLOY_PARENTS)}, with a lower-case name starting '{DEPLOY_MARK}' (letters, digits, "
            f"'-', '_'; no '.'), so it is never another program's directory or file, {right}"
        )
    return path


def overlaps(a: str, b: str) -> bool:
    """Normalised directories ``a`` and ``b`` are the same or one holds the other."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def repository_file(value: str, example: str) -> str:
    """A file in this repository, relative to its top, of plain segments; normalised."""
    right = f"a file in this repository, relative to its top, e.g. {example!r}"
    segments = [s for s in value.split("/") if s not in ("", ".")]
    if value.startswith("/") or not segments or value.endswith("/"):
        raise ValueError(f"{value!r} must be {right}")
    for segment in segments:
        if segment == ".." or not _PATH_SEGMENT.fullmatch(segment):
            raise ValueError(f"{value!r}: {segment!r} is not a plain path segment; it must be {right}")
    return "/".join(segments)


# --- TLS ------------------------------------------------------------------------------------

# TLS 1.2 suites allowed in tls_ciphers: Mozilla's "intermediate" profile less the DHE suites
# (they need a dhparam file and are slower): forward secrecy (ECDHE) with an AEAD cipher only.
STRONG_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
)


def cipher_list(value: str) -> str:
    """A ':'-separated list of suite names from ``STRONG_CIPHERS``, each once; no OpenSSL keywords
    (ALL, DEFAULT, HIGH), no '!', '+', '-' or '@' operators: the list is exactly what is offered."""
    names = value.split(":")
    for name in names:
        if name not in STRONG_CIPHERS:
            raise ValueError(
                f"{name!r} in {value!r} is not one of the allowed TLS 1.2 suites (ECDHE with AES-GCM or "
                f"ChaCha20, named exactly; no keywords or '!'/'+'/'-'/'@' operators): {':'.join(STRONG_CIPHERS)}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{value!r} names a suite twice")
    return value


# --- names ----------------------------------------------------------------------------------

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?")


def email(value: str) -> str:
    """A plain e-mail address: local part of letters, digits, '.', '_', '+', '-'; a DNS domain."""
    local, at, domain = value.partition("@")
    if not at or not _EMAIL_LOCAL.fullmatch(local) or ".." in local:
        raise ValueError(f"{value!r} is not a plain e-mail address, e.g. 'dir@nhs.net'")
    try:
        dns_name(domain, "mail domain")
    except ValueError:
        raise ValueError(f"{value!r} is not a plain e-mail address (domain {domain!r}), e.g. 'dir@nhs.net'") from None
    if "." not in domain:
        raise ValueError(f"{value!r}: the domain {domain!r} has no dot, e.g. 'dir@nhs.net'")
    return value


ENV_PREFIX = "BARS_"


def env_name(value: str) -> str:
    """The name of a CI variable holding a secret. Only ``BARS_`` variables: the value is copied to
    the host (key.pass, pfx.pass), so an inventory must not be able to name the CI job's other
    variables (PATH, CI_JOB_TOKEN, a cloud credential) and carry them off to a host."""
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", value):
        raise ValueError(
            f"{value!r} is not an environment variable name; use capitals, digits and "
            "underscores such as 'BARS_INT_KEY_PASSPHRASE'"
        )
    if not value.startswith(ENV_PREFIX) or value == ENV_PREFIX:
        raise ValueError(
            f"{value!r} does not start with {ENV_PREFIX!r}: the deploy copies this variable's value to the "
            f"host, so it reads only variables meant for it, e.g. 'BARS_INT_KEY_PASSPHRASE'"
        )
    return value


def unix_name(value: str, what: str, example: str) -> str:
    """A user or group name as Debian's adduser accepts it (NAME_REGEX), at most 32 characters."""
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        raise ValueError(f"{value!r} is not a usable {what} (lower case, digits, '_' or '-'), e.g. {example!r}")
    return value


def label_text(value: str, what: str) -> str:
    """Short free text used only in messages and notes: printable ASCII, no quotes or backslashes."""
    if not value or len(value) > 64 or not re.fullmatch(r"[A-Za-z0-9 ._()-]+", value):
        raise ValueError(f"{value!r} is not a usable {what}: 1-64 letters, digits, spaces and '._()-'")
    return value


# FQDN conventions: only these placeholders, literal parts of DNS characters.
def fqdn_convention(value: str, hosting: str) -> str:
    right = f"e.g. 'BaRS-INT-{{ods}}.{{{hosting}}}.thirdparty.nhs.uk'"
    placeholders = re.findall(r"\{([^{}]*)\}", value)
    literal = re.sub(r"\{(ods|supplier|provider)\}", "", value)
    if sorted(placeholders) != sorted(["ods", hosting]) or not re.fullmatch(r"[A-Za-z0-9.-]+", literal):
        raise ValueError(
            f"{value!r} is not an FQDN convention: DNS characters with the placeholders {{ods}} and "
            f"{{{hosting}}} once each, {right}"
        )
    if not value.lower().endswith(".nhs.uk"):
        raise ValueError(f"{value!r} does not end in .nhs.uk, {right}")
    return value
