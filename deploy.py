"""Bring BaRS receiver endpoints on line: pyinfra -y inventories/<env>.py deploy.py

The inventory was validated as it loaded; here each host's state is read once, then the tasks
run in order.
"""

from pyinfra import host, local
from pyinfra.api import DeployError

from bars_receiver.facts import EndpointFiles

receiver = host.data.get("receiver")
if receiver is None:
    raise DeployError(f"{host.name} has no receiver settings: run with an inventory from inventories/")

endpoint_files = host.get_fact(EndpointFiles, base_dir=receiver.settings.base_dir)

local.include("tasks/packages.py")
local.include("tasks/keys.py", data={"endpoint_files": endpoint_files})
local.include("tasks/request_packs.py", data={"endpoint_files": endpoint_files})
local.include("tasks/firewall.py")
