"""Firewall, before nginx: only the environment's BaRS proxy may reach the listener port, and
any port an earlier run filtered stays filtered, because nginx may still be listening there.

The table is checked and applied live in one transaction, and kept in a file that our own unit
loads at boot. The unit runs after nftables.service and follows its restarts and reloads, because
the stock /etc/nftables.conf starts with `flush ruleset`, which would remove our table.
While listen_port changes, the table filters the old and the new port together; the old one is
released only by tasks/firewall_release.py, after nginx is confirmed on the new one.
"""

from pyinfra import host
from pyinfra.operations import systemd

from bars_receiver.firewall.nftables import RULES_PATH, TABLE, UNIT, UNIT_PATH, listener_firewall
from bars_receiver.host_files import file_atomically
from bars_receiver.templates import render

receiver = host.data.receiver
port = receiver.settings.listen_port

listener_firewall(
    name=f"Firewall: only the BaRS proxy may reach port {port}",
    port=port,
    sources=[str(source) for source in receiver.settings.proxy_addresses],
    local_ports=receiver.local_upstream_ports,
)

unit = file_atomically(
    name=f"Boot-time firewall loader {UNIT}",
    path=UNIT_PATH,
    content=render(receiver.project_dir, "bars-receiver-firewall.service.j2", table=TABLE, rules_path=RULES_PATH),
)
systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
systemd.service(name=f"Enable {UNIT}", service=UNIT, running=True, enabled=True)
