"""First run and unchanged run by endpoint count, each beside its floor.

    bin/setup && .venv/bin/python -m bench.scale [--counts 1,10,50,100] [--runs 3]

Boots its own lab host (``bars-scale``). For each count, on a host whose packages are already
installed (a warm-up deploy), with every earlier endpoint removed: the *first run* is a deploy
(keys, CSRs, request packs), the lab CA signing every CSR on the controller, and a deploy that
installs every certificate, PKCS#12 and nginx server; then *no-op* is the median of ``--runs``
unchanged deploys (each must change nothing). Remote commands are counted from pyinfra's
``--debug`` log, file uploads included (as bench/unchanged_run.py counts them).

The floor printed beside each figure: pyinfra's own start-up (``pyinfra --version``), one SSH
round trip (a fresh connection running ``true``), and, for the first run, N RSA keys generated on
the host divided by its cores (one key timed on the host, times N, over ``nproc``).

The inventory grammar allows at most 100 endpoints per host (bars_receiver/settings.py), so 100
is the largest count one host can be given.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from lab.ca import LabCA
from lab.host import Lab
from lab.project import PYINFRA, Project, endpoint

from .unchanged_run import remote_commands

WIPE = ("rm -rf /etc/bars-receiver /etc/bars-receiver-app /etc/nginx/conf.d/bars-receiver.conf;"
        " systemctl reload nginx 2>/dev/null || true")


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def floors(lab: Lab, key_bits: int = 2048) -> dict[str, float]:
    """pyinfra start-up, one SSH round trip and one RSA key on the host (medians of 3)."""
    startup = statistics.median(timed(lambda: subprocess.run([str(PYINFRA), "--version"], capture_output=True,
                                                             check=True))[0] for _ in range(3))
    round_trip = statistics.median(timed(lambda: lab.ssh("true"))[0] for _ in range(3))
    keygen = lab.ssh(
        "for i in 1 2 3; do s=$(date +%s%N); openssl genpkey -quiet -algorithm RSA "
        f"-pkeyopt rsa_keygen_bits:{key_bits} -out /dev/null; e=$(date +%s%N); echo $((e - s)); done; nproc"
    ).stdout.split()
    return {"startup": startup, "round_trip": round_trip,
            "keygen": statistics.median(int(value) for value in keygen[:3]) / 1e9, "cores": int(keygen[3])}


def measure(project: Project, count: int, runs: int) -> dict:
    name = f"scale{count}"
    project.lab.ssh(WIPE)
    project.write_inventory([endpoint(f"S{index:04d}") for index in range(count)], name=name)
    deploy_seconds, deploy = timed(lambda: project.deploy("--debug", inventory=name))
    ca = LabCA()
    sign_seconds, _ = timed(lambda: [ca.sign_csr_file(csr, project.root, name)
                                     for csr in sorted((project.root / "requests" / name).glob("*.csr"))])
    install_seconds, install = timed(lambda: project.deploy("--debug", inventory=name))
    noop_commands, noop_seconds = set(), []
    for _ in range(runs):
        seconds, run = timed(lambda: project.deploy("--debug", inventory=name))
        if run.changed:
            raise SystemExit(f"an unchanged run with {count} endpoints changed {run.changed} operations")
        noop_seconds.append(seconds)
        noop_commands.add(remote_commands(run.output))
    return {
        "deploy": deploy_seconds, "sign": sign_seconds, "install": install_seconds,
        "deploy_commands": remote_commands(deploy.output), "install_commands": remote_commands(install.output),
        "noop": statistics.median(noop_seconds), "noop_commands": sorted(noop_commands),
    }


def report(results: dict[int, dict], floor: dict[str, float]) -> None:
    print(f"\nmachine: {os.cpu_count()} cores; load: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"floor parts: pyinfra start-up {floor['startup']:.2f} s, SSH round trip {floor['round_trip']:.2f} s, "
          f"one RSA key on the host {floor['keygen']:.2f} s, host cores {floor['cores']}")
    print("\nfirst run = deploy (keys, CSRs) + lab CA signing + deploy (install); floor = start-up x2 + "
          "round trip x2 + N x key / cores")
    print(f"{'endpoints':>9} {'deploy s':>9} {'sign s':>7} {'install s':>10} {'total s':>8} {'cmds':>9} "
          f"{'floor s':>8} {'total/floor':>11}")
    for count, result in results.items():
        total = result["deploy"] + result["sign"] + result["install"]
        floor_s = 2 * (floor["startup"] + floor["round_trip"]) + count * floor["keygen"] / floor["cores"]
        commands = f"{result['deploy_commands']}+{result['install_commands']}"
        print(f"{count:>9} {result['deploy']:>9.2f} {result['sign']:>7.2f} {result['install']:>10.2f} "
              f"{total:>8.2f} {commands:>9} {floor_s:>8.2f} {total / floor_s:>11.2f}")
    print("\nno-op (every endpoint active, unchanged); floor = start-up + round trip")
    base = next(iter(results.values()))["noop"]
    print(f"{'endpoints':>9} {'median s':>9} {'cmds':>5} {'floor s':>8} {'x first':>8}")
    for count, result in results.items():
        floor_s = floor["startup"] + floor["round_trip"]
        commands = ",".join(map(str, result["noop_commands"]))
        print(f"{count:>9} {result['noop']:>9.2f} {commands:>5} {floor_s:>8.2f} {result['noop'] / base:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--counts", default="1,10,50,100")
    args = parser.parse_args()
    counts = [int(value) for value in args.counts.split(",")]
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with Lab.up(name="bars-scale") as lab, tempfile.TemporaryDirectory() as root:
        project = Project(Path(root), lab)
        project.write_inventory([endpoint("WARM")], name="warm")
        project.deploy(inventory="warm")  # packages installed: every count starts from the same host
        floor = floors(lab)
        results = {}
        for count in counts:
            results[count] = measure(project, count, args.runs)
            print(f"{count} endpoints: {results[count]}", flush=True)
    report(results, floor)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
