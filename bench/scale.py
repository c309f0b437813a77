"""First run and unchanged run by endpoint count, each beside its floor.

    bin/setup && .venv/bin/python -m bench.scale [--counts 1,10,50,200,500] [--runs 3] [--first-runs 3]

Boots its own lab host (``bars-scale``). For each count, on a host whose packages are already
installed (a warm-up deploy), with every earlier endpoint removed: the *first run* is a deploy
(keys, CSRs, request packs), the lab CA signing every CSR on the controller, and a deploy that
installs every certificate, PKCS#12 and nginx server, repeated ``--first-runs`` times from a
wiped host (the median is reported, with the fastest and slowest: RSA key generation is a
random search, so one run's keys can cost a tenth more or less than the next's); then *no-op*
is the median of ``--runs`` unchanged deploys (each must change nothing; the first of them, which reads the host in full and
fills the endpoint facts' output cache, is printed too). The timed runs are plain deploys, as CI
runs them; remote commands are counted from pyinfra's ``--debug`` log, file uploads included (as
bench/unchanged_run.py counts them), in one more first run and one more unchanged run per count,
whose times (the log costs some) are printed beside the others.

The floor printed beside each figure: pyinfra's own start-up (``pyinfra --version``), one SSH
round trip (a fresh connection running ``true``), and, for the first run, N RSA keys generated on
the host divided by its cores (the mean time of one key, from keys made on every core at once).

The inventory grammar allows at most 500 endpoints per host (bars_receiver/inventory/settings.py), so 500
is the largest count one host can be given.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
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


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


KEY_SAMPLE = 200  # keys timed for the keygen floor: RSA key generation time is long-tailed


def floors(lab: Lab, key_bits: int = 2048) -> dict[str, float]:
    """pyinfra start-up and one SSH round trip (medians of 3), and the host's keygen rate: the mean
    time of one RSA key, from KEY_SAMPLE keys made on the host on every core at once (as
    make_keys.sh makes them), times the cores. A median of a few keys would understate it: an
    RSA key's time is long-tailed (prime search), and N keys cost N times the mean."""
    startup = statistics.median(timed(lambda: subprocess.run([str(PYINFRA), "--version"], capture_output=True,
                                                             check=True))[0] for _ in range(3))
    round_trip = statistics.median(timed(lambda: lab.ssh("true"))[0] for _ in range(3))
    keygen = lab.ssh(
        f"n=$(nproc); s=$(date +%s%N); seq {KEY_SAMPLE} | xargs -P \"$n\" -I{{}} openssl genpkey -quiet "
        f"-algorithm RSA -pkeyopt rsa_keygen_bits:{key_bits} -out /dev/null; e=$(date +%s%N); "
        "echo $((e - s)) $n"
    ).stdout.split()
    cores = int(keygen[1])
    return {"startup": startup, "round_trip": round_trip, "keygen": int(keygen[0]) / 1e9 * cores / KEY_SAMPLE,
            "cores": cores}


def first_run(project: Project, name: str, *debug: str) -> dict:
    """Wipe the endpoints, then deploy, sign every CSR, deploy again: the seconds of each part (and,
    with "--debug", the remote commands of each deploy)."""
    project.lab.ssh(WIPE)
    for made in ("requests", "files/certs"):
        shutil.rmtree(project.root / made / name, ignore_errors=True)
    deploy_seconds, deploy = timed(lambda: project.deploy(*debug, inventory=name))
    ca = LabCA()
    sign_seconds, _ = timed(lambda: [ca.sign_csr_file(csr, project.root, name)
                                     for csr in sorted((project.root / "requests" / name).glob("*.csr"))])
    install_seconds, install = timed(lambda: project.deploy(*debug, inventory=name))
    return {"deploy": deploy_seconds, "sign": sign_seconds, "install": install_seconds,
            "total": deploy_seconds + sign_seconds + install_seconds,
            "deploy_commands": remote_commands(deploy.output), "install_commands": remote_commands(install.output)}


def unchanged_run(project: Project, count: int, name: str, *debug: str):
    seconds, run = timed(lambda: project.deploy(*debug, inventory=name))
    if run.changed:
        raise SystemExit(f"an unchanged run with {count} endpoints changed {run.changed} operations")
    return seconds, run


