"""Structural verification of the rendered listener configuration, on the controller, before it
is uploaded: the text is parsed with crossplane (the nginx configuration parser) and its shape
compared with what the validated settings say it must be.

``nginx -t`` only says nginx can load a file; it would happily load a plain-HTTP ``listen``, a
``return 200`` or a ``proxy_pass`` to a client-chosen host. This check says the file is *ours*:
every directive is one the template writes, every ``listen`` is ``listen_port`` with ``ssl``,
every proxying server verifies clients against its environment's CA, there is exactly one
server per active FQDN, proxying goes only to the validated upstreams, and the DN allow-list is
compared exactly. Anything else refuses the run with a message naming what differs.

Why this module is long: it is the one list of what the rendered configuration may hold, every
directive by context and every check against the settings, so a change to the template meets every
rule it must keep in one file (tests/unit/test_nginx_structure.py breaks each rule in turn).
"""

from __future__ import annotations

import ipaddress
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import crossplane

from bars_receiver.nginx.edge_errors import ERROR_PREFIX

# Every directive the template may write, by the context it may appear in.
HTTP_LEVEL = frozenset({"server_names_hash_bucket_size", "server_names_hash_max_size", "map", "server", "upstream", "log_format", "js_import", "js_set"})
# njs runs code inside nginx: only the deploy's own module, and only its one variable.
NJS_IMPORT = ("/etc/nginx/bars-receiver/bars_fingerprint.js",)
NJS_SET = ("$bars_client_sha256", "bars_fingerprint.sha256")
SERVER_LEVEL = frozenset({
    "listen", "server_name", "ssl_reject_handshake", "ssl_certificate", "ssl_certificate_key",
    "ssl_password_file", "ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers", "ssl_ecdh_curve",
    "ssl_session_cache", "ssl_session_timeout", "ssl_session_tickets", "ssl_client_certificate",
    "ssl_verify_client", "ssl_verify_depth", "ssl_crl", "server_tokens", "allow", "deny", "location",
    "error_page", "access_log", "client_max_body_size", "client_body_buffer_size",
    "client_body_in_file_only", "client_header_buffer_size", "large_client_header_buffers",
    "keepalive_timeout", "if", "return", "add_header", "default_type",
})
LOCATION_LEVEL = frozenset({
    "proxy_pass", "proxy_http_version", "proxy_set_header", "proxy_connect_timeout", "proxy_send_timeout",
    "proxy_read_timeout", "proxy_request_buffering", "proxy_buffering", "proxy_pass_request_headers",
    "proxy_intercept_errors", "proxy_hide_header", "proxy_ignore_headers", "if", "return", "allow", "deny", "add_header", "default_type",
    "internal", "client_max_body_size", "access_log", "error_page", "location",
})
UPSTREAM_LEVEL = frozenset({"server", "keepalive", "keepalive_timeout", "keepalive_requests"})
IF_LEVEL = frozenset({"return"})


# The only conditions an ``if`` may test: the template's two, which read variables and set none
# (a regex condition with a named capture would set a variable, e.g. the allow-list's).
DOT_SEGMENTS_IF = ("$bars_dot_segments",)
ALLOWLIST_IF = ("$bars_client_allowed", "=", "0")
# An application's answer must not steer nginx to another of its locations (an error page, or
# round the receiver location's own checks).
IGNORED_UPSTREAM_HEADERS = ("X-Accel-Redirect",)

_ERROR_TARGET = re.compile(re.escape(ERROR_PREFIX) + r"[a-z_]+")
_STATUS = re.compile(r"=[45][0-9][0-9]")
_CODE = re.compile(r"[0-9]+")
# The variable every error location answers with, and the http-level map that gives it a body.
ERROR_BODY = "$bars_error_body"


class ConfigRefused(ValueError):
    """The rendered configuration is not the shape the settings describe."""


@dataclass(frozen=True)
class ExpectedSite:
    fqdn: str
    client_ca: str
    upstream_scheme: str
    upstream_server: str  # host:port, as the upstream block must name it


@dataclass(frozen=True)
class Expected:
    port: int
    sites: tuple[ExpectedSite, ...]
    allowlist: tuple[str, ...]
    proxy_addresses: tuple[str, ...] = ()
    # Every status nginx itself may produce, each of which must go to a BaRS-shaped answer.
    error_statuses: tuple[int, ...] = ()
    problems: list[str] = field(default_factory=list)


def nginx_unescape(token: str) -> str:
    """What nginx makes of a quoted token's text (ngx_conf_read_token's copy loop)."""
    out, i = [], 0
    while i < len(token):
        char = token[i]
        if char == "\\" and i + 1 < len(token):
            following = token[i + 1]
            if following in "\"'\\":
                out.append(following)
                i += 2
                continue
            if following in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[following])
                i += 2
                continue
        out.append(char)
        i += 1
    return "".join(out)


