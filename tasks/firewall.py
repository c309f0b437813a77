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

from bars_receiver.firewall.nftables import (
    RULES_PATH, TABLE, UNIT, UNIT_PATH, firewall_settled, listener_firewall,
)
from bars_receiver.host_files import file_atomically, file_settled
from bars_receiver.snapshot import file_reads, firewall_reads, service_reads, service_settled, snapshot
from bars_receiver.templates import render

receiver = host.data.receiver
port = receiver.settings.listen_port
sources = [str(source) for source in receiver.settings.proxy_addresses]
now = snapshot()  # declared below only when the host differs, or an earlier operation may change it

table_settled = now.settled(
    lambda live, kept: firewall_settled(live, kept, port, sources, receiver.local_upstream_ports),
    *firewall_reads(),
)
if not table_settled:
    listener_firewall(
        name=f"Firewall: only the BaRS proxy may reach port {port}",
        port=port,
        sources=sources,
        local_ports=receiver.local_upstream_ports,
    )
# tasks/firewall_release.py reads the table after this run's change, if any.
host.data.firewall_changing = not table_settled

unit_text = render(receiver.project_dir, "bars-receiver-firewall.service.j2", table=TABLE, rules_path=RULES_PATH)
unit_settled = now.settled(lambda meta, sha256: file_settled(meta, sha256, unit_text), *file_reads(UNIT_PATH))
if not unit_settled:
    unit = file_atomically(name=f"Boot-time firewall loader {UNIT}", path=UNIT_PATH, content=unit_text)
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
if not unit_settled or not now.settled(lambda running, enabled: service_settled(running, enabled, UNIT),
                                       *service_reads()):
    systemd.service(name=f"Enable {UNIT}", service=UNIT, running=True, enabled=True)
