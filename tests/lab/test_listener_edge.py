"""The listener as the BaRS proxy would meet it, on a real lab host: large FHIR Bundles, nginx's
own answers as OperationOutcomes with the IDs echoed, forged identity headers, the audit log,
the Server header and raw dot-segment paths.

Clients run inside the lab's network namespace from 127.0.0.2 (the proxy's address); the lab's
stand-in application logs what reaches it (body length and SHA-256 included).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.project import endpoint, fqdn

from .test_tls_ma import PROXY, curl, deploy_and_wait_for_reload, upstream_saw

ACTIVE = fqdn("LAB01")
AUDIT_LOG = "/var/log/nginx/bars-receiver-audit.log"
CODE_SYSTEM = "https://fhir.nhs.uk/CodeSystem/http-error-codes"
ENDPOINTS = [endpoint("LAB01", receiver_path="/bars/")]


@pytest.fixture(scope="module")
def active(project, ca):
    project.write_inventory(ENDPOINTS)
    project.deploy()
    ca.write_bundle(project.root, "test")
    ca.sign_csr_file(project.root / "requests" / "test" / f"{ACTIVE}.csr", project.root, "test")
    project.deploy()
    return project


@pytest.fixture(scope="module")
def clients(ca, tmp_path_factory):
    directory = tmp_path_factory.mktemp("clients")
    made = {}
    for kind in ("good", "wrong-ca", "expired"):
        key, cert = ca.issue_client("bars-proxy.lab.nhs.uk", kind=kind)
        (directory / f"{kind}.key").write_bytes(key)
        (directory / f"{kind}.pem").write_bytes(cert)
        made[kind] = (directory / f"{kind}.pem", directory / f"{kind}.key")
    return made


def ids() -> tuple[str, str, list[str]]:
    request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    return request_id, correlation_id, [f"X-Request-ID: {request_id}", f"X-Correlation-ID: {correlation_id}"]


def assert_outcome(status, headers, body, want_status, want_code, request_id, correlation_id):
    """A UK Core OperationOutcome with the BaRS code, and both IDs echoed."""
    assert status == want_status, (status, body[:500])
    assert headers["content-type"].startswith("application/fhir+json"), headers
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["meta"]["profile"] == ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"]
    [issue] = outcome["issue"]
    assert issue["severity"] == "error" and issue["diagnostics"]
    assert issue["details"]["coding"] == [{"system": CODE_SYSTEM, "code": want_code}]
    assert headers["x-request-id"] == request_id and headers["x-correlation-id"] == correlation_id
    assert headers["server"] == "nginx"  # no version


def bundle(path, size: int) -> str:
    """A FHIR Bundle of about ``size`` bytes: a DocumentReference with a base64 attachment."""
    attachment = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    document = {"resourceType": "Bundle", "type": "message", "entry": [{"resource": {
        "resourceType": "DocumentReference", "status": "current",
        "content": [{"attachment": {"contentType": "application/pdf", "data": attachment}}]}}]}
    data = json.dumps(document).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def post(lab, project, path: str, body_file, headers=(), client=None):
    argv = ["curl", "-sS", "--max-time", "120", "--interface", PROXY, "--resolve", f"{ACTIVE}:443:127.0.0.1",
            "--cacert", str(project.root / "files" / "ca" / "test" / "lab-root.pem"), "-D", "-",
            "-H", "Content-Type: application/fhir+json", "--data-binary", f"@{body_file}"]
    if client:
        argv += ["--cert", str(client[0]), "--key", str(client[1])]
    for header in headers:
        argv += ["-H", header]
    result = lab.netns_run([*argv, f"https://{ACTIVE}{path}"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.replace("HTTP/1.1 100 Continue\n\n", "").partition("\n\n")
    lines = head.splitlines()
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


def upstream_record(lab, request_id: str) -> dict:
    for line in lab.ssh("cat /var/log/bars-lab-upstream.jsonl").stdout.splitlines():
        record = json.loads(line)
        if record["headers"].get("X-Request-ID") == request_id:
            return record
    raise AssertionError(f"{request_id} never reached the application")


def test_a_40_mb_bundle_reaches_the_application_intact(active, lab, clients, tmp_path):
    digest = bundle(tmp_path / "bundle.json", 40 * 1024 * 1024)
    request_id, correlation_id, headers = ids()
    status, answer_headers, body = post(lab, active, "/bars/$process-message", tmp_path / "bundle.json",
                                        headers, clients["good"])
    assert status == 200, body[:500]
    assert answer_headers["x-request-id"] == request_id
    record = upstream_record(lab, request_id)
    assert record["body_length"] == (tmp_path / "bundle.json").stat().st_size
    assert record["body_sha256"] == digest


def test_a_bundle_over_max_body_size_gets_413_and_never_reaches_the_application(active, lab, clients, tmp_path):
    bundle(tmp_path / "big.json", 51 * 1024 * 1024)
    request_id, correlation_id, headers = ids()
    status, answer_headers, body = post(lab, active, "/bars/$process-message", tmp_path / "big.json",
                                        headers, clients["good"])
    assert_outcome(status, answer_headers, body, 413, "REC_BAD_REQUEST", request_id, correlation_id)
    assert not upstream_saw(lab, request_id)


@pytest.mark.parametrize("case, want_status, want_code", [
    ("no certificate", 403, "REC_FORBIDDEN"),
    ("certificate from another CA", 403, "REC_FORBIDDEN"),
    ("expired certificate", 403, "REC_FORBIDDEN"),
    ("outside receiver_path", 404, "REC_NOT_FOUND"),
    ("an error page asked for directly", 404, "REC_NOT_FOUND"),
    ("Host of no endpoint", 421, "REC_BAD_REQUEST"),
    ("headers too large", 400, "REC_BAD_REQUEST"),
    ("invalid Content-Length", 400, "REC_BAD_REQUEST"),
    ("raw dot-segments", 400, "REC_BAD_REQUEST"),
    ("encoded dot-segments", 400, "REC_BAD_REQUEST"),
])
def test_nginx_s_own_answers_are_operation_outcomes(active, lab, clients, case, want_status, want_code):
    request_id, correlation_id, headers = ids()
    client, path = clients["good"], "/bars/metadata"
    if case == "no certificate":
        client = None
    elif case == "certificate from another CA":
        client = clients["wrong-ca"]
    elif case == "expired certificate":
        client = clients["expired"]
    elif case == "outside receiver_path":
        path = "/admin/metadata"
    elif case == "an error page asked for directly":  # internal: only nginx's own error pages reach it
        path = "/__bars_error/forbidden"
    elif case == "Host of no endpoint":
        headers.append("Host: unknown.thirdparty.nhs.uk")
    elif case == "headers too large":
        headers.append("X-Padding: " + "a" * 9000)
    elif case == "invalid Content-Length":
        headers.append("Content-Length: abc")
    elif case == "raw dot-segments":
        path = "/admin/../bars/metadata"
    elif case == "encoded dot-segments":
        path = "/bars/%2e%2e/bars/metadata"
    status, answer_headers, body = curl(lab, active, path, client, headers=headers, name=ACTIVE)
    assert_outcome(status, answer_headers, body, want_status, want_code, request_id, correlation_id)
    assert not upstream_saw(lab, request_id)


@pytest.mark.parametrize("case, path, extra, want_status, ids_read", [
    # Refused while nginx reads the request line: there is no URI yet, and no header has been read.
    ("OPTIONS *", "/bars/metadata", ["-X", "OPTIONS", "--request-target", "*"], 400, False),
    ("NUL in the path", "/bars/a%00b", [], 400, False),
    ("URI too long", "/bars/" + "a" * 20000, [], 414, False),
    # Refused after the headers were read.
    ("TRACE", "/bars/metadata", ["-X", "TRACE"], 405, True),
    ("raw backslash", "/bars/metadata", ["--request-target", "/bars/..\\admin"], 400, True),
    ("'..;' segment", "/bars/..;/admin", [], 400, True),
    ("double-encoded dot-segment", "/bars/%252e%252e/admin", [], 400, True),
])
def test_requests_nginx_refuses_early_get_operation_outcomes_too(active, lab, clients, case, path, extra,
                                                                   want_status, ids_read):
    """Never nginx's HTML page (or its 500 for a request it refused before it had a URI): an
    OperationOutcome with the status; the IDs are echoed whenever nginx got as far as reading them."""
    request_id, correlation_id, headers = ids()
    status, answer_headers, body = curl(lab, active, path, clients["good"], headers=headers, extra=extra)
    if ids_read:
        assert_outcome(status, answer_headers, body, want_status, "REC_BAD_REQUEST", request_id, correlation_id)
    else:
        assert status == want_status, (status, body[:300])
        assert answer_headers["content-type"].startswith("application/fhir+json"), answer_headers
        outcome = json.loads(body)
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["details"]["coding"][0]["code"] == "REC_BAD_REQUEST"
    assert not upstream_saw(lab, request_id)


def test_plain_http_to_the_tls_port_gets_an_operation_outcome(active, lab):
    request_id, correlation_id, headers = ids()
    argv = ["curl", "-sS", "--max-time", "10", "--interface", PROXY, "-D", "-",
            *[arg for header in headers for arg in ("-H", header)], "http://127.0.0.1:443/bars/metadata"]
    result = lab.netns_run(argv, capture_output=True, text=True)
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
    assert_outcome(int(lines[0].split()[1]), fields, body, 400, "REC_BAD_REQUEST", request_id, correlation_id)


def test_application_down_and_slow_get_operation_outcomes(active, lab, clients):
    request_id, correlation_id, headers = ids()
    lab.ssh("systemctl stop bars-lab-upstream")
    try:
        status, answer_headers, body = curl(lab, active, "/bars/metadata", clients["good"], headers=headers)
        assert_outcome(status, answer_headers, body, 503, "REC_SERVICE_UNAVAILABLE", request_id, correlation_id)
    finally:
        lab.ssh("systemctl start bars-lab-upstream")
    active.write_inventory(ENDPOINTS, settings={"upstream_timeout": 2})
    try:
        deploy_and_wait_for_reload(active, lab)
        request_id, correlation_id, headers = ids()
        status, answer_headers, body = curl(lab, active, "/bars/metadata", clients["good"],
                                            headers=[*headers, "X-Lab-Delay: 4"])
        assert_outcome(status, answer_headers, body, 504, "REC_TIMEOUT", request_id, correlation_id)
    finally:
        active.write_inventory(ENDPOINTS)
        deploy_and_wait_for_reload(active, lab)


def test_a_subject_off_the_allow_list_gets_an_operation_outcome(active, lab, ca, clients, tmp_path):
    key, cert = ca.issue_client("stranger.lab.nhs.uk")
    (tmp_path / "s.key").write_bytes(key)
    (tmp_path / "s.pem").write_bytes(cert)
    active.write_inventory(ENDPOINTS, settings={"client_dn_allowlist": ["CN=bars-proxy.lab.nhs.uk,OU=Devices,O=nhs"]})
    try:
        deploy_and_wait_for_reload(active, lab)
        request_id, correlation_id, headers = ids()
        status, answer_headers, body = curl(lab, active, "/bars/metadata", (tmp_path / "s.pem", tmp_path / "s.key"),
                                            headers=headers)
        assert_outcome(status, answer_headers, body, 403, "REC_FORBIDDEN", request_id, correlation_id)
        assert not upstream_saw(lab, request_id)
    finally:
        active.write_inventory(ENDPOINTS)
        deploy_and_wait_for_reload(active, lab)


def test_forged_identity_headers_never_reach_the_application(active, lab, clients):
    request_id, correlation_id, headers = ids()
    forged = ["X-Client-Subject-DN: CN=forged", "X-Client-Issuer-DN: CN=forged-ca", "X-Client-Serial: 01",
              "X-Client-Verify: SUCCESS", "X-Client-Cert: forged", "X-Client-Fingerprint-SHA256: 00",
              "X-Client-DN: CN=forged", "Forwarded: for=10.0.0.1;proto=https", "X-Real-IP: 10.0.0.1",
              "X-Forwarded-For: 10.0.0.1", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: http",
              "X-Forwarded-Port: 80"]
    status, _, body = curl(lab, active, "/bars/metadata", clients["good"], headers=[*headers, *forged])
    assert status == 200, body
    sent = {k.lower(): v for k, v in upstream_record(lab, request_id)["headers"].items()}
    assert sent["x-client-subject-dn"] == "CN=bars-proxy.lab.nhs.uk,OU=Devices,O=nhs"
    assert sent["x-client-issuer-dn"] != "CN=forged-ca" and "CN=" in sent["x-client-issuer-dn"]
    assert sent["x-client-serial"] != "01" and sent["x-client-verify"] == "SUCCESS"
    assert sent["x-client-cert"].startswith("-----BEGIN%20CERTIFICATE-----")
    assert sent["x-real-ip"] == PROXY and sent["x-forwarded-for"] == PROXY and sent["x-forwarded-proto"] == "https"
    # The SHA-256 of the certificate's DER, from nginx's njs module; the forged "00" is gone.
    der = x509.load_pem_x509_certificate(clients["good"][0].read_bytes()).public_bytes(serialization.Encoding.DER)
    assert sent["x-client-fingerprint-sha256"] == hashlib.sha256(der).hexdigest()
    assert sent["x-client-fingerprint-sha1"] == hashlib.sha1(der).hexdigest()
    for name in ("x-client-dn", "forwarded", "x-forwarded-host", "x-forwarded-port"):
        assert name not in sent, name
    assert "forged" not in json.dumps(sent) and "10.0.0.1" not in json.dumps(sent)


@pytest.mark.parametrize("target", ["/__bars_error/forbidden", "/__bars_error/", "/bars/metadata"])
def test_the_application_cannot_send_nginx_to_another_location(active, lab, clients, target):
    """X-Accel-Redirect from the application is ignored: its own answer reaches the caller, never
    one of nginx's error pages (whose status only an error_page sets) or a second pass through."""
    request_id, _, headers = ids()
    status, answer_headers, body = curl(lab, active, "/bars/metadata", clients["good"],
                                        headers=[*headers, f"X-Lab-Accel-Redirect: {target}"])
    assert status == 200, body
    assert json.loads(body)["resourceType"] == "CapabilityStatement"
    assert "x-accel-redirect" not in answer_headers
    assert len([line for line in lab.ssh("cat /var/log/bars-lab-upstream.jsonl").stdout.splitlines()
                if request_id in line]) == 1


