"""How long an unchanged run takes, and how many remote commands it makes, by endpoint count.

    bin/setup && .venv/bin/python -m bench.unchanged_run [--runs 5] [--counts 1,10,50]

Boots its own lab host, makes N endpoints on it, then times unchanged re-runs: first with every
endpoint *requested* (keys and CSRs), then *active* (the lab CA signs them all: certificates,
PKCS#12 and one nginx server per endpoint). Remote commands
are counted from pyinfra's debug log ("Running command on ..."), file uploads included. The
machines are shared and noisy: read the medians and the ratios, not single figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lab.ca import LabCA
from lab.host import Lab
from lab.project import Project, endpoint


def remote_commands(output: str) -> int:
    return output.count("Running command on ") + output.count("Attempting upload of ")


def activate(project: Project, count: int) -> None:
    """Sign every CSR of the inventory with the lab CA and deploy: all endpoints active."""
    ca = LabCA()
    for csr in sorted((project.root / "requests" / f"bench{count}").glob("*.csr")):
        ca.sign_csr_file(csr, project.root, f"bench{count}")
    project.deploy(inventory=f"bench{count}")


def measure(project: Project, count: int, runs: int, active: bool) -> tuple[int, list[float]]:
    project.write_inventory([endpoint(f"B{index:04d}") for index in range(count)], name=f"bench{count}")
    # Each count is its own inventory on the same lab host: hand the host over from the last one.
    project.lab.ssh("rm -f /etc/bars-receiver/managed-by")
    project.deploy(inventory=f"bench{count}")  # makes the keys and CSRs
    if active:
        activate(project, count)
    commands, seconds = set(), []
    for _ in range(runs):
        started = time.perf_counter()
        run = project.deploy("--debug", inventory=f"bench{count}")
        seconds.append(time.perf_counter() - started)
        if run.changed:
            raise SystemExit(f"an unchanged run with {count} endpoints changed {run.changed} operations")
        commands.add(remote_commands(run.output))
    if len(commands) != 1:
        raise SystemExit(f"remote command count varied between identical runs: {sorted(commands)}")
    return commands.pop(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--counts", default="1,10,50")
    args = parser.parse_args()
    counts = [int(value) for value in args.counts.split(",")]

    for active in (False, True):
        with Lab.up(name="bars-bench") as lab, tempfile.TemporaryDirectory() as root:
            project = Project(Path(root), lab)
            results = {count: measure(project, count, args.runs, active) for count in counts}
        report(results, counts, args.runs, "active" if active else "requested")


def report(results: dict[int, tuple[int, list[float]]], counts: list[int], runs: int, state: str) -> None:
    base = statistics.median(results[counts[0]][1])
    print(f"\nunchanged run, every endpoint {state}, {runs} runs each (wall time of the whole pyinfra process)")
    print(f"{'endpoints':>9} {'remote cmds':>11} {'median s':>9} {'min s':>6} {'max s':>6} {'x first':>8}")
    for count, (commands, seconds) in results.items():
        median = statistics.median(seconds)
        print(f"{count:>9} {commands:>11} {median:>9.2f} {min(seconds):>6.2f} {max(seconds):>6.2f} {median / base:>8.2f}")


if __name__ == "__main__":
    main()
