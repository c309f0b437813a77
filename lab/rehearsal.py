"""The lab main job: the whole endpoint lifecycle against the lab host, with the lab CA playing
NHS England, ending with a real TLS-MA call from the address that plays the BaRS proxy.

    bin/lab deploy        (= python -m lab.rehearsal, after bin/setup)

1. boot the lab host if it is not running;
2. pyinfra -y inventories/lab.py deploy.py: keys, CSRs and request packs (endpoints *requested*);
3. the lab CA signs every lab CSR that has no certificate yet (files/certs/lab/<fqdn>.cer);
4. the same deploy again: certificates installed, PFX built, nginx serving (endpoints *active*);
5. GET /metadata on each endpoint over TLS-MA with a lab client certificate, from 127.0.0.2.
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

from .ca import LabCA
from .host import Lab, LabError

REPO = Path(__file__).resolve().parent.parent
NAME = "bars-lab"
PROXY = "127.0.0.2"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def deploy(lab: Lab) -> None:
    argv = [*lab.netns_prefix(), str(Path(sys.executable).parent / "pyinfra"), "-y", "inventories/lab.py", "deploy.py"]
    if subprocess.run(argv, cwd=REPO).returncode != 0:
        raise SystemExit("the deploy failed (see above)")


def lab_receivers():
    """The validated lab inventory: the same settings the deploy used (endpoints, listen_port)."""
    from bars_receiver.inventory import load_hosts

    return [data["receiver"] for _, data in load_hosts(REPO / "inventories" / "lab.yml")]


def call(lab: Lab, fqdn: str, client: Path, port: int) -> bool:
    """One TLS-MA request, retried for up to 5 s (systemctl reload returns before nginx has)."""
    deadline = time.monotonic() + 5
    while True:
        answered, report = _call(lab, fqdn, client, port)
        if answered or time.monotonic() > deadline:
            print(f"    {fqdn}: {report}")
            return answered
        time.sleep(0.5)


def _call(lab: Lab, fqdn: str, client: Path, port: int) -> tuple[bool, str]:
    request_id = str(uuid.uuid4())
    result = lab.netns_run(
        ["curl", "-sS", "--max-time", "10", "--interface", PROXY, "--resolve", f"{fqdn}:{port}:127.0.0.1",
         "--cacert", str(REPO / "files" / "ca" / "lab" / "lab-root.pem"),
         "--cert", str(client / "client.pem"), "--key", str(client / "client.key"),
         "-H", f"X-Request-Id: {request_id}", "-w", "\n%{http_code}", f"https://{fqdn}:{port}/metadata"],
        capture_output=True, text=True,
    )
    body, _, status = result.stdout.rpartition("\n")
    if result.returncode != 0 or status != "200":
        return False, f"FAILED ({result.stderr.strip() or 'HTTP ' + status})"
    answer = json.loads(body)
    headers = answer["received"]["headers"]
    return True, (f"HTTP 200 {answer.get('resourceType')}; the application saw "
                  f"{headers.get('X-Client-Subject-DN')!r}, X-Request-Id echoed: {headers.get('X-Request-Id') == request_id}")


def main() -> int:
    try:
        lab = Lab.existing(NAME)
    except LabError:
        say(f"booting the lab host {NAME}")
        lab = Lab.up(NAME)
        # A new lab host has new keys: CSRs and certificates of an earlier one no longer apply.
        for stale in (REPO / "requests" / "lab", REPO / "files" / "certs" / "lab"):
            shutil.rmtree(stale, ignore_errors=True)
    ca = LabCA()
    ca.write_bundle(REPO, "lab")

    say("deploy: keys, CSRs and request packs")
    deploy(lab)

    unsigned = [csr for csr in sorted((REPO / "requests" / "lab").glob("*.csr"))
                if not (REPO / "files" / "certs" / "lab" / f"{csr.stem}.cer").exists()]
    if unsigned:
        say("the lab CA, playing NHS England, signs the new CSRs")
        for csr in unsigned:
            print(f"    {ca.sign_csr_file(csr, REPO, 'lab').relative_to(REPO)}")
        say("deploy again: certificates, PKCS#12, nginx")
        deploy(lab)

    say(f"TLS-MA calls from {PROXY} (the BaRS proxy's stand-in) with a lab client certificate")
    with tempfile.TemporaryDirectory() as client:
        key, cert = ca.issue_client("bars-proxy.lab.nhs.uk")
        (Path(client) / "client.key").write_bytes(key)
        (Path(client) / "client.pem").write_bytes(cert)
        results = [call(lab, endpoint.fqdn, Path(client), receiver.settings.listen_port)
                   for receiver in lab_receivers() for endpoint in receiver.endpoints]
    if not all(results):
        return 1
    print("\nThe lab host is up: bin/lab ssh for a shell, bin/lab down to remove it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