def test_an_id_that_is_not_a_plain_token_is_neither_echoed_nor_passed_on(active, lab, clients):
    request_id = str(uuid.uuid4())
    status, answer_headers, _ = curl(lab, active, "/bars/metadata", clients["good"],
                                     headers=[f"X-Request-ID: {request_id}", 'X-Correlation-ID: a", "b": "c'])
    assert status == 200 and "x-correlation-id" not in answer_headers
    assert "X-Correlation-ID" not in upstream_record(lab, request_id)["headers"]


def test_each_call_has_an_audit_line_without_the_query(active, lab, clients):
    request_id, correlation_id, headers = ids()
    status, answer_headers, _ = curl(lab, active, "/bars/Patient?identifier=9434765919", clients["good"],
                                     headers=headers)
    assert status == 200 and answer_headers["server"] == "nginx"
    refused_id, refused_correlation, refused_headers = ids()
    assert curl(lab, active, "/bars/metadata?x=1", None, headers=refused_headers)[0] == 403
    lines = [json.loads(line) for line in lab.ssh(f"cat {AUDIT_LOG}").stdout.splitlines()]
    [line] = [entry for entry in lines if entry["request_id"] == request_id]
    assert line["endpoint"] == ACTIVE.lower() and line["correlation_id"] == correlation_id  # nginx keeps names lower case
    assert line["client_subject"] == "CN=bars-proxy.lab.nhs.uk,OU=Devices,O=nhs" and line["client_serial"]
    assert line["client_verify"] == "SUCCESS" and line["method"] == "GET" and line["status"] == "200"
    assert line["path"] == "/bars/Patient" and int(line["bytes_in"]) > 0 and int(line["bytes_out"]) > 0
    assert line["upstream_status"] == "200" and float(line["upstream_time"]) >= 0 and float(line["request_time"]) >= 0
    assert "9434765919" not in lab.ssh(f"cat {AUDIT_LOG}").stdout
    [refused] = [entry for entry in lines if entry["request_id"] == refused_id]
    assert refused["status"] == "403" and refused["client_verify"] == "NONE" and refused["path"] == "/bars/metadata"
    assert "/var/log/nginx/*.log" in lab.ssh("cat /etc/logrotate.d/nginx").stdout


