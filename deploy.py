"""Bring BaRS receiver endpoints on line: pyinfra -y inventories/<env>.py deploy.py

The inventory was validated as it loaded; here each host's state is read once, then the tasks
run in order. Works from any working directory: the project is found beside this file.
"""

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from pyinfra import host, local, state  # noqa: E402
from pyinfra.api import DeployError  # noqa: E402

from bars_receiver.certificates.facts import CertificateFiles  # noqa: E402
from bars_receiver.certificates.renewal import key_refusals  # noqa: E402
from bars_receiver.connection import without_nagle  # noqa: E402
from bars_receiver.shared import SharedList  # noqa: E402
from bars_receiver.keys.facts import PUBLIC_KEY_CACHE, EndpointFiles  # noqa: E402
from bars_receiver.ownership import TAKE_OVER, ownership_problem  # noqa: E402
from bars_receiver.run_mode import is_dry  # noqa: E402
from bars_receiver.shipping import SHIPPED, HostRecords  # noqa: E402
from bars_receiver.snapshot import (  # noqa: E402
    SNAPSHOT, client_crl_path, read, read_snapshot, read_together, snapshot,
)


def task(name: str) -> str:
    return str(PROJECT / "tasks" / name)


receiver = host.data.get("receiver")
if receiver is None:
    raise DeployError(f"{host.name} has no receiver settings: run with an inventory from inventories/")

if is_dry():
    # pyinfra skips change detection with -y; a dry run must still show every change.
    state.check_for_changes = True

# Before the first remote command: each one would otherwise wait ~40 ms for a delayed ACK.
without_nagle(host)

# The host in one round trip: the deploy's own records on it and its host-level state (packages,
# directories, services, firewall, nginx's live file). Tasks declare a host-level operation only
# when it has something to do.
setattr(host.data, SNAPSHOT, read_snapshot(
    receiver.settings.base_dir,
    receiver.settings.app_dir,
    client_crl_path(receiver.settings.base_dir) if receiver.client_crl_pem else None,
))

# Refused here, while operations are collected: no host has been changed yet. The same read says
# which host scripts the host already holds (bars_receiver/shipping.py): operations upload only
# the ones it lacks, so an unchanged run uploads nothing and reads nothing more.
records = snapshot().fact(HostRecords, base_dir=receiver.settings.base_dir)
managed_by = records.managed_by
setattr(host.data, SHIPPED, records.scripts)  # one record per host, shared by its tasks
problem = ownership_problem(
    host.name,
    managed_by,
    receiver.inventory,
    receiver.settings.environment,
    receiver.settings.base_dir,
    host.data.get(TAKE_OVER),
)
if problem:
    raise DeployError(problem)

# The endpoint directories: keys and CSRs, and the certificates and hand-offs installed. Read only
# now that the host is this inventory's: the reads fill the host's fact and public-key caches (a
# dry run only reads them). Both in one command, at once; either is read again alone if its part
# failed.
endpoint_read = read(EndpointFiles, base_dir=receiver.settings.base_dir, cache_dir=PUBLIC_KEY_CACHE,
                     cache_write=not is_dry())
certificate_read = read(
    CertificateFiles,
    base_dir=receiver.settings.base_dir,
    app_dir=receiver.settings.app_dir,
    password_source="env" if receiver.pfx_password is not None else "generated",
    app_group=receiver.settings.app_group,
    cache_write=not is_dry(),
)
endpoints = read_together((endpoint_read, certificate_read))
endpoint_files = endpoints.fact(endpoint_read.fact, **endpoint_read.kwargs)
certificate_files = endpoints.fact(certificate_read.fact, **certificate_read.kwargs)

# Endpoints left exactly as they are on this host this run, with the reason: the controller refused
# their certificate file, or the host no longer holds the key it was issued for. Every other
# endpoint, here and on every other host, goes ahead; tasks/refusals.py fails the host at the end.
refused = {**receiver.refused, **key_refusals(receiver, endpoint_files)}

local.include(task("packages.py"))
local.include(task("keys.py"), data={
    "endpoint_files": endpoint_files, "certificate_files": certificate_files, "refused": refused,
})
local.include(task("ownership.py"), data={"managed_by": managed_by})
# tasks/certificates.py appends the operations that install certificates; nginx reloads on them.
certificate_changes = SharedList()
application_changes = SharedList()  # (fqdn, operation) pairs: the certificate and PFX operations
local.include(task("certificates.py"), data={
    "endpoint_files": endpoint_files, "certificate_files": certificate_files, "certificate_changes": certificate_changes,
    "refused": refused, "application_changes": application_changes,
})
local.include(task("request_packs.py"), data={"endpoint_files": endpoint_files, "refused": refused})
# The port is narrowed to the BaRS proxy before nginx ever serves on it; a port nginx leaves is
# released only once it has left (tasks/firewall_release.py).
local.include(task("firewall.py"))
local.include(task("nginx.py"), data={
    "endpoint_files": endpoint_files, "certificate_changes": certificate_changes,
    "certificate_files": certificate_files, "refused": refused,
})
local.include(task("firewall_release.py"))
# Each application (app_unit) is restarted or reloaded after its endpoint's PFX or key changed.
local.include(task("application.py"), data={"application_changes": application_changes})
# Retired endpoints are archived once nginx no longer names their files.
local.include(task("retire.py"))
# Last: a refused endpoint makes the run fail once everything else on the host is done.
local.include(task("refusals.py"), data={"refused": refused})
