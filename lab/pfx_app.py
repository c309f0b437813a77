"""A stand-in for an application that reads its certificate from the PKCS#12 file, as Kestrel does
(stdlib only, runs on the lab host's python3, under systemd: bars-lab-pfx-app@<fqdn>.service).

It reads Kestrel__Certificates__Default__Path and Kestrel__Certificates__Default__Password from
its environment (the unit's EnvironmentFile is the deploy's kestrel.env), opens the PFX once at
start with openssl (the password passed by environment, never on a command line), and serves
HTTPS with that certificate on --port until it is restarted. So what it presents shows whether
the deploy restarted it after a renewal.
"""

from __future__ import annotations

import argparse
import os
import ssl
import subprocess
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = "Kestrel__Certificates__Default__Path"
PASSWORD = "Kestrel__Certificates__Default__Password"


def pfx_part(pfx: str, *options: str) -> bytes:
    """One part of the PFX as PEM: the leaf (-clcerts -nokeys), the chain (-cacerts -nokeys) or the key."""
    return subprocess.run(["openssl", "pkcs12", "-in", pfx, "-passin", f"env:{PASSWORD}", *options],
                          check=True, capture_output=True).stdout


class Handler(BaseHTTPRequestHandler):
    server_version = "bars-lab-pfx-app"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"bars-lab-pfx-app\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9443)
    args = parser.parse_args()
    pfx = os.environ[PATH]
    with tempfile.TemporaryDirectory(prefix="pfx-app-") as private:  # 0700: mkdtemp
        pem = Path(private) / "serving.pem"
        pem.touch(mode=0o600)
        pem.write_bytes(pfx_part(pfx, "-clcerts", "-nokeys") + pfx_part(pfx, "-cacerts", "-nokeys")
                        + pfx_part(pfx, "-nocerts", "-nodes"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        pem.unlink()  # the key stays in memory only, as in the real application
    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"serving {pfx} on port {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
