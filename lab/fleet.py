"""A lab fleet: N lab hosts on one private lab network, reached at once by one pyinfra process.

Why: real suppliers run several receiver hosts, and production endpoints sit behind a load
balancer on two or more of them. One pyinfra run against several real hosts, with one of them
down, is only testable when the hosts share a network with the controller. Every host is a full
lab host (lab/host.py: Debian 12, systemd, sshd, nginx, nftables in its own network namespace);
the fleet adds a switch between them.

Network, all inside network namespaces the fleet made (nothing reaches the machine's own):

  netns <fleet>            the switch and the controller side: bridge br0 with
                             192.0.2.1  the controller (pyinfra runs here, under ip netns exec)
                             192.0.2.2  plays the BaRS proxy (the firewall lets it in)
                             192.0.2.3  a stranger (the firewall keeps it out)
                             192.0.2.4  the lab TCP load balancer's front end
  netns <fleet>-<i>        host i (1..N): lo and eth0 192.0.2.<10+i>/24, the far end of the
                           veth h<i> on br0

192.0.2.0/24 is TEST-NET-1 (RFC 5737): documentation addresses, never routed anywhere.

Layout: /var/lib/bars-lab/<fleet>/ holds fleet.json (the size) and known_hosts (every host's key
under its fleet address); each host keeps its own /var/lib/bars-lab/<fleet>-<i>/.

CLI: python3 -m lab.fleet up|down|status [--name NAME] [--size N]
Stdlib only; must run as root.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from .host import (
    BOOT_TIMEOUT, STATE_ROOT, Lab, LabError, _check_name, _exit_on_sigterm, _netns_delete, _netns_exists,
    _remove_tree, _require_root, _run, _write, ensure_controller_packages, ensure_rootfs_cache,
)

DEFAULT_NAME = "bars-fleet"
DEFAULT_SIZE = 4
MAX_SIZE = 16
SUBNET_PREFIX = "192.0.2."
CONTROLLER = "192.0.2.1"
PROXY = "192.0.2.2"
STRANGER = "192.0.2.3"
BALANCER = "192.0.2.4"
BRIDGE = "br0"


def host_address(index: int) -> str:
    """Host ``index`` (1-based) is 192.0.2.<10+index>."""
    return f"{SUBNET_PREFIX}{10 + index}"


class Fleet:
    """N lab hosts, ``<name>-1`` .. ``<name>-N``, on one bridge in the switch netns ``<name>``."""

    def __init__(self, name: str = DEFAULT_NAME, size: int = DEFAULT_SIZE):
        self.name = _check_name(name)
        if len(name) > 28:  # "<name>-<i>" must still be a valid lab name
            raise LabError(f"fleet name {name!r} is too long: at most 28 characters")
        if not 1 <= size <= MAX_SIZE:
            raise LabError(f"fleet size {size} is out of range: 1 to {MAX_SIZE} hosts")
        self.size = size
        self.state_dir = STATE_ROOT / name
        self.known_hosts = self.state_dir / "known_hosts"
        self.hosts = [Lab(f"{name}-{index}") for index in range(1, size + 1)]

    def __repr__(self) -> str:
        return f"Fleet(name={self.name!r}, size={self.size})"

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *_exc) -> None:
        self.down()

    # ---- life cycle

    @classmethod
    def up(cls, name: str = DEFAULT_NAME, size: int = DEFAULT_SIZE, timeout: float = BOOT_TIMEOUT) -> "Fleet":
        """Make the switch, boot every host in parallel, wire each to the switch, wait for SSH.

        Leftovers of an earlier fleet of this name are removed first.
        """
        _require_root()
        fleet = cls(name, size)
        if _netns_exists(name) or any(lab.is_running() for lab in fleet.hosts):
            raise LabError(f"fleet {name!r} is already up; run `python3 -m lab.fleet down --name {name}` first")
        fleet.down()
        ensure_controller_packages()
        ensure_rootfs_cache()  # once, before the parallel boots (they would queue on its lock)
        try:
            fleet.state_dir.mkdir(parents=True)
            _write(fleet.state_dir / "fleet.json", json.dumps({"size": size}) + "\n")
            fleet._switch()
            with concurrent.futures.ThreadPoolExecutor(max_workers=size) as pool:
                for boot in [pool.submit(fleet._boot, index, timeout) for index in range(1, size + 1)]:
                    boot.result()
            fleet._write_known_hosts()
            fleet.wait_reachable(timeout)
        except BaseException:
            with contextlib.suppress(LabError):
                fleet.down()
            raise
        return fleet

    @classmethod
    def existing(cls, name: str = DEFAULT_NAME) -> "Fleet":
        """Attach to a fleet brought up earlier (e.g. by the CLI)."""
        try:
            size = json.loads((STATE_ROOT / name / "fleet.json").read_text())["size"]
        except (OSError, ValueError, KeyError) as exc:
            raise LabError(f"fleet {name!r} is not up; start it with `python3 -m lab.fleet up --name {name}`") from exc
        return cls(name, size)

    def _switch(self) -> None:
        """The switch netns: a bridge holding the controller's, the proxy's and the balancer's addresses."""
        _run(["ip", "netns", "add", self.name], f"ip netns add {self.name}")
        for argv in (
            ["link", "set", "lo", "up"],
            ["link", "add", BRIDGE, "type", "bridge"],
            *(["addr", "add", f"{address}/24", "dev", BRIDGE] for address in (CONTROLLER, PROXY, STRANGER, BALANCER)),
            ["link", "set", BRIDGE, "up"],
        ):
            _run(["ip", "-n", self.name, *argv], f"ip {' '.join(argv)} in the fleet switch")

    def _boot(self, index: int, timeout: float) -> None:
        """Boot host ``index`` (its own lab host) and plug it into the switch."""
        lab = Lab.up(self.hosts[index - 1].name, timeout=timeout)
        self.hosts[index - 1] = lab
        veth = f"h{index}"
        for argv in (
            ["ip", "-n", self.name, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", lab.name],
            ["ip", "-n", self.name, "link", "set", veth, "master", BRIDGE, "up"],
            ["ip", "-n", lab.name, "addr", "add", f"{host_address(index)}/24", "dev", "eth0"],
            ["ip", "-n", lab.name, "link", "set", "eth0", "up"],
        ):
            _run(argv, f"wiring {lab.name} to the fleet switch ({' '.join(argv[3:])})")

    def _write_known_hosts(self) -> None:
        """Each host's key (made fresh by lab/host.py) under its fleet address: strict checking works."""
        lines = []
        for index, lab in enumerate(self.hosts, start=1):
            key_type, key = lab.known_hosts.read_text().split()[1:3]
            lines.append(f"{host_address(index)} {key_type} {key}\n")
        _write(self.known_hosts, "".join(lines))

    def wait_reachable(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until every host answers SSH on its fleet address from the switch netns."""
        for index in range(1, self.size + 1):
            self.wait_host(index, timeout)

    def wait_host(self, index: int, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            probe = self.ssh(index, "true", check=False, timeout=15)
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LabError(f"fleet host {index} ({host_address(index)}) did not answer SSH over the switch: "
                               f"{probe.stderr.strip()}")
            time.sleep(0.3)

    def stop_host(self, index: int) -> None:
        """Power host ``index`` off; it stays wired, so connections to it are refused (host down)."""
        self.hosts[index - 1].stop()

    def start_host(self, index: int, timeout: float = BOOT_TIMEOUT) -> None:
        """Boot a stopped host again from its own rootfs."""
        self.hosts[index - 1].start(timeout)
        self.wait_host(index, timeout)

    def down(self) -> None:
        """Every host down (in parallel), then the switch and the fleet's state dir. Safe to repeat."""
        _require_root()
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.size) as pool:
            for result in [pool.submit(lab.down) for lab in self.hosts]:
                result.result()
        _netns_delete(self.name)
        _remove_tree(self.state_dir)

    # ---- reaching the fleet

    def netns_prefix(self) -> list[str]:
        """Prefix that runs a controller command (pyinfra, curl, openssl) on the switch."""
        return ["ip", "netns", "exec", self.name]

    def netns_run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.netns_prefix() + list(argv), **kwargs)

    def ssh(self, index: int, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a shell command as root on host ``index`` over the switch, as pyinfra reaches it."""
        data = self.host_data(index)
        argv = self.netns_prefix() + [
            "ssh", "-F", "/dev/null", "-i", data["ssh_key"], "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR", f"root@{data['ssh_hostname']}", "--", command,
        ]
        return subprocess.run(argv, check=check, timeout=timeout, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def host_data(self, index: int) -> dict:
        """pyinfra host data for host ``index`` (pyinfra runs on the switch: netns_prefix())."""
        return {
            "ssh_hostname": host_address(index),
            "ssh_port": 22,
            "ssh_user": "root",
            "ssh_key": str(self.hosts[index - 1].ssh_key),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "yes",
        }

    def host_name(self, index: int) -> str:
        return self.hosts[index - 1].name

    def served_certificate(self, address: str, fqdn: str, port: int = 443) -> str | None:
        """The PEM leaf nginx at ``address`` presents for ``fqdn`` to the BaRS proxy's address (a real
        handshake from the switch), or None when it presents none."""
        result = self.netns_run(
            ["openssl", "s_client", "-connect", f"{address}:{port}", "-bind", f"{PROXY}:0", "-servername", fqdn],
            input="", capture_output=True, text=True, timeout=30,
        )
        begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
        if begin not in result.stdout:
            return None
        return result.stdout[result.stdout.index(begin):result.stdout.index(end) + len(end)] + "\n"

    def tls_ma_call(self, address: str, fqdn: str, client_dir: Path, ca_file: Path, port: int = 443,
                    source: str = PROXY, path: str = "/metadata") -> subprocess.CompletedProcess:
        """One HTTPS request with the client certificate in ``client_dir`` (client.pem, client.key),
        from ``source`` to ``address``, the name resolved there; stdout ends with the HTTP status."""
        return self.netns_run(
            ["curl", "-sS", "--max-time", "10", "--interface", source, "--resolve", f"{fqdn}:{port}:{address}",
             "--cacert", str(ca_file), "--cert", str(client_dir / "client.pem"),
             "--key", str(client_dir / "client.key"), "-w", "\n%{http_code}", f"https://{fqdn}:{port}{path}"],
            capture_output=True, text=True, timeout=30,
        )


# ---------------------------------------------------------------- CLI

def _describe(fleet: Fleet) -> str:
    lines = [f"fleet {fleet.name!r}: {fleet.size} hosts on bridge {BRIDGE} in netns {fleet.name}",
             f"  controller {CONTROLLER}, BaRS proxy stand-in {PROXY}, stranger {STRANGER}, balancer {BALANCER}"]
    for index, lab in enumerate(fleet.hosts, start=1):
        state = "running" if lab.is_running() else "stopped"
        lines.append(f"  {lab.name:<24} {host_address(index):<12} {state}")
    lines.append(f"  run pyinfra (or curl) on the switch: ip netns exec {fleet.name} CMD")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"fleet name (default {DEFAULT_NAME})")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"hosts for `up` (default {DEFAULT_SIZE})")
    parser.add_argument("--json", action="store_true", help="status/up: the pyinfra host data of every host as JSON")
    args = parser.parse_args(argv)
    # A SIGTERM (CI timeout, kill) cleans up a half-started fleet like Ctrl-C does.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _require_root()
        if args.command == "up":
            started = time.monotonic()
            fleet = Fleet.up(args.name, args.size)
            print(f"booted in {time.monotonic() - started:.1f} s", file=sys.stderr)
        elif args.command == "down":
            try:
                Fleet.existing(args.name).down()
            except LabError:
                Fleet(args.name, MAX_SIZE).down()  # leftovers of a half-made fleet
            print(f"fleet {args.name!r} is down")
            return 0
        else:
            fleet = Fleet.existing(args.name)
        if args.json:
            print(json.dumps({fleet.host_name(i): fleet.host_data(i) for i in range(1, fleet.size + 1)}, indent=2))
        else:
            print(_describe(fleet))
        return 0
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
