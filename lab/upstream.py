"""A stand-in receiver application for the lab host (stdlib only, runs on the lab's python3).

It answers every request with what it received (method, raw path, headers, the body's length and
SHA-256, and the body itself when it is under 64 KB) and echoes
X-Request-Id and X-Correlation-Id as BaRS receivers do; GET /metadata also carries a minimal
CapabilityStatement. A request with "X-Lab-Delay: <seconds>" is answered that much later. Every request is appended to a JSON-lines log, so tests can show what did,
and did not, reach the application.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ECHOED = ("X-Request-Id", "X-Correlation-Id")


class Handler(BaseHTTPRequestHandler):
    server_version = "bars-lab-upstream"
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx's upstream keepalive and the benchmark use
    # Headers and body are two writes: with Nagle, a kept-alive connection waits for a delayed ACK
    # (40 ms) between them, which would be charged to nginx in the benchmark.
    disable_nagle_algorithm = True
    log_path = "/var/log/bars-lab-upstream.jsonl"

    def _answer(self) -> None:
        delay = self.headers.get("X-Lab-Delay")  # lets tests show nginx's upstream timeout
        if delay:
            time.sleep(min(float(delay), 60))
        length = int(self.headers.get("Content-Length") or 0)
        digest, remaining, head = hashlib.sha256(), length, b""
        while remaining:  # read in pieces: bodies run to tens of MB
            piece = self.rfile.read(min(remaining, 1 << 20))
            if not piece:
                break
            digest.update(piece)
            if len(head) < 65536:
                head += piece[:65536 - len(head)]
            remaining -= len(piece)
        received = {
            "method": self.command,
            "path": self.path,  # the raw request target, as nginx passed it
            "headers": {name: value for name, value in self.headers.items()},
            "body_length": length - remaining,
            "body_sha256": digest.hexdigest(),
            "body": head.decode("utf-8", "replace") if length < 65536 else None,
        }
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(received) + "\n")
        answer = {"received": received}
        if self.command == "GET" and self.path.split("?")[0].endswith("/metadata"):
            answer["resourceType"] = "CapabilityStatement"
            answer["status"] = "active"
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name in ECHOED:
            if name in self.headers:
                self.send_header(name, self.headers[name])
        redirect = self.headers.get("X-Lab-Accel-Redirect")  # lets tests show nginx ignores it
        if redirect:
            self.send_header("X-Accel-Redirect", redirect)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:  # the JSON log is the record
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    ThreadingHTTPServer((args.address, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
