"""The answers nginx itself gives on the listener, shaped as BaRS expects a receiver to answer.

The BaRS guide's error handling: a receiver reports errors as a FHIR ``OperationOutcome`` (UK Core
profile) whose ``issue.details.coding`` carries a ``REC_``-prefixed code from the
http-error-codes CodeSystem, with diagnostics that say what happened (README "Edge errors" lists
the sources). Bodies are fixed text: no caller data is ever put into them, so nothing a caller
sends can break the JSON. X-Request-ID and X-Correlation-ID are echoed as headers instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bars_receiver.inventory.grammar import ERROR_PATH

PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"
# Where nginx sends its own errors: /__bars_error/<name>, in each server's one internal location
# ``location ^~ /__bars_error/``, never reachable from outside and never proxied (no
# receiver_path may lie under it).
ERROR_PREFIX = ERROR_PATH
CODE_SYSTEM = "https://fhir.nhs.uk/CodeSystem/http-error-codes"


@dataclass(frozen=True)
class EdgeError:
    name: str  # its page, ERROR_PREFIX + name
    nginx_statuses: tuple[int, ...]  # what nginx produces internally
    status: int  # what the caller receives
    issue_code: str  # FHIR issue-type
    rec_code: str  # BaRS http-error-codes
    diagnostics: str

    @property
    def body(self) -> str:
        outcome = {
            "resourceType": "OperationOutcome",
            "meta": {"profile": [PROFILE]},
            "issue": [{
                "severity": "error",
                "code": self.issue_code,
                "details": {"coding": [{"system": CODE_SYSTEM, "code": self.rec_code}]},
                "diagnostics": self.diagnostics,
            }],
        }
        return json.dumps(outcome, separators=(",", ":"))


EDGE_ERRORS = (
    EdgeError("bad_request", (400,), 400, "invalid", "REC_BAD_REQUEST",
              "The receiver's TLS-MA listener could not parse the request. Check the request line and headers; "
              "do not retry unchanged."),
    EdgeError("dot_segments", (), 400, "invalid", "REC_BAD_REQUEST",
              "The request path contains dot-segments or an encoded '.', '/' or backslash; the receiver accepts only "
              "normalised paths. Send the path without them; do not retry unchanged."),
    EdgeError("headers_too_large", (494,), 400, "too-long", "REC_BAD_REQUEST",
              "A request header, or the headers together, exceed the receiver's limit (8 KB per header line). "
              "Send shorter headers; do not retry unchanged."),
    EdgeError("plain_http", (497,), 400, "security", "REC_BAD_REQUEST",
              "A plain HTTP request was sent to the receiver's TLS port. Connect with TLS and a client certificate."),
    EdgeError("bad_certificate", (495,), 403, "security", "REC_FORBIDDEN",
              "TLS-MA failure: the client certificate did not verify against this environment's CA (unknown issuer, "
              "expired or revoked). Present a current certificate issued under this environment's NHS CA."),
    EdgeError("no_certificate", (496,), 403, "security", "REC_FORBIDDEN",
              "TLS-MA failure: no client certificate was presented. Present a certificate issued under this "
              "environment's NHS CA."),
    EdgeError("forbidden", (403,), 403, "forbidden", "REC_FORBIDDEN",
              "The caller is not allowed: its address or its certificate subject is not on this receiver's list. "
              "If this is the BaRS proxy, the receiver's operator must add it to proxy_addresses or "
              "client_dn_allowlist."),
    EdgeError("not_found", (404,), 404, "not-found", "REC_NOT_FOUND",
              "The path is outside this receiver's BaRS base path. Check the endpoint's receiver URL in the "
              "Endpoint Catalogue."),
    EdgeError("too_large", (413,), 413, "too-long", "REC_BAD_REQUEST",
              "The request body is larger than this receiver accepts (max_body_size). Send a smaller message, "
              "or ask the receiver's operator to raise max_body_size; do not retry unchanged."),
    EdgeError("method_not_allowed", (405,), 405, "not-supported", "REC_BAD_REQUEST",
              "The HTTP method is not accepted by the receiver's TLS-MA listener (e.g. TRACE). Use the method the "
              "BaRS API defines for the request; do not retry unchanged."),
    EdgeError("uri_too_long", (414,), 414, "too-long", "REC_BAD_REQUEST",
              "The request URI is longer than the receiver's listener accepts. Send a shorter URI; do not retry "
              "unchanged."),
    EdgeError("not_implemented", (501,), 501, "not-supported", "REC_BAD_REQUEST",
              "The request uses an HTTP feature the receiver's listener does not implement (e.g. a transfer coding "
              "other than chunked). Send a plain HTTP/1.1 request; do not retry unchanged."),
    EdgeError("http_version", (505,), 505, "not-supported", "REC_BAD_REQUEST",
              "The HTTP version is not supported by the receiver's listener. Send HTTP/1.1; do not retry unchanged."),
    EdgeError("misdirected", (421,), 421, "invalid", "REC_BAD_REQUEST",
              "The Host header does not name the endpoint the TLS connection was made for (SNI). Send the request "
              "with Host equal to the endpoint's FQDN."),
    EdgeError("server_error", (500,), 500, "exception", "REC_SERVER_ERROR",
              "The receiver's TLS-MA listener failed unexpectedly. The receiver's operator should check nginx's "
              "error log; the sender may retry later."),
    EdgeError("unavailable", (502, 503), 503, "transient", "REC_SERVICE_UNAVAILABLE",
              "The receiving application is not reachable behind the TLS-MA listener. The receiver's operator "
              "should check the application; the sender may retry later."),
    EdgeError("timeout", (504,), 504, "timeout", "REC_TIMEOUT",
              "The receiving application did not answer within upstream_timeout. The sender may retry later; "
              "the receiver's operator should check the application."),
)