def parse(text: str) -> list[dict]:
    """The http-level directives of a conf.d fragment. Includes are not followed: an ``include``
    is a directive like any other, and not one the template writes."""
    with tempfile.TemporaryDirectory() as scratch:
        fragment = Path(scratch) / "bars-receiver.conf"
        fragment.write_text(text)
        # Contexts are checked below, against our own allow-lists (a fragment is read as "main").
        parsed = crossplane.parse(str(fragment), single=True, check_ctx=False, catch_errors=True)
    errors = parsed["errors"] + [e for config in parsed["config"] for e in config["errors"]]
    if errors:
        raise ConfigRefused("; ".join(f"line {error.get('line')}: {error['error']}" for error in errors))
    return parsed["config"][0]["parsed"]


def _walk(directives: list[dict], allowed: frozenset[str], where: str, problems: list[str]) -> None:
    for directive in directives:
        name = directive["directive"]
        if name not in allowed:
            problems.append(f"line {directive['line']}: directive {name!r} is not allowed in {where}")
            continue
        block = directive.get("block")
        if block is None:
            continue
        if name == "server":
            _walk(block, SERVER_LEVEL, "a server", problems)
        elif name == "location":
            _walk(block, LOCATION_LEVEL, "a location", problems)
        elif name == "if":
            _walk(block, IF_LEVEL, "an if block", problems)
        elif name == "upstream":
            _walk(block, UPSTREAM_LEVEL, "an upstream block", problems)
        elif name != "map":
            problems.append(f"line {directive['line']}: {name!r} must not have a block")


def _all(directives: list[dict], name: str) -> list[dict]:
    """Every directive of this name, at any depth."""
    found = []
    for directive in directives:
        if directive["directive"] == name:
            found.append(directive)
        if directive.get("block") and directive["directive"] != "map":
            found += _all(directive["block"], name)
    return found


def _args(directives: list[dict], name: str) -> list[list[str]]:
    return [d["args"] for d in directives if d["directive"] == name]


