"""How a run grows with hosts: wall time of a first run and of an unchanged run, hosts x endpoints.

    bin/setup && .venv/bin/python -m bench.fleet [--hosts 1,4,8] [--endpoints 1,50] [--runs 3]

For each host count it boots a lab fleet of its own (lab/fleet.py: the hosts boot in parallel,
and the boot time is reported too), then for each endpoint count writes an inventory with that
many endpoints on every host (new FQDNs, so the first run really makes every key and CSR) and
times, through the real CLI on the fleet's switch, the first run (keys, CSRs, request packs,
firewall, nginx: every endpoint *requested*) and then unchanged re-runs (which must change
nothing). The machines are shared and noisy: read the medians and the ratios, not single figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lab.fleet import Fleet
from lab.project import Project, endpoint


def inventory(project: Project, hosts: int, endpoints: int) -> str:
    # One inventory name for every count: a host belongs to one inventory (bars_receiver/ownership.py).
    name = "bench"
    project.write_fleet_inventory(
        {index: [endpoint(f"F{index}E{n:03d}") for n in range(endpoints)] for index in range(1, hosts + 1)},
        name=name,
    )
    return name


def timed(project: Project, name: str) -> tuple[float, int]:
    started = time.perf_counter()
    run = project.deploy(inventory=name)
    return time.perf_counter() - started, run.changed


def measure(hosts: int, counts: list[int], runs: int) -> tuple[float, dict[int, tuple[float, list[float]]]]:
    started = time.perf_counter()
    with Fleet.up(name="bars-bench-fleet", size=hosts) as fleet, tempfile.TemporaryDirectory() as root:
        boot = time.perf_counter() - started
        project = Project(Path(root), fleet)
        results = {}
        for count in counts:
            name = inventory(project, hosts, count)
            first, changed = timed(project, name)
            if not changed:
                raise SystemExit(f"the first run with {hosts} hosts x {count} endpoints changed nothing")
            unchanged = []
            for _ in range(runs):
                seconds, changed = timed(project, name)
                if changed:
                    raise SystemExit(f"an unchanged run ({hosts} hosts x {count} endpoints) changed {changed} operations")
                unchanged.append(seconds)
            results[count] = (first, unchanged)
            print(f"  {hosts} host(s) x {count} endpoint(s): first {first:.2f} s, "
                  f"unchanged median {statistics.median(unchanged):.2f} s", flush=True)
    return boot, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,4,8")
    parser.add_argument("--endpoints", default="1,50")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    host_counts = [int(value) for value in args.hosts.split(",")]
    counts = [int(value) for value in args.endpoints.split(",")]
    table = {}
    for hosts in host_counts:
        table[hosts] = measure(hosts, counts, args.runs)
    base = {count: statistics.median(table[host_counts[0]][1][count][1]) for count in counts}
    print(f"\nfleet runs, median of {args.runs} unchanged runs (wall time of the whole pyinfra process)")
    print(f"{'hosts':>5} {'boot s':>7} {'endpoints/host':>14} {'first run s':>11} {'unchanged s':>11} {'x 1 host':>8}")
    for hosts, (boot, results) in table.items():
        for count, (first, unchanged) in results.items():
            median = statistics.median(unchanged)
            print(f"{hosts:>5} {boot:>7.1f} {count:>14} {first:>11.2f} {median:>11.2f} {median / base[count]:>8.2f}")


if __name__ == "__main__":
    main()
