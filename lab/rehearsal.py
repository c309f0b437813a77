"""The lab main job: the whole endpoint lifecycle against the lab host (or the lab fleet), with
the lab CA playing NHS England, ending with a real TLS-MA call from the address that plays the
BaRS proxy.

    bin/lab deploy        (= python -m lab.rehearsal, after bin/setup)
    bin/lab fleet deploy  (= python -m lab.rehearsal --fleet: four hosts, inventories/lab-fleet.py)

1. boot the lab host (or fleet) if it is not running;
2. pyinfra -y inventories/lab.py deploy.py: keys, CSRs and request packs (endpoints *requested*);
3. the lab CA signs every lab CSR that has no certificate yet (files/certs/lab/<fqdn>.cer);
4. the same deploy again: certificates installed, PFX built, nginx serving (endpoints *active*);
5. GET /metadata on each endpoint over TLS-MA with a lab client certificate, from the proxy's
   address (127.0.0.2 beside the lab host; 192.0.2.2 on the fleet's switch).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from . import fleet as lab_fleet
from .ca import LabCA
from .host import Lab, LabError

REPO = Path(__file__).resolve().parent.parent
NAME = "bars-lab"
PROXY = "127.0.0.2"
FLEET_INVENTORY = "lab-fleet"  # inventories/lab-fleet.yml: the fleet bars-fleet, four hosts


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def deploy(lab: Lab | lab_fleet.Fleet, inventory: str = "lab") -> None:
    argv = [*lab.netns_prefix(), str(Path(sys.executable).parent / "pyinfra"), "-y",
            f"inventories/{inventory}.py", "deploy.py"]
    if subprocess.run(argv, cwd=REPO).returncode != 0:
        raise SystemExit("the deploy failed (see above)")


def lab_receivers(inventory: str = "lab"):
    """The validated lab inventory: the same settings the deploy used (endpoints, listen_port),
    as (host data, receiver) pairs."""
    from bars_receiver.inventory.loader import load_hosts

    return [(data, data["receiver"]) for _, data in load_hosts(REPO / "inventories" / f"{inventory}.yml")]


def call(lab: Lab | lab_fleet.Fleet, fqdn: str, client: Path, port: int, address: str = "127.0.0.1",
         proxy: str = PROXY, inventory: str = "lab") -> bool:
    """One TLS-MA request, retried for up to 5 s (systemctl reload returns before nginx has)."""
    deadline = time.monotonic() + 5
    while True:
        answered, report = _call(lab, fqdn, client, port, address, proxy, inventory)
        if answered or time.monotonic() > deadline:
            print(f"    {fqdn} at {address}: {report}")
            return answered
        time.sleep(0.5)


def _call(lab, fqdn: str, client: Path, port: int, address: str, proxy: str, inventory: str) -> tuple[bool, str]:
    request_id = str(uuid.uuid4())
    result = lab.netns_run(
        ["curl", "-sS", "--max-time", "10", "--interface", proxy, "--resolve", f"{fqdn}:{port}:{address}",
         "--cacert", str(REPO / "files" / "ca" / inventory / "lab-root.pem"),
         "--cert", str(client / "client.pem"), "--key", str(client / "client.key"),
         "-H", f"X-Request-Id: {request_id}", "-w", "\n%{http_code}", f"https://{fqdn}:{port}/metadata"],
        capture_output=True, text=True,
    )
    body, _, status = result.stdout.rpartition("\n")
    if result.returncode != 0 or status != "200":
        return False, f"FAILED ({result.stderr.strip() or 'HTTP ' + status})"
    answer = json.loads(body)
    # Header names are case-insensitive; nginx passes X-Request-ID, not the client's spelling.
    headers = {name.lower(): value for name, value in answer["received"]["headers"].items()}
    return True, (f"HTTP 200 {answer.get('resourceType')}; the application saw "
                  f"{headers.get('x-client-subject-dn')!r}, X-Request-Id echoed: {headers.get('x-request-id') == request_id}")


def main(argv: list[str] | None = None) -> int:
    fleet_mode = "--fleet" in (sys.argv[1:] if argv is None else argv)
    inventory = FLEET_INVENTORY if fleet_mode else "lab"
    if fleet_mode:
        try:
            lab = lab_fleet.Fleet.existing(lab_fleet.DEFAULT_NAME)
        except LabError:
            say(f"booting the lab fleet {lab_fleet.DEFAULT_NAME} ({lab_fleet.DEFAULT_SIZE} hosts, in parallel)")
            lab = lab_fleet.Fleet.up(lab_fleet.DEFAULT_NAME, lab_fleet.DEFAULT_SIZE)
            forget(inventory)
        proxy = lab_fleet.PROXY
    else:
        try:
            lab = Lab.existing(NAME)
        except LabError:
            say(f"booting the lab host {NAME}")
            lab = Lab.up(NAME)
            forget(inventory)
        proxy = PROXY
    ca = LabCA()
    ca.write_bundle(REPO, inventory)

    say("deploy: keys, CSRs and request packs")
    deploy(lab, inventory)

    unsigned = [csr for csr in sorted((REPO / "requests" / inventory).glob("*.csr"))
                if not csr.name.endswith(".next.csr")
                and not (REPO / "files" / "certs" / inventory / f"{csr.stem}.cer").exists()]
    if unsigned:
        say("the lab CA, playing NHS England, signs the new CSRs")
        for csr in unsigned:
            print(f"    {ca.sign_csr_file(csr, REPO, inventory).relative_to(REPO)}")
        say("deploy again: certificates, PKCS#12, nginx")
        deploy(lab, inventory)

    say(f"TLS-MA calls from {proxy} (the BaRS proxy's stand-in) with a lab client certificate")
    with tempfile.TemporaryDirectory() as client:
        key, cert = ca.issue_client("bars-proxy.lab.nhs.uk")
        (Path(client) / "client.key").write_bytes(key)
        (Path(client) / "client.pem").write_bytes(cert)
        results = [call(lab, endpoint.fqdn, Path(client), receiver.settings.listen_port,
                        address=data.get("ssh_hostname") if fleet_mode else "127.0.0.1",
                        proxy=proxy, inventory=inventory)
                   for data, receiver in lab_receivers(inventory) for endpoint in receiver.endpoints]
    if not all(results):
        return 1
    if fleet_mode:
        print("\nThe lab fleet is up: bin/lab fleet status to see it, bin/lab fleet down to remove it.")
    else:
        print("\nThe lab host is up: bin/lab ssh for a shell, bin/lab down to remove it.")
    return 0


def forget(inventory: str) -> None:
    """A new lab host has new keys: CSRs and certificates of an earlier one no longer apply."""
    for stale in (REPO / "requests" / inventory, REPO / "files" / "certs" / inventory):
        shutil.rmtree(stale, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