def verify(text: str, expected: Expected) -> None:
    """Raise ConfigRefused naming every way ``text`` differs from what ``expected`` allows."""
    http = parse(text)
    problems: list[str] = []
    _walk(http, HTTP_LEVEL, "the http context", problems)
    if problems:
        raise ConfigRefused("; ".join(problems))

    _check_njs(http, problems)
    bodies = _error_bodies(http, problems)
    port = str(expected.port)
    upstreams = {d["args"][0]: d["block"] for d in http if d["directive"] == "upstream"}
    servers = [d for d in http if d["directive"] == "server"]
    defaults, sites = [], {}
    for server in servers:
        block = server["block"]
        line = server["line"]
        for args in _args(block, "listen"):
            if args[:2] not in ([port, "ssl"], [f"[::]:{port}", "ssl"]) or args[2:] not in ([], ["default_server"]):
                problems.append(f"server at line {line}: 'listen {' '.join(args)}' is not listen_port {port} with ssl")
        if not _args(block, "listen"):
            problems.append(f"server at line {line} has no listen")
        for page in _all(block, "error_page"):
            # "=403": the status the answer is sent with. Required: the error location's own
            # return status is a placeholder that only an error page's status replaces.
            *codes, status, target = page["args"] if len(page["args"]) >= 3 else ["", "", ""]
            if not codes or not all(_CODE.fullmatch(c) for c in codes) or not _STATUS.fullmatch(status) \
                    or target not in bodies:
                problems.append(f"line {page['line']}: 'error_page {' '.join(page['args'])}' must send errors "
                                f"with an error status (=4xx or =5xx) to a {ERROR_PREFIX}<name> the error-body "
                                "map answers")
        for ret in _all(block, "return"):
            if not ret["args"] or not _CODE.fullmatch(ret["args"][0]) or int(ret["args"][0]) < 400:
                problems.append(f"line {ret['line']}: 'return {' '.join(ret['args'])}' would answer for the application")
        for condition in _all(block, "if"):
            if tuple(condition["args"]) not in (DOT_SEGMENTS_IF, ALLOWLIST_IF):
                problems.append(f"line {condition['line']}: 'if ({' '.join(condition['args'])})' is not one of the "
                                "template's checks ($bars_dot_segments, $bars_client_allowed = 0)")
        _check_edge(line, block, expected.error_statuses, bodies, problems)
        names = _args(block, "server_name")
        is_default = any("default_server" in args for args in _args(block, "listen"))
        if is_default:
            defaults.append(server)
            if _all(block, "proxy_pass") or names or _args(block, "ssl_reject_handshake") != [["on"]]:
                problems.append(f"catch-all server at line {line} must only refuse (ssl_reject_handshake on, no proxy_pass)")
            continue
        if len(names) != 1 or len(names[0]) != 1:
            problems.append(f"server at line {line} must name exactly one FQDN")
            continue
        sites.setdefault(names[0][0], []).append(server)

    if len(defaults) != 1:
        problems.append(f"there must be exactly one catch-all server, not {len(defaults)}")
    wanted = {site.fqdn: site for site in expected.sites}
    for fqdn, found in sites.items():
        if fqdn not in wanted:
            problems.append(f"server {fqdn!r} is not an active endpoint")
        elif len(found) != 1:
            problems.append(f"{fqdn} has {len(found)} servers; exactly one is allowed")
    for fqdn, site in wanted.items():
        if fqdn not in sites:
            problems.append(f"active endpoint {fqdn} has no server")
            continue
        block = sites[fqdn][0]["block"]
        if _args(block, "ssl_verify_client") != [["on"]]:
            problems.append(f"{fqdn}: ssl_verify_client must be on")
        if _args(block, "ssl_client_certificate") != [[site.client_ca]]:
            problems.append(f"{fqdn}: ssl_client_certificate must be {site.client_ca}")
        passes = _all(block, "proxy_pass")
        proxying = [location for location in _all(block, "location") if _args(location.get("block") or [], "proxy_pass")]
        for location in proxying:
            inner = location["block"]
            if _args(inner, "allow") or _args(inner, "deny"):
                problems.append(f"{fqdn}: a proxying location must not change the server's source list")
            checks = [tuple(d["args"]) for d in inner if d["directive"] == "if"]
            if checks != [DOT_SEGMENTS_IF] + ([ALLOWLIST_IF] if expected.allowlist else []):
                problems.append(f"{fqdn}: the proxying location must first refuse dot-segment paths"
                                + (" and subjects off the allow-list" if expected.allowlist else ""))
            if _args(inner, "proxy_ignore_headers") != [list(IGNORED_UPSTREAM_HEADERS)]:
                problems.append(f"{fqdn}: the proxying location must ignore the application's "
                                f"{' '.join(IGNORED_UPSTREAM_HEADERS)}")
        if not passes:
            problems.append(f"{fqdn}: nothing is proxied")
        elif len(passes) != 1 or len(proxying) != 1:
            problems.append(f"{fqdn}: exactly one location may proxy, the receiver_path one")
        for proxy in passes:
            _check_proxy(fqdn, proxy, site, upstreams, problems)
        _check_sources(fqdn, block, expected.proxy_addresses, problems)
    # Every proxy_pass target of the active endpoints' servers, gathered once (not per upstream).
    used = {p["args"][0] for s in expected.sites for server in sites.get(s.fqdn, [])
            for p in _all(server["block"], "proxy_pass") if p["args"]}
    schemes = {s.upstream_scheme for s in expected.sites}
    for name in upstreams:
        if not any(f"{scheme}://{name}" in used for scheme in schemes):
            problems.append(f"upstream {name} is used by no endpoint")
    _check_allowlist(http, expected.allowlist, problems)
    if problems:
        raise ConfigRefused("; ".join(problems))


def _error_bodies(http: list[dict], problems: list[str]) -> dict[str, str]:
    """The one http-level ``map $uri $bars_error_body``: each error location's URI to its fixed
    answer (as written, nginx-escaped); its default is empty and it maps nothing else."""
    maps = [d for d in http if d["directive"] == "map" and d["args"][1:2] == [ERROR_BODY]]
    if len(maps) != 1 or maps[0]["args"] != ["$uri", ERROR_BODY]:
        problems.append(f"the error answers must come from one 'map $uri {ERROR_BODY}', not {len(maps)}")
        return {}
    bodies = {}
    for entry in maps[0].get("block") or []:
        key, args = entry["directive"], entry["args"]
        if key == "default" and args == [""]:
            continue
        if not _ERROR_TARGET.fullmatch(key) or len(args) != 1 or key in bodies:
            problems.append(f"line {entry['line']}: {ERROR_BODY} maps only each {ERROR_PREFIX}<name> once, "
                            "to a fixed answer, and nothing else (default \"\")")
            continue
        try:
            outcome = json.loads(nginx_unescape(args[0]))
        except ValueError:
            outcome = None
        if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
            problems.append(f"line {entry['line']}: {key} does not answer an OperationOutcome")
        bodies[key] = args[0]
    return bodies


