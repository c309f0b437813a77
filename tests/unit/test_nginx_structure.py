"""The listener's configuration cannot be bent by its inputs: escaping where values are rendered,
and the structural check of the rendered text (crossplane) before anything is uploaded."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings as hypothesis_settings, strategies as st

from bars_receiver.inventory.errors import InventoryError
from bars_receiver.inventory.loader import load_hosts
from bars_receiver.nginx.config import Site, expected_config, render_config
from bars_receiver.nginx.edge_errors import ERROR_PREFIX
from bars_receiver.nginx.escape import UnsafeValue, nginx_map_key, nginx_token
from bars_receiver.nginx.verify import ConfigRefused, nginx_unescape, parse, verify

from .test_nginx_config import REPO, receiver, site

FQDN = "BaRS-INT-RX809.Acme.thirdparty.nhs.uk"


@pytest.mark.parametrize("value", ["a;b", "a b", "a{", "}", "$http_host", 'a"b', "a\\b", "a#b", "a\nb", "", "x\x00"])
def test_tokens_that_could_change_the_structure_are_refused(value):
    with pytest.raises(UnsafeValue):
        nginx_token(value)


@pytest.mark.parametrize("value", ["CN=a\nb", "CN=a\x00", "CN=\x1b[0m"])
def test_map_keys_with_control_characters_are_refused(value):
    with pytest.raises(UnsafeValue):
        nginx_map_key(value)


@pytest.mark.parametrize("dn", ["~CN=", "default", 'CN=a\\", "CN=b', "CN=x\\;y} 1; } server {", "CN=$host", "\\~CN=a", "CN=a\\tb"])
def test_map_keys_are_exact_whatever_they_hold(dn):
    text = f"map $ssl_client_s_dn $v {{\n    default 0;\n    {nginx_map_key(dn)} 1;\n}}\n"
    [block] = parse(text)
    [default, entry] = block["block"]
    assert default["directive"] == "default" and entry["args"] == ["1"]
    raw = nginx_unescape(entry["directive"])
    assert raw == "\\" + dn  # nginx's map drops the leading "\" and compares the rest exactly


def rendered(tmp_path, **settings):
    host = receiver(tmp_path, **settings)
    sites = [site(), site("BaRS-INT-RX810.Acme.thirdparty.nhs.uk", receiver_path="/bars/")]
    return host, sites, render_config(host, sites)


@pytest.mark.parametrize("tamper, message", [
    (lambda t: t + "server {\n    listen 8080;\n    server_name x;\n}\n", "is not listen_port 443 with ssl"),
    (lambda t: t.replace("proxy_http_version 1.1;", "return 200 'hi';", 1), "would answer for the application"),
    (lambda t: t.replace("proxy_pass http://bars_http_127_0_0_1_5000_f9413619;", "proxy_pass http://$http_x;", 1),
     "is not the endpoint's upstream"),
    (lambda t: t.replace("server 127.0.0.1:5000;", "server 10.9.9.9:80;"), "not 127.0.0.1:5000"),
    (lambda t: t.replace("ssl_verify_client on;", "ssl_verify_client optional;", 1), "ssl_verify_client must be on"),
    (lambda t: t.replace("server_tokens off;", "root /var/www/html;", 1), "directive 'root' is not allowed"),
    (lambda t: t.replace("deny all;", "allow all;", 2), "deny all"),
    (lambda t: t.replace('"\\\\CN=proxy', '"~CN=proxy'), "is not an exact match"),
    (lambda t: t.replace("    return 404;", "    return 404;\n        error_page 404 =200 http://x;"), "must send errors"),
    (lambda t: t + t[t.index("server {\n    listen 443 ssl;"):], "has 2 servers"),
    (lambda t: t + "include /etc/passwd;\n", "directive 'include' is not allowed"),
])
def test_a_configuration_that_differs_from_the_settings_is_refused(tmp_path, tamper, message):
    host, sites, text = rendered(tmp_path, client_dn_allowlist=["CN=proxy.example.nhs.uk,O=nhs"])
    verify(text, expected_config(host, sites))  # the untouched text passes
    with pytest.raises(ConfigRefused, match=message.replace("(", r"\(").replace("$", r"\$")):
        verify(tamper(text), expected_config(host, sites))


_NJS_IMPORT = "js_import /etc/nginx/bars-receiver/bars_fingerprint.js;"
_NJS_SET = "js_set $bars_client_sha256 bars_fingerprint.sha256;"


@pytest.mark.parametrize("tamper, message", [
    # Another module, or the deploy's imported twice or under another name.
    (lambda t: t.replace(_NJS_IMPORT, "js_import /tmp/evil.js;"), "js_import (line"),
    (lambda t: t.replace(_NJS_IMPORT, "js_import fp from /etc/nginx/bars-receiver/bars_fingerprint.js;"), "js_import (line"),
    (lambda t: t.replace(_NJS_IMPORT, _NJS_IMPORT + "\n" + _NJS_IMPORT), "js_import (line"),
    (lambda t: t.replace(_NJS_IMPORT, ""), "js_import (line none)"),
    # Another variable or function, or a second js_set.
    (lambda t: t.replace(_NJS_SET, "js_set $bars_client_allowed bars_fingerprint.sha256;"), "js_set (line"),
    (lambda t: t.replace(_NJS_SET, "js_set $bars_client_sha256 bars_fingerprint.other;"), "js_set (line"),
    (lambda t: t.replace(_NJS_SET, _NJS_SET + "\njs_set $x bars_fingerprint.sha256;"), "js_set (line"),
    # Every other njs directive, at any level.
    (lambda t: t + "js_path /tmp;\n", "directive 'js_path' is not allowed in the http context"),
    (lambda t: t + "js_include /tmp/x.js;\n", "directive 'js_include' is not allowed in the http context"),
    (lambda t: t.replace("server_tokens off;", "js_set $x bars_fingerprint.sha256;", 1),
     "directive 'js_set' is not allowed in a server"),
    (lambda t: t.replace("proxy_http_version 1.1;", "js_content bars_fingerprint.sha256;", 1),
     "directive 'js_content' is not allowed in a location"),
    (lambda t: t.replace("proxy_http_version 1.1;", "js_import /etc/nginx/bars-receiver/bars_fingerprint.js;", 1),
     "directive 'js_import' is not allowed in a location"),
])
def test_njs_is_only_the_deploys_fingerprint_module(tmp_path, tamper, message):
    host, sites, text = rendered(tmp_path)
    assert _NJS_IMPORT in text and _NJS_SET in text
    assert "proxy_set_header X-Client-Fingerprint-SHA256 $bars_client_sha256;" in text
    verify(text, expected_config(host, sites))
    with pytest.raises(ConfigRefused, match=re.escape(message)):
        verify(tamper(text), expected_config(host, sites))


def test_a_missing_endpoint_server_is_refused(tmp_path):
    host, sites, text = rendered(tmp_path)
    more = [*sites, Site(**{**site().__dict__, "fqdn": "BaRS-INT-RX811.Acme.thirdparty.nhs.uk"})]
    with pytest.raises(ConfigRefused, match="RX811.Acme.thirdparty.nhs.uk has no server"):
        verify(text, expected_config(host, more))


def test_every_server_negotiates_with_the_settings(tmp_path):
    """The catch-all negotiates TLS when SNI names no endpoint, so it carries the same settings."""
    _, _, text = rendered(tmp_path, tls_protocols=["TLSv1.3"])
    servers = [d["block"] for d in parse(text) if d["directive"] == "server"]
    assert len(servers) == 3
    for block in servers:
        directives = {d["directive"]: d["args"] for d in block}
        assert directives["ssl_protocols"] == ["TLSv1.3"]
        assert directives["ssl_ecdh_curve"] == ["X25519:prime256v1:secp384r1"]
        assert directives["ssl_session_cache"] == ["shared:bars_receiver:10m"]
        assert directives["ssl_session_tickets"] == ["off"]
        assert directives["server_tokens"] == ["off"]
        assert [d["args"] for d in block if d["directive"] == "allow"] == [["35.197.254.55/32"], ["35.246.55.143/32"]]
        assert [d["args"] for d in block if d["directive"] == "deny"] == [["all"]]


def test_the_catch_all_serves_nothing(tmp_path):
    _, _, text = rendered(tmp_path)
    [default] = [d["block"] for d in parse(text) if d["directive"] == "server"
                 and any("default_server" in x["args"] for x in d["block"] if x["directive"] == "listen")]
    names = [d["directive"] for d in default]
    assert "root" not in names and "server_name" not in names and "proxy_pass" not in str(default)
    [location] = [d for d in default if d["directive"] == "location" and d["args"] == ["/"]]
    assert [d["directive"] for d in location["block"]] == ["return"]
    [error] = [d for d in default if d["directive"] == "location" and d != location]
    assert error["args"] == ["^~", ERROR_PREFIX]
    assert [d["directive"] for d in error["block"]] == ["internal", "allow", "return"]
    assert location["block"][0]["args"][0] == "421"


# --- Property: whatever passes the inventory's validation renders to a file of the right shape ---

_PRINTABLE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


_PROJECT: list[Path] = []


def _load(document: dict) -> object | None:
    """The receiver settings the real loader makes of ``document``, or None if it refuses them."""
    if not _PROJECT:
        root = Path(tempfile.mkdtemp(prefix="bars-prop-"))
        for name in ("group_data", "files"):
            shutil.copytree(REPO / name, root / name)
        (root / "inventories").mkdir()
        _PROJECT.append(root)
    path = _PROJECT[0] / "inventories" / "int.yml"
    path.write_text(yaml.safe_dump(document))
    try:
        return load_hosts(path)[0][1]["receiver"]
    except InventoryError:
        return None


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(
    dns=st.lists(st.one_of(_PRINTABLE, _PRINTABLE.map(lambda s: "CN=" + s), _PRINTABLE.map(lambda s: "~CN=" + s)), max_size=3),
    upstream_host=st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "app.internal"]), _PRINTABLE),
    upstream_port=st.one_of(st.integers(0, 70000).map(str), _PRINTABLE),
    receiver_path=st.one_of(st.just("/"), _PRINTABLE.map(lambda s: f"/{s}/")),
    ciphers=st.one_of(st.just("ECDHE-RSA-AES128-GCM-SHA256"), _PRINTABLE),
)
def test_any_validated_inventory_renders_to_the_verified_shape(dns, upstream_host, upstream_port, receiver_path, ciphers):
    document = {
        "environment": "int",
        "settings": {"client_dn_allowlist": dns, "tls_ciphers": ciphers},
        "hosts": {"rx": {"endpoints": [{"ods": "RX809", "supplier": "Acme",
                                        "upstream": f"http://{upstream_host}:{upstream_port}",
                                        "receiver_path": receiver_path}]}},
    }
    host = _load(document)
    assume(host is not None)
    endpoint = host.endpoints[0]
    sites = [Site(fqdn=endpoint.fqdn, chain="/etc/bars-receiver/x/chain.pem", key="/etc/bars-receiver/x/key.pem",
                  key_password_file=None, client_ca="/etc/bars-receiver/x/ca.pem", upstream=endpoint.upstream,
                  receiver_path=endpoint.receiver_path)]
    try:
        text = render_config(host, sites)  # runs verify(): ConfigRefused would fail the test
    except UnsafeValue:
        return  # refused at rendering with a clear message: nothing reaches the host
    # Independently of verify(): the allow-list is compared exactly, and proxying goes to the upstream.
    http = parse(text)
    maps = [d for d in http if d["directive"] == "map" and d["args"][0] == "$ssl_client_s_dn"]
    keys = {nginx_unescape(e["directive"])[1:] for m in maps for e in m["block"] if e["directive"] != "default"}
    assert keys == set(host.settings.client_dn_allowlist)
    servers = [d for d in http if d["directive"] == "server"]
    assert len(servers) == 2
    for server in servers:
        for listen in (d for d in server["block"] if d["directive"] == "listen"):
            assert listen["args"][:2] in (["443", "ssl"], ["[::]:443", "ssl"])


@pytest.mark.parametrize("tamper", [
    # a named location again: a request refused while nginx reads its request line cannot reach it
    lambda t: t.replace(f"={400} {ERROR_PREFIX}bad_request;", "=400 @bars_bad_request;", 1),
    # an error location reachable from outside
    lambda t: t.replace("        internal;\n", "", 1),
    # an error page sent to a location that does not exist
    lambda t: t.replace(f"{ERROR_PREFIX}bad_request;", f"{ERROR_PREFIX}nowhere;", 1),
    # an error location answering something other than its fixed body
    lambda t: t.replace("$bars_error_body;\n    }", "$http_x_anything;\n    }", 1),
    # an error page without its status: it would be sent with the error location's placeholder
    lambda t: t.replace(f"=400 {ERROR_PREFIX}bad_request;", f"{ERROR_PREFIX}bad_request;", 1),
    lambda t: t.replace(f"=400 {ERROR_PREFIX}bad_request;", f"=200 {ERROR_PREFIX}bad_request;", 1),
    # a second error location, one per answer again or one that shadows the server's
    lambda t: t.replace("    location ^~ /__bars_error/ {", "    location = /__bars_error/not_found {\n"
                        "        internal;\n        allow all;\n        return 404 $bars_error_body;\n    }\n"
                        "    location ^~ /__bars_error/ {", 1),
    lambda t: t.replace("    location ^~ /__bars_error/ {", "    location ^~ /__bars_error/not {\n"
                        "        return 404;\n    }\n    location ^~ /__bars_error/ {", 1),
    lambda t: t.replace("    location ^~ /__bars_error/ {", "    location ~ ^/__bars_error/ {", 1),
    # no error location at all
    lambda t: t.replace("    location ^~ /__bars_error/ {\n        internal;\n        allow all;\n"
                        "        return 500 $bars_error_body;\n    }\n", "", 1),
    # the error location proxying, or open to everyone
    lambda t: t.replace("        return 500 $bars_error_body;", "        proxy_pass http://x;", 1),
    lambda t: t.replace("        internal;\n        allow all;\n        return 500", "        allow all;\n        return 500", 1),
    # a body that is not an OperationOutcome, or no body for a location
    lambda t: t.replace('"{\\"resourceType\\":\\"OperationOutcome\\"', '"{\\"resourceType\\":\\"Patient\\"', 1),
    lambda t: t.replace(f"    {ERROR_PREFIX}bad_request \"", f"    {ERROR_PREFIX}bad_requests \"", 1),
    # the map keyed on something a caller controls, or mapping anything else
    lambda t: t.replace("map $uri $bars_error_body", "map $request_uri $bars_error_body", 1),
    lambda t: t.replace('map $uri $bars_error_body {\n    default "";', 'map $uri $bars_error_body {\n    default "x";', 1),
    lambda t: t.replace('map $uri $bars_error_body {\n', 'map $uri $bars_error_body {\n    /bars/x "hi";\n', 1),
])
def test_error_pages_go_only_to_internal_fixed_answers(tmp_path, tamper):
    host, sites, text = rendered(tmp_path)
    changed = tamper(text)
    assert changed != text
    with pytest.raises(ConfigRefused):
        verify(changed, expected_config(host, sites))


PROXY = "proxy_pass http://bars_http_127_0_0_1_5000_f9413619;"


@pytest.mark.parametrize("tamper, message", [
    # a condition that sets a variable: a named capture overwriting the allow-list's verdict
    (lambda t: t.replace("    deny all;\n", '    deny all;\n    if ($ssl_client_s_dn ~ "(?<bars_client_allowed>.+)") {\n'
                         "        return 403;\n    }\n", 1), "is not one of the template's checks"),
    (lambda t: t.replace("if ($bars_dot_segments) {", 'if ($request_uri ~ "(?<bars_error_body>.*)") {', 1),
     "is not one of the template's checks"),
    # a second way to the application that skips the dot-segment check
    (lambda t: t.replace("    location ^~ /bars/ {", f"    location /other/ {{\n        {PROXY}\n    }}\n\n"
                         "    location ^~ /bars/ {", 1), "exactly one location may proxy"),
    (lambda t: re.sub(r"        if \(\$bars_dot_segments\) \{\n.*?\n        \}\n", "", t, count=1, flags=re.S),
     "must first refuse dot-segment paths"),
    # the application steering nginx to another location
    (lambda t: t.replace("        proxy_ignore_headers X-Accel-Redirect;\n", "", 1), "ignore the application's"),
    (lambda t: t.replace("proxy_ignore_headers X-Accel-Redirect;", "proxy_ignore_headers X-Accel-Expires;", 1),
     "ignore the application's"),
    # digits that are not ASCII
    (lambda t: t.replace("=404 /__bars_error/not_found;", "=4\u0660\u0664 /__bars_error/not_found;", 1), "must send errors"),
])
def test_the_proxying_location_keeps_its_checks(tmp_path, tamper, message):
    host, sites, text = rendered(tmp_path)
    changed = tamper(text)
    assert changed != text
    with pytest.raises(ConfigRefused, match=re.escape(message)):
        verify(changed, expected_config(host, sites))


def test_the_allow_list_check_is_required_when_there_is_an_allow_list(tmp_path):
    host, sites, text = rendered(tmp_path, client_dn_allowlist=["CN=proxy.int.example"])
    verify(text, expected_config(host, sites))
    changed = re.sub(r"        if \(\$bars_client_allowed = 0\) \{\n.*?\n        \}\n", "", text, count=1, flags=re.S)
    assert changed != text
    with pytest.raises(ConfigRefused, match="subjects off the allow-list"):
        verify(changed, expected_config(host, sites))
