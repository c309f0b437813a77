"""The firewall's allowed sources (``proxy_addresses``): each one, and all of them together.

Why bounds: the listener's only network-level protection is this list. A list that is each
entry plausible but together huge (two halves of the IPv4 space, a /8, a /16 of IPv6) opens
``listen_port`` to most of the internet, so the union is measured after collapsing overlaps.

- Each entry: an IPv4/IPv6 address or CIDR written as a string, no host bits set, no IPv6 zone
  (``%eth0``: nft has no zones, the scope would be lost silently), not IPv4-mapped
  (``::ffff:0:0/96``) or IPv4-compatible (``::/96``) IPv6 (write the IPv4 address itself), and
  not unspecified, multicast, link-local, reserved (240.0.0.0/4) or the broadcast address: no
  packet from the BaRS proxy comes from those.
- Loopback (127.0.0.0/8, ::1) is allowed: a packet with a loopback source never arrives from
  another machine (Linux drops it as a martian), and the lab's stand-in proxy uses 127.0.0.2.
- The union, per IP version: at most ``MAX_IPV4`` IPv4 addresses (a /16) and ``MAX_IPV6``
  IPv6 addresses (a /48). The BaRS proxy egresses from a handful of single addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_IPV4_PREFIX = 16
MAX_IPV6_PREFIX = 48
MAX_IPV4 = 2 ** (32 - MAX_IPV4_PREFIX)
MAX_IPV6 = 2 ** (128 - MAX_IPV6_PREFIX)
MAX_ENTRIES = 256

_REFUSED = (
    (ipaddress.ip_network("0.0.0.0/8"), "'this network' (0.0.0.0/8), never a real source"),
    (ipaddress.ip_network("169.254.0.0/16"), "IPv4 link-local, never the BaRS proxy"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast, never a TCP source"),
    (ipaddress.ip_network("240.0.0.0/4"), "reserved (and the broadcast address), never a source"),
    (ipaddress.ip_network("::/128"), "the unspecified address, never a source"),
    (ipaddress.ip_network("::ffff:0:0/96"), "IPv4-mapped IPv6; write the IPv4 address or network itself"),
    (ipaddress.ip_network("::/96"), "IPv4-compatible IPv6 (deprecated); write the IPv4 address itself"),
    (ipaddress.ip_network("::ffff:0:0:0/96"), "IPv4-translated IPv6 (SIIT): it stands for IPv4 sources; write those"),
    (ipaddress.ip_network("64:ff9b::/96"), "the NAT64 prefix: it stands for every IPv4 source; write IPv4 addresses"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local NAT64 prefix: it stands for IPv4 sources; write IPv4 addresses"),
    (ipaddress.ip_network("fe80::/10"), "IPv6 link-local, never the BaRS proxy"),
    (ipaddress.ip_network("ff00::/8"), "multicast, never a TCP source"),
)


def parse_network(value: object) -> Network:
    """One entry: an address or CIDR; host bits set in a CIDR are refused, as they usually mean a typo."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an address; write it as a string such as '192.0.2.10' or '192.0.2.0/28'")
    if "%" in value:
        raise ValueError(
            f"{value!r} has an IPv6 zone ('%...'); the firewall matches addresses without zones, and a "
            "link-local address is never the BaRS proxy: give its global address"
        )
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            widened = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4/IPv6 address or CIDR (e.g. '35.197.254.55' or '2001:db8::/64')"
            ) from None
        raise ValueError(f"{value!r} has host bits set; did you mean {str(widened)!r}?") from None
    if network.prefixlen == 0:
        raise ValueError(
            f"{value!r} is every address: the listener would be open to the whole internet; "
            "list the BaRS proxy egress addresses instead"
        )
    for refused, why in _REFUSED:
        if network.version == refused.version and network.overlaps(refused) and not network.is_loopback:
            raise ValueError(f"{value!r} is or overlaps {refused}: {why}")
    return network


def check_union(networks: Iterable[Network]) -> None:
    """ValueError when the collapsed union is wider than the bound for its IP version."""
    networks = list(networks)
    if len(networks) > MAX_ENTRIES:
        raise ValueError(f"{len(networks)} entries; at most {MAX_ENTRIES} (the BaRS proxy uses a handful)")
    for version, limit, prefix in ((4, MAX_IPV4, MAX_IPV4_PREFIX), (6, MAX_IPV6, MAX_IPV6_PREFIX)):
        merged = list(ipaddress.collapse_addresses(n for n in networks if n.version == version))
        total = sum(n.num_addresses for n in merged)
        if total > limit:
            raise ValueError(
                f"together the IPv{version} entries cover {total} addresses ({', '.join(map(str, merged[:4]))}"
                f"{', ...' if len(merged) > 4 else ''}), more than a /{prefix} ({limit}); that opens the "
                "listener to much of the internet. List the BaRS proxy egress addresses only"
            )
