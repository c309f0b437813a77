"""The TLS-MA listener's cost: requests through nginx against the same requests straight to the
application, and nginx's memory by endpoint count.

    bin/setup && .venv/bin/python -m bench.listener [--requests 300] [--seconds 20]

Boots its own lab host, makes one endpoint active (the lab CA signs it) and calls it from the
BaRS proxy's address (127.0.0.2) with a lab client certificate, inside the lab's network
namespace, with a small Python client (http.client + ssl). Three ways of connecting: a new TLS
connection per request, a new TCP connection resuming the TLS session, and one keep-alive
connection. The stand-in application (lab/upstream.py) is called the same ways over plain HTTP.
Then POSTs of 100 KB, 5 MB and 40 MB FHIR Bundles, and nginx's resident memory (all its
processes) with 1 and 50 active endpoints. Each figure is bounded in count and in time. The
machines are shared and noisy: read the medians and the ratios, not single figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROXY = "127.0.0.2"
UPSTREAM = ("127.0.0.1", 8080)
SIZES = {"100 KB": 100 * 1024, "5 MB": 5 * 1024 * 1024, "40 MB": 40 * 1024 * 1024}


# --- The client: runs inside the lab's network namespace (python -m bench.listener --client ...) ---


class LabHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the lab's 127.0.0.1:443 with the endpoint's name for SNI and Host; with
    ``resume``, it offers the TLS session the first connection ended with."""

    resume = False
    session: ssl.SSLSession | None = None
    reused = 0

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", 443), self.timeout, self.source_address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client's own connect() does
        offered = LabHTTPSConnection.session if self.resume else None
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host, session=offered)
        LabHTTPSConnection.reused += self.sock.session_reused


def client(args: argparse.Namespace) -> dict:
    context = None
    if args.tls:
        context = ssl.create_default_context(cafile=args.ca)
        context.load_cert_chain(args.cert, args.key)

    LabHTTPSConnection.resume = args.mode == "resumed"

    def connection():
        if not args.tls:
            return http.client.HTTPConnection(*UPSTREAM, timeout=60, source_address=(PROXY, 0))
        return LabHTTPSConnection(args.name, 443, context=context, timeout=60, source_address=(PROXY, 0))

    body = os.urandom(args.body // 4 * 3).hex()[:args.body].encode() if args.body else None
    headers = {"Content-Type": "application/fhir+json"}
    method, path = ("POST", "/$process-message") if body else ("GET", "/metadata")
    latencies, deadline = [], time.monotonic() + args.seconds
    kept = connection() if args.mode == "keepalive" else None
    while len(latencies) < args.requests and time.monotonic() < deadline:
        started = time.perf_counter()
        conn = kept if args.mode == "keepalive" else connection()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{args.mode}: HTTP {response.status}")
        if args.tls and LabHTTPSConnection.session is None:
            LabHTTPSConnection.session = conn.sock.session
        if args.mode != "keepalive":
            conn.close()
        latencies.append(time.perf_counter() - started)
    total = sum(latencies)
    return {"count": len(latencies), "seconds": total, "rps": len(latencies) / total,
            "p50": statistics.median(latencies), "p99": sorted(latencies)[max(0, int(len(latencies) * 0.99) - 1)],
            "reused": LabHTTPSConnection.reused}


# --- The driver: boots the lab, deploys, runs the client in the namespace, prints the tables ---


def run_client(lab, project, certs: dict, **options) -> dict:
    argv = [sys.executable, "-m", "bench.listener", "--client", "--name", certs["name"], "--ca", certs["ca"],
            "--cert", certs["cert"], "--key", certs["key"]]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [flag, str(value)]
    result = lab.netns_run(argv, capture_output=True, text=True, timeout=900,
                           cwd=Path(__file__).resolve().parent.parent)
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout)