def _check_edge(line: int, block: list[dict], statuses: tuple[int, ...], bodies: dict[str, str],
                problems: list[str]) -> None:
    """Every nginx-generated status goes to the server's one internal error location, which only
    answers the fixed OperationOutcome the error-body map gives its URI; no named location (a
    request nginx refuses while reading its request line has no URI and cannot reach one)."""
    routed = {int(code) for args in _args(block, "error_page") for code in args[:-2] if _CODE.fullmatch(code)}
    if statuses and routed != set(statuses):
        problems.append(f"server at line {line}: error pages cover {sorted(routed)}, not {sorted(statuses)}")
    found = 0
    for location in _all(block, "location"):
        args = location["args"]
        if args[0].startswith("@"):
            problems.append(f"line {location['line']}: named location {args[0]} is not used; errors go to "
                            f"'location ^~ {ERROR_PREFIX}'")
            continue
        if not any(ERROR_PREFIX[:-1] in a for a in args):
            continue
        inner = location.get("block") or []
        returns = _args(inner, "return")
        if args != ["^~", ERROR_PREFIX] or not any(d is location for d in block) \
                or [d["directive"] for d in inner] != ["internal", "allow", "return"] \
                or _args(inner, "allow") != [["all"]] or len(returns[0]) != 2 or returns[0][1] != ERROR_BODY:
            problems.append(f"line {location['line']}: the error location must be the server's 'location ^~ "
                            f"{ERROR_PREFIX}', internal, and only return {ERROR_BODY}")
            continue
        found += 1
    if routed and found != 1:
        problems.append(f"server at line {line}: errors need exactly one 'location ^~ {ERROR_PREFIX}', not {found}")


def _check_proxy(fqdn: str, proxy: dict, site: ExpectedSite, upstreams: dict, problems: list[str]) -> None:
    args = proxy["args"]
    scheme, _, name = args[0].partition("://") if len(args) == 1 else ("", "", "")
    block = upstreams.get(name)
    if scheme != site.upstream_scheme or block is None:
        problems.append(f"{fqdn}: proxy_pass {' '.join(args)} is not the endpoint's upstream")
        return
    servers = _args(block, "server")
    if servers != [[site.upstream_server]]:
        problems.append(f"{fqdn}: upstream {name} names {servers}, not {site.upstream_server}")


def _check_sources(fqdn: str, block: list[dict], addresses: tuple[str, ...], problems: list[str]) -> None:
    """nginx's own allow/deny: exactly the proxy addresses, then deny all (server level)."""
    if not addresses:
        return
    allowed = [args for args in _args(block, "allow")]
    denied = [args for args in _args(block, "deny")]
    if denied != [["all"]]:
        problems.append(f"{fqdn}: the server must end its source list with 'deny all'")
    got = set()
    for args in allowed:
        try:
            got.add(str(ipaddress.ip_network(args[0], strict=True)))
        except ValueError:
            problems.append(f"{fqdn}: allow {args} is not an address")
    if got != set(addresses):
        problems.append(f"{fqdn}: nginx allows {sorted(got)}, not the proxy addresses {sorted(addresses)}")


def _check_allowlist(http: list[dict], allowlist: tuple[str, ...], problems: list[str]) -> None:
    maps = [d for d in http if d["directive"] == "map" and d["args"][:1] == ["$ssl_client_s_dn"]]
    if not allowlist:
        if maps:
            problems.append("a client DN map is present, but client_dn_allowlist is empty")
        return
    if len(maps) != 1:
        problems.append("the client DN allow-list must be exactly one map")
        return
    keys = set()
    for entry in maps[0]["block"]:
        if entry["directive"] == "default":
            if entry["args"] != ["0"]:
                problems.append("the allow-list map's default must be 0")
            continue
        raw = nginx_unescape(entry["directive"])
        if not raw.startswith("\\") or entry["args"] != ["1"]:
            problems.append(f"allow-list entry {raw!r} is not an exact match")
            continue
        keys.add(raw[1:])
    if keys != set(allowlist):
        problems.append(f"the allow-list map holds {sorted(keys)}, not {sorted(allowlist)}")


def _check_njs(http: list[dict], problems: list[str]) -> None:
    """js_import and js_set appear once each, naming only the deploy's module and variable."""
    imports = [d for d in http if d["directive"] == "js_import"]
    sets = [d for d in http if d["directive"] == "js_set"]
    if [tuple(d["args"]) for d in imports] != [NJS_IMPORT]:
        lines = ", ".join(str(d["line"]) for d in imports) or "none"
        problems.append(f"js_import (line {lines}) must be exactly once 'js_import {NJS_IMPORT[0]}'")
    if [tuple(d["args"]) for d in sets] != [NJS_SET]:
        lines = ", ".join(str(d["line"]) for d in sets) or "none"
        problems.append(f"js_set (line {lines}) must be exactly once 'js_set {' '.join(NJS_SET)}'")
