"""Firewall, after nginx: release a port an earlier listen_port filtered, now that nginx has
moved to the new one (the host confirms it listens there and nothing listens on the old one
before the table narrows). Until then strangers could reach neither port."""

from pyinfra import host

from bars_receiver.firewall.nftables import firewall_settled, listener_firewall
from bars_receiver.snapshot import firewall_reads, snapshot

receiver = host.data.receiver
port = receiver.settings.listen_port
sources = [str(source) for source in receiver.settings.proxy_addresses]

# Declared when tasks/firewall.py changes the table this run, or the table already filters an
# earlier port (a run stopped between the two steps): the operation then reads the table itself.
if host.data.get("firewall_changing", True) or not snapshot().settled(
    lambda live, kept: firewall_settled(live, kept, port, sources, receiver.local_upstream_ports, "release"),
    *firewall_reads(),
):
    listener_firewall(
        name=f"Firewall: release earlier listener ports, nginx is on port {port}",
        port=port,
        sources=sources,
        local_ports=receiver.local_upstream_ports,
        transition="release",
    )