def nginx_rss_kb(lab) -> int:
    return sum(int(value) for value in lab.ssh("ps -C nginx -o rss=").stdout.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tls", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="new", help=argparse.SUPPRESS)
    parser.add_argument("--body", type=int, default=0, help=argparse.SUPPRESS)
    for name in ("name", "ca", "cert", "key"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(args)))
        return

    from lab.ca import LabCA
    from lab.host import Lab
    from lab.project import Project, endpoint, fqdn

    with Lab.up(name="bars-bench-l") as lab, tempfile.TemporaryDirectory() as root:
        project = Project(Path(root), lab)
        ca = LabCA()
        project.write_inventory([endpoint("LAB01")])
        project.deploy()
        ca.write_bundle(project.root, "test")
        ca.sign_csr_file(project.root / "requests" / "test" / f"{fqdn('LAB01')}.csr", project.root, "test")
        project.deploy()
        key, cert = ca.issue_client("bars-proxy.lab.nhs.uk")
        (project.root / "client.key").write_bytes(key)
        (project.root / "client.pem").write_bytes(cert)
        certs = {"name": fqdn("LAB01"), "ca": str(project.root / "files" / "ca" / "test" / "lab-root.pem"),
                 "cert": str(project.root / "client.pem"), "key": str(project.root / "client.key")}
        bounds = {"requests": args.requests, "seconds": args.seconds}

        print(f"\nGET /metadata, at most {args.requests} requests or {args.seconds:.0f} s per line, one client")
        print(f"{'connection':<30} {'via':<9} {'n':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x direct p50':>13}")
        for mode, label in (("new", "new TLS connection each"), ("resumed", "new TCP, TLS session resumed"),
                            ("keepalive", "one keep-alive connection")):
            direct = run_client(lab, project, certs, mode=mode if mode != "resumed" else "new", **bounds)
            listener = run_client(lab, project, certs, mode=mode, tls=True, **bounds)
            for via, figures in (("listener", listener), ("direct", direct)):
                print(f"{label:<30} {via:<9} {figures['count']:>5} {figures['rps']:>8.0f} {figures['p50'] * 1000:>8.2f} "
                      f"{figures['p99'] * 1000:>8.2f} {figures['p50'] / direct['p50'] if via == 'listener' else 1:>13.1f}")
            if mode == "resumed":
                print(f"{'':<30} (sessions resumed: {listener['reused']} of {listener['count']})")

        print("\nPOST of a body, one keep-alive connection")
        print(f"{'body':<8} {'via':<9} {'n':>3} {'p50 ms':>9} {'MB/s':>7} {'x direct p50':>13}")
        for label, size in SIZES.items():
            count = {"100 KB": 50, "5 MB": 10, "40 MB": 3}[label]
            direct = run_client(lab, project, certs, mode="keepalive", body=size, requests=count, seconds=120)
            listener = run_client(lab, project, certs, mode="keepalive", tls=True, body=size, requests=count, seconds=120)
            for via, figures in (("listener", listener), ("direct", direct)):
                print(f"{label:<8} {via:<9} {figures['count']:>3} {figures['p50'] * 1000:>9.1f} "
                      f"{size / figures['p50'] / 1e6:>7.1f} {figures['p50'] / direct['p50'] if via == 'listener' else 1:>13.1f}")

        one = nginx_rss_kb(lab)
        project.write_inventory([endpoint("LAB01")] + [endpoint(f"B{index:04d}") for index in range(49)])
        project.deploy()
        for csr in sorted((project.root / "requests" / "test").glob("*.csr")):
            if "LAB01" not in csr.name:
                ca.sign_csr_file(csr, project.root, "test")
        project.deploy()
        time.sleep(2)  # let the reload's old workers exit
        fifty = nginx_rss_kb(lab)
        print("\nnginx resident memory (master + workers + cache processes)")
        print(f"{'endpoints':>9} {'RSS MB':>8}")
        print(f"{1:>9} {one / 1024:>8.1f}\n{50:>9} {fifty / 1024:>8.1f}")


if __name__ == "__main__":
    main()