def measure(project: Project, count: int, runs: int, first_runs: int) -> dict:
    """Timed runs are plain deploys, as CI runs them; pyinfra's --debug log (which counts the remote
    commands) costs time of its own, so the commands are counted in one more first run and one
    more unchanged run, whose times are printed apart."""
    name = f"scale{count}"
    load = Path("/proc/loadavg").read_text().split()[0]  # the 1-minute load as this count starts
    project.write_inventory([endpoint(f"S{index:04d}") for index in range(count)], name=name)
    counted = first_run(project, name, "--debug")
    firsts = sorted((first_run(project, name) for _ in range(first_runs)), key=lambda run: run["total"])
    median = firsts[len(firsts) // 2]
    test = project.lab.ssh("nginx -t 2>&1").stdout
    if "[warn]" in test or "[emerg]" in test:
        raise SystemExit(f"nginx -t with {count} servers is not clean:\n{test}")
    noop_seconds = [unchanged_run(project, count, name)[0] for _ in range(runs)]
    debug_seconds, debug_run = unchanged_run(project, count, name, "--debug")
    return {
        "load": float(load), "noop_first": noop_seconds[0], **median,
        "deploy_commands": counted["deploy_commands"], "install_commands": counted["install_commands"],
        "fastest": firsts[0]["total"], "slowest": firsts[-1]["total"], "debug_total": counted["total"],
        "noop": statistics.median(noop_seconds), "noop_commands": [remote_commands(debug_run.output)],
        "noop_debug": debug_seconds,
    }


def report(results: dict[int, dict], floor: dict[str, float]) -> None:
    print(f"\nmachine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"{_memory_gib():.1f} GiB; load now: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"floor parts: pyinfra start-up {floor['startup']:.2f} s, SSH round trip {floor['round_trip']:.2f} s, "
          f"one RSA key on the host {floor['keygen']:.2f} s (mean of {KEY_SAMPLE}), host cores {floor['cores']}")
    print("\nfirst run = deploy (keys, CSRs) + lab CA signing + deploy (install), the median run (its parts) "
          "and the fastest and slowest; floor = start-up x2 + round trip x2 + N x key / cores; "
          "keygen floor = N x key / cores alone")
    print(f"{'endpoints':>9} {'deploy s':>9} {'sign s':>7} {'install s':>10} {'total s':>8} {'range s':>12} "
          f"{'cmds':>9} {'floor s':>8} {'total/floor':>11} {'keygen floor s':>14} {'--debug s':>9} {'load':>5}")
    for count, result in results.items():
        keygen = count * floor["keygen"] / floor["cores"]
        floor_s = 2 * (floor["startup"] + floor["round_trip"]) + keygen
        commands = f"{result['deploy_commands']}+{result['install_commands']}"
        spread = f"{result['fastest']:.1f}-{result['slowest']:.1f}"
        print(f"{count:>9} {result['deploy']:>9.2f} {result['sign']:>7.2f} {result['install']:>10.2f} "
              f"{result['total']:>8.2f} {spread:>12} {commands:>9} {floor_s:>8.2f} {result['total'] / floor_s:>11.2f} "
              f"{keygen:>14.2f} {result['debug_total']:>9.2f} {result['load']:>5.1f}")
    print("\nno-op (every endpoint active, unchanged); floor = start-up + round trip; 'first' is the first "
          "unchanged run after the install (it reads the host in full and fills the fact cache)")
    base = next(iter(results.values()))["noop"]
    print(f"{'endpoints':>9} {'median s':>9} {'first s':>8} {'cmds':>5} {'floor s':>8} {'x 1st count':>11} "
          f"{'--debug s':>9}")
    for count, result in results.items():
        floor_s = floor["startup"] + floor["round_trip"]
        commands = ",".join(map(str, result["noop_commands"]))
        print(f"{count:>9} {result['noop']:>9.2f} {result['noop_first']:>8.2f} {commands:>5} {floor_s:>8.2f} "
              f"{result['noop'] / base:>11.2f} {result['noop_debug']:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--first-runs", type=int, default=3)
    parser.add_argument("--counts", default="1,10,50,200,500")
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
            results[count] = measure(project, count, args.runs, args.first_runs)
            print(f"{count} endpoints: {results[count]}", flush=True)
    report(results, floor)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