def test_debian_default_site_is_moved_aside_only_when_untouched(active, lab):
    archived = "/etc/bars-receiver/nginx-default-site.disabled"
    assert lab.ssh(f"readlink {archived}").stdout.strip() in ("/etc/nginx/sites-available/default",
                                                              "../sites-available/default")
    assert lab.ssh("test -e /etc/nginx/sites-enabled/default && echo on || echo off").stdout.strip() == "off"
    assert lab.ssh("test -f /etc/nginx/sites-available/default && echo kept").stdout.strip() == "kept"
    assert not lab.ssh("ss -Hltn 'sport = :80'").stdout.strip()  # nothing answers on port 80
    # Someone's own default site is theirs: left enabled and reported.
    lab.ssh(f"mv {archived} /etc/nginx/sites-enabled/default && echo '# local change' >> /etc/nginx/sites-available/default")
    try:
        run = active.deploy()
        assert "modified on this host, so it is left enabled" in run.output
        assert lab.ssh("test -L /etc/nginx/sites-enabled/default && echo on").stdout.strip() == "on"
    finally:
        lab.ssh("sed -i '$d' /etc/nginx/sites-available/default")
    run = active.deploy()  # untouched again: moved aside, nginx reloaded
    assert lab.ssh("test -e /etc/nginx/sites-enabled/default && echo on || echo off").stdout.strip() == "off"
    assert active.deploy().changed == 0
