"""Firewall, after nginx: release a port an earlier listen_port filtered, now that nginx has
moved to the new one (the host confirms it listens there and nothing listens on the old one
before the table narrows). Until then strangers could reach neither port."""

from pyinfra import host

from bars_receiver.firewall.nftables import listener_firewall

receiver = host.data.receiver
port = receiver.settings.listen_port

listener_firewall(
    name=f"Firewall: release earlier listener ports, nginx is on port {port}",
    port=port,
    sources=[str(source) for source in receiver.settings.proxy_addresses],
    local_ports=receiver.local_upstream_ports,
    transition="release",
)
