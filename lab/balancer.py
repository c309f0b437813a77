"""A TCP load balancer in front of lab fleet hosts: HAProxy (Debian's package) on the fleet's switch.

Why TCP: TLS-MA ends on each receiver host, with that host's own key and certificate (docs/ha.md);
the balancer only passes connections through, as a supplier's production load balancer in TCP
mode does. It listens on the fleet's balancer address (192.0.2.4) and connects to the hosts from
that same address, which is therefore what the hosts' firewall must let in (proxy_addresses).

The HAProxy process is started here, in the foreground of its own session (``-db``), and stopped by
the PID this object holds; nothing else is ever signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .fleet import BALANCER, Fleet, host_address
from .host import LabError, _wait_gone

HAPROXY = "/usr/sbin/haproxy"


def render_config(backends: list[str], port: int = 443) -> str:
    """HAProxy in TCP mode, round robin over ``backends`` (host addresses)."""
    servers = "\n".join(f"    server node{i} {address}:{port} source {BALANCER}"
                        for i, address in enumerate(backends, start=1))
    return (
        "global\n    maxconn 256\n\n"
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n"
        f"frontend bars_receivers\n    bind {BALANCER}:{port}\n    default_backend receivers\n\n"
        f"backend receivers\n    balance roundrobin\n{servers}\n"
    )


class TcpBalancer:
    """``with TcpBalancer(fleet, [1, 2]):`` balances ``BALANCER:443`` over fleet hosts 1 and 2."""

    def __init__(self, fleet: Fleet, hosts: list[int], port: int = 443):
        self.fleet = fleet
        self.backends = [host_address(index) for index in hosts]
        self.port = port
        self.process: subprocess.Popen | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="bars-lab-haproxy-")
        self.config = Path(self._dir.name) / "haproxy.cfg"

    def __enter__(self) -> "TcpBalancer":
        if not os.path.exists(HAPROXY):
            raise LabError(f"{HAPROXY} is missing: bin/setup installs the Debian package haproxy")
        self.config.write_text(render_config(self.backends, self.port))
        check = self.fleet.netns_run([HAPROXY, "-c", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise LabError(f"haproxy refused its configuration: {check.stdout}{check.stderr}")
        self.log = open(Path(self._dir.name) / "haproxy.log", "w")
        self.process = subprocess.Popen(self.fleet.netns_prefix() + [HAPROXY, "-db", "-f", str(self.config)],
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            listening = self.fleet.netns_run(["ss", "-Htln", f"sport = :{self.port}"], capture_output=True, text=True)
            if f"{BALANCER}:{self.port}" in listening.stdout:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise LabError("haproxy did not start listening: " + (Path(self._dir.name) / "haproxy.log").read_text())
            time.sleep(0.2)

    def __exit__(self, *_exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            if not _wait_gone([self.process.pid], 10):
                self.process.kill()
            self.process.wait()
        self.process = None
        self.log.close()
        self._dir.cleanup()
