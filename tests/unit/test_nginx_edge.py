"""nginx's own answers on the listener: BaRS-shaped errors, echoed IDs, header hygiene, body size,
dot-segment paths and the audit log format, as rendered."""

from __future__ import annotations

import json
import re

import pytest

from bars_receiver.nginx.config import REMOVED_HEADERS, render_config
from bars_receiver.nginx.edge_errors import CODE_SYSTEM, EDGE_ERRORS, ERROR_PREFIX, PROFILE
from bars_receiver.nginx.verify import nginx_unescape, parse

from .test_nginx_config import receiver, server_blocks, site

EXPECTED = {  # nginx status -> (status sent, BaRS code)
    400: (400, "REC_BAD_REQUEST"), 494: (400, "REC_BAD_REQUEST"), 497: (400, "REC_BAD_REQUEST"),
    495: (403, "REC_FORBIDDEN"), 496: (403, "REC_FORBIDDEN"), 403: (403, "REC_FORBIDDEN"),
    404: (404, "REC_NOT_FOUND"), 413: (413, "REC_BAD_REQUEST"), 421: (421, "REC_BAD_REQUEST"),
    500: (500, "REC_SERVER_ERROR"), 502: (503, "REC_SERVICE_UNAVAILABLE"), 503: (503, "REC_SERVICE_UNAVAILABLE"),
    504: (504, "REC_TIMEOUT"), 405: (405, "REC_BAD_REQUEST"), 414: (414, "REC_BAD_REQUEST"),
    501: (501, "REC_BAD_REQUEST"), 505: (505, "REC_BAD_REQUEST"),
}


def test_every_nginx_status_has_a_bars_answer():
    routed = {status: (e.status, e.rec_code) for e in EDGE_ERRORS for status in e.nginx_statuses}
    assert routed == EXPECTED


