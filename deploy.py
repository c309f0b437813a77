"""Bring BaRS receiver endpoints on line: pyinfra -y inventories/<env>.py deploy.py

The inventory was validated as it loaded; here each host's state is read once, then the tasks
run in order.
"""

from pyinfra import host, local
from pyinfra.api import DeployError

from bars_receiver.certificate_facts import CertificateFiles
from bars_receiver.certificate_operations import SharedList, key_refusals
from bars_receiver.facts import EndpointFiles

receiver = host.data.get("receiver")
if receiver is None:
    raise DeployError(f"{host.name} has no receiver settings: run with an inventory from inventories/")

endpoint_files = host.get_fact(EndpointFiles, base_dir=receiver.settings.base_dir)
certificate_files = host.get_fact(
    CertificateFiles,
    base_dir=receiver.settings.base_dir,
    app_dir=receiver.settings.app_dir,
    password_source="env" if receiver.pfx_password is not None else "generated",
    app_group=receiver.settings.app_group,
)

# Endpoints left exactly as they are on this host this run, with the reason: the controller refused
# their certificate file, or the host no longer holds the key it was issued for. Every other
# endpoint, here and on every other host, goes ahead; tasks/refusals.py fails the host at the end.
refused = {**receiver.refused, **key_refusals(receiver, endpoint_files)}

local.include("tasks/packages.py")
local.include("tasks/keys.py", data={
    "endpoint_files": endpoint_files, "certificate_files": certificate_files, "refused": refused,
})
# tasks/certificates.py appends the operations that install certificates; nginx reloads on them.
certificate_changes = SharedList()
local.include("tasks/certificates.py", data={
    "endpoint_files": endpoint_files, "certificate_files": certificate_files, "certificate_changes": certificate_changes,
    "refused": refused,
})
local.include("tasks/request_packs.py", data={"endpoint_files": endpoint_files, "refused": refused})
# The port is narrowed to the BaRS proxy before nginx ever serves on it.
local.include("tasks/firewall.py")
local.include("tasks/nginx.py", data={
    "endpoint_files": endpoint_files, "certificate_changes": certificate_changes,
    "certificate_files": certificate_files, "refused": refused,
})
# Last: a refused endpoint makes the run fail once everything else on the host is done.
local.include("tasks/refusals.py", data={"refused": refused})
