"""How long an unchanged run takes, and how many remote commands it makes, by endpoint count.

    bin/setup && .venv/bin/python -m bench.unchanged_run [--runs 5] [--counts 1,10,50]

Boots its own lab host, makes N endpoints on it, then times unchanged re-runs. Remote commands
are counted from pyinfra's debug log ("Running command on ..."), file uploads included. The
machines are shared and noisy: read the medians and the ratios, not single figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lab.host import Lab
from lab.project import Project, endpoint


def remote_commands(output: str) -> int:
    return output.count("Running command on ") + output.count("Attempting upload of ")


def measure(project: Project, count: int, runs: int) -> tuple[int, list[float]]:
    project.write_inventory([endpoint(f"B{index:04d}") for index in range(count)], name=f"bench{count}")
    project.deploy(inventory=f"bench{count}")  # makes the keys and CSRs
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

    with Lab.up(name="bars-bench") as lab, tempfile.TemporaryDirectory() as root:
        project = Project(Path(root), lab)
        results = {count: measure(project, count, args.runs) for count in counts}

    base = statistics.median(results[counts[0]][1])
    print(f"unchanged run, {args.runs} runs each (wall time of the whole pyinfra process)")
    print(f"{'endpoints':>9} {'remote cmds':>11} {'median s':>9} {'min s':>6} {'max s':>6} {'x first':>8}")
    for count, (commands, seconds) in results.items():
        median = statistics.median(seconds)
        print(f"{count:>9} {commands:>11} {median:>9.2f} {min(seconds):>6.2f} {max(seconds):>6.2f} {median / base:>8.2f}")


if __name__ == "__main__":
    main()