@pytest.mark.parametrize("error", EDGE_ERRORS, ids=lambda e: e.name)
def test_each_answer_is_a_uk_core_operation_outcome(error):
    outcome = json.loads(error.body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["meta"]["profile"] == [PROFILE]
    [issue] = outcome["issue"]
    assert issue["severity"] == "error" and issue["code"] == error.issue_code
    assert issue["details"]["coding"] == [{"system": CODE_SYSTEM, "code": error.rec_code}]
    assert error.rec_code.startswith("REC_") and len(issue["diagnostics"]) > 40
    assert "$" not in error.body


def error_pages(text: str) -> dict[str, tuple[int, dict]]:
    """What each server's error pages answer: page URI -> (status sent, OperationOutcome). The
    status is the error_page's own (``=NNN``), the body the http-level ``map $uri $bars_error_body``
    gives that URI, returned by the server's one internal ``location ^~ /__bars_error/``."""
    http = parse(text)
    [bodies] = [{e["directive"]: e["args"][0] for e in d["block"]} for d in http
                if d["directive"] == "map" and d["args"] == ["$uri", "$bars_error_body"]]
    assert bodies.pop("default") == ""
    found: dict[str, tuple[int, dict]] = {}
    for server in (d for d in http if d["directive"] == "server"):
        [location] = [d for d in server["block"] if d["directive"] == "location" and ERROR_PREFIX in d["args"]]
        assert location["args"] == ["^~", ERROR_PREFIX]
        assert [d["directive"] for d in location["block"]] == ["internal", "allow", "return"]  # never from outside
        [ret] = [d["args"] for d in location["block"] if d["directive"] == "return"]
        assert ret[1] == "$bars_error_body"
        for page in (d["args"] for d in server["block"] if d["directive"] == "error_page"):
            *_, status, target = page
            answer = (int(status.removeprefix("=")), json.loads(nginx_unescape(bodies[target])))
            assert found.setdefault(target, answer) == answer  # the same in every server
    return found


def test_rendered_answers_parse_back_to_the_same_json(tmp_path):
    text = render_config(receiver(tmp_path), [site()])
    answers = error_pages(text)
    assert set(answers) == {f"{ERROR_PREFIX}{e.name}" for e in EDGE_ERRORS if e.nginx_statuses}
    for error in (e for e in EDGE_ERRORS if e.nginx_statuses):
        status, outcome = answers[f"{ERROR_PREFIX}{error.name}"]
        assert status == error.status and outcome == json.loads(error.body)
    for block in server_blocks(text):
        assert "add_header X-Request-ID $bars_request_id always;" in block
        assert "add_header X-Correlation-ID $bars_correlation_id always;" in block
        assert "default_type application/fhir+json;" in block
        assert "access_log /var/log/nginx/bars-receiver-audit.log bars_audit;" in block


def map_regex(text: str, variable: str) -> re.Pattern:
    [block] = [d["block"] for d in parse(text) if d["directive"] == "map" and d["args"][1] == variable]
    [key] = [nginx_unescape(e["directive"]) for e in block if e["directive"] != "default"]
    assert key.startswith("~")
    key = key.replace("(?<", "(?P<")  # PCRE's named group, in Python's spelling
    return re.compile(key[2:], re.IGNORECASE) if key.startswith("~*") else re.compile(key[1:])


@pytest.mark.parametrize("uri, refused", [
    ("/bars/x", False), ("/bars/Patient/a.b", False), ("/bars/..x/y", False), ("/bars/x?q=/../", False),
    ("/admin/../bars/x", True), ("/bars/./x", True), ("/bars/%2e%2E/x", True), ("/bars/.%2e/x", True),
    ("/bars/x/..", True), ("/bars/x/.?q", True), ("/bars/a%2fb", True), ("/bars/a%5Cb", True),
])
def test_raw_dot_segments_are_recognised(tmp_path, uri, refused):
    pattern = map_regex(render_config(receiver(tmp_path), [site()]), "$bars_dot_segments")
    assert bool(pattern.search(uri)) is refused


@pytest.mark.parametrize("value, echoed", [
    ("60d4d3c1-6d2e-4a40-8a86-0a8b1c0e0f11", True), ("corr-1", True), ("a" * 200, True), ("a" * 201, False),
    ('x", "y', False), ("x\\u0000", False), ("x y", False), ("", False),
])
def test_request_ids_are_echoed_only_when_plain(tmp_path, value, echoed):
    pattern = map_regex(render_config(receiver(tmp_path), [site()]), "$bars_request_id")
    assert bool(pattern.search(value)) is echoed


def test_client_identity_and_forwarding_headers_are_nginx_s_own(tmp_path):
    block = server_blocks(render_config(receiver(tmp_path), [site()]))[1]
    for line in ("X-Client-Subject-DN $ssl_client_s_dn", "X-Client-Issuer-DN $ssl_client_i_dn",
                 "X-Client-Serial $ssl_client_serial", "X-Client-Verify $ssl_client_verify",
                 "X-Client-Cert $ssl_client_escaped_cert", "X-Real-IP $remote_addr", "Forwarded \"\"",
                 "X-Request-ID $bars_request_id", "X-Correlation-ID $bars_correlation_id"):
        assert f"proxy_set_header {line};" in block
    for name in REMOVED_HEADERS:
        assert f'proxy_set_header {name} "";' in block
    assert "proxy_hide_header X-Request-ID;" in block and "proxy_request_buffering on;" in block


def test_body_size_is_a_setting_with_a_large_default(tmp_path):
    assert "client_max_body_size 50m;" in render_config(receiver(tmp_path), [site()])
    assert "client_max_body_size 120m;" in render_config(receiver(tmp_path, max_body_size=120), [site()])
    assert "client_body_buffer_size 1m;" in render_config(receiver(tmp_path), [site()])


def test_audit_log_has_the_fields_and_no_query(tmp_path):
    text = render_config(receiver(tmp_path), [site()])
    [fmt] = [d["args"] for d in parse(text) if d["directive"] == "log_format"]
    assert fmt[:2] == ["bars_audit", "escape=json"]
    fields = json.loads("".join(fmt[2:]).replace("$", ""))
    assert set(fields) >= {"time", "endpoint", "client_subject", "client_serial", "client_verify", "request_id",
                           "correlation_id", "method", "path", "status", "bytes_in", "bytes_out", "request_time",
                           "upstream_time", "upstream_status"}
    assert fields["path"] == "bars_path" and "request_uri" not in "".join(fmt) and "args" not in "".join(fmt)
    assert map_regex(text, "$bars_path").match("/bars/x?nhs=9434765919").group(0) == "/bars/x"
