"""The receiver's firewall: an nftables table of our own that lets only the BaRS proxy reach the
listener port and drops everything else sent to that port.

Why a table of our own (``inet bars_receiver``): nftables runs every table's input chain, so ours
can narrow access to one port without reading, reordering or rewriting anyone else's rules, and
one ``delete table`` removes all of it. Nothing but the listener port, and the port of an
application nginx proxies to on the host's loopback (kept to the host itself, so an application
bound wider than loopback cannot be reached around TLS-MA), is matched, so SSH (and the deploy's
own connection) is never filtered here.

Why one file that declares, deletes and re-creates the table: ``nft -f`` applies a file as one
transaction, so the host goes from the old table to the new one with no moment in between, and a
file nft rejects changes nothing. The same file, kept at ``RULES_PATH``, is what our systemd unit
loads at boot.

pyinfra has no nftables operation: ``NftablesTable`` reads the live table and ``listener_firewall``
re-applies it only when it differs from what the settings ask for (``firewall_settled`` says so
from a snapshot, so an unchanged run does not declare it).

Why this module is long: the rules text, the table read back from nft and the operation's
decision must agree on one representation of the table; split apart, each half would import the
other's private helpers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Collection, Iterable, Iterator
from io import StringIO
from types import MappingProxyType
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.api.command import PyinfraCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.facts.files import Sha256File

from bars_receiver.diffs import log_diff
from bars_receiver.firewall.rules_check import RulesMismatch, verify_rules
from bars_receiver.inventory.settings import Network, parse_network
from bars_receiver.scripts import run_script
from bars_receiver.shipping import host_script

FAMILY = "inet"
TABLE = "bars_receiver"
RULES_PATH = "/etc/nftables.d/bars-receiver.nft"
UNIT = "bars-receiver-firewall.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"

SETS = MappingProxyType({4: ("proxy_v4", "ipv4_addr", "ip"), 6: ("proxy_v6", "ipv6_addr", "ip6")})


def split_sources(sources: Iterable[Network]) -> dict[int, list[Network]]:
    """Sources per IP version, overlaps merged: nft refuses overlapping elements in an interval
    set ("conflicting intervals specified"), and merged networks are what nft lists back."""
    return {
        version: list(ipaddress.collapse_addresses(n for n in sources if n.version == version))
        for version in SETS
    }


def _element(network: Network) -> str:
    text = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
    # Defence in depth: only an address as ipaddress itself spells it reaches the file.
    if not isinstance(network, Network) or not re.fullmatch(r"[0-9a-f.:/]+", text) \
            or ipaddress.ip_network(text) != network:
        raise ValueError(f"{network!r} is not a plain address or network")
    return text


def port_list(port: int | Collection[int]) -> list[int]:
    """The filtered ports, sorted: one in steady state; the old and the new one while listen_port
    changes (see tasks/firewall.py), so neither is ever open to strangers."""
    return [port] if isinstance(port, int) else sorted(set(port))


def _dport(ports: list[int]) -> str:
    return str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, ports)) + " }"


LOCAL_ONLY = "iifname != lo"  # arrived on loopback: sent by the host itself


def render_rules(port: int | Collection[int], sources: Iterable[Network], local_ports: Collection[int] = ()) -> str:
    """The rules file: declare, delete and re-create our table, so one ``nft -f`` replaces it
    atomically whether or not it exists. It never names another table or flushes the ruleset.
    ``local_ports`` (the applications nginx proxies to on loopback) are kept to the host itself."""
    by_version = split_sources(sources)
    ports = port_list(port)
    dport = _dport(ports)
    lines = [
        "#!/usr/sbin/nft -f",
        "# Managed by the BaRS receiver deploy (pyinfra): edits are overwritten on the next run.",
        f"# Only the BaRS proxy may reach TCP port {dport}"
        + (f"; port {_dport(port_list(local_ports))} (the application) only this host itself" if local_ports else "")
        + "; nothing else on this host is filtered here.",
        f"table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
    ]
    for version, (name, type_, _) in SETS.items():
        lines += [f"\tset {name} {{", f"\t\ttype {type_}", "\t\tflags interval"]
        if by_version[version]:  # nft has no syntax for an empty element list
            lines.append(f"\t\telements = {{ {', '.join(_element(n) for n in by_version[version])} }}")
        lines += ["\t}", ""]
    lines += [
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        *(f"\t\ttcp dport {dport} {match} saddr @{name} accept" for name, _, match in SETS.values()),
        f"\t\ttcp dport {dport} drop",
        *([f"\t\ttcp dport {_dport(port_list(local_ports))} {LOCAL_ONLY} drop"] if local_ports else []),
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _match(protocol: str, field: str, right: Any) -> dict:
    return {"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}}


def _port_match(ports: list[int]) -> dict:
    return _match("tcp", "dport", ports[0] if len(ports) == 1 else {"set": ports})


def desired_table(port: int | Collection[int], sources: Iterable[Network],
                  local_ports: Collection[int] = ()) -> dict[str, Any]:
    """What ``table_state`` returns once ``render_rules(port, sources)`` is applied: the same
    objects in the shape nft's JSON listing gives them (libnftables-json(5)); several ports are
    an anonymous set, listed sorted."""
    by_version = split_sources(sources)
    ports = port_list(port)
    dport = _port_match(ports)
    state: dict[str, Any] = {f"table {TABLE}": {"flags": []}}
    for version, (name, type_, _) in SETS.items():
        elements = sorted(str(network) for network in by_version[version])
        state[f"set {name}"] = {"type": type_, "flags": ["interval"], "elem": elements}
    state["chain input"] = {"type": "filter", "hook": "input", "prio": 0, "policy": "accept", "flags": []}
    state["rules input"] = [
        *({"expr": [dport, _match(match, "saddr", f"@{name}"), {"accept": None}]} for name, _, match in SETS.values()),
        {"expr": [dport, {"drop": None}]},
    ]
    if local_ports:
        not_loopback = {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}
        state["rules input"].append({"expr": [_port_match(port_list(local_ports)), not_loopback, {"drop": None}]})
    return state


def filtered_ports(state: dict[str, Any] | None) -> set[int]:
    """The ports a live table (as ``table_state`` gives it) filters: what nginx may still be
    listening on from an earlier run, kept filtered until it has moved."""
    ports: set[int] = set()
    for rule in (state or {}).get("rules input", []):
        expr = rule.get("expr", [])
        # Only the shape we render, "tcp dport P drop": a hand-added rule never widens the filter.
        if len(expr) != 2 or expr[1] != {"drop": None} or not isinstance(expr[0], dict):
            continue
        match = expr[0].get("match", {})
        if match.get("op") != "==" or match.get("left") != {"payload": {"protocol": "tcp", "field": "dport"}}:
            continue
        right = match.get("right")
        if isinstance(right, int):
            ports.add(right)
        elif isinstance(right, dict) and isinstance(right.get("set"), list):
            ports.update(p for p in right["set"] if isinstance(p, int))
    return ports


def _canonical_element(element: Any) -> str:
    if isinstance(element, str):
        return str(ipaddress.ip_network(element))
    if isinstance(element, dict) and "prefix" in element:
        return str(ipaddress.ip_network(f"{element['prefix']['addr']}/{element['prefix']['len']}"))
    return json.dumps(element, sort_keys=True)  # a range or other form: never what we render


def table_state(listing: dict[str, Any]) -> dict[str, Any]:
    """Reduce ``nft -j list table`` output to what decides the table's behaviour.

    Handles are dropped (they change every time the table is re-created, e.g. at boot); set
    elements are sorted; rules keep their order per chain. Every other attribute is kept, so a
    hand edit of any kind (an extra rule, a dormant flag, a changed policy) makes it differ.
    """
    state: dict[str, Any] = {}
    for item in listing.get("nftables", []):
        (kind, body), = item.items()
        if kind == "metainfo":
            continue
        body = {key: value for key, value in body.items() if key not in ("family", "table", "handle")}
        if kind == "rule":
            state.setdefault(f"rules {body.pop('chain')}", []).append(body)
            continue
        flags = body.get("flags", [])  # absent, one string or a list, depending on nft's version
        body["flags"] = sorted([flags] if isinstance(flags, str) else flags)
        if kind == "set":
            body["elem"] = sorted(_canonical_element(element) for element in body.get("elem", []))
        state[f"{kind} {body.pop('name')}"] = body
    return state


class NftablesTable(FactBase):
    """
    Returns one live nftables table reduced by ``table_state``, or None when it does not exist
    (or nft is not installed yet).

    .. code:: python

        {
            "table bars_receiver": {"flags": []},
            "set proxy_v4": {"type": "ipv4_addr", "flags": ["interval"], "elem": ["35.197.254.55/32"]},
            "chain input": {"type": "filter", "hook": "input", "prio": 0, "policy": "accept", "flags": []},
            "rules input": [{"expr": [...]}, ...],
        }
    """

    def requires_command(self, family: str, table: str) -> str:
        return "nft"

    def command(self, family: str, table: str) -> StringCommand:
        return run_script("nft_table", family, table)

    def process(self, output: list[str]) -> dict[str, Any]:
        return table_state(json.loads("\n".join(output)))


def apply_commands(candidate: str, path: str, serving: int | None = None,
                   released: Iterable[int] = ()) -> Iterator[PyinfraCommand]:
    """files/scripts/firewall_apply.sh: check ``candidate`` with ``nft -c``, apply it with one
    ``nft -f``, then keep it at ``path``; with ``serving``, first confirm a listener on that port
    and none left on ``released``."""
    args: list[object] = [candidate, path]
    if serving is not None:
        args += [serving, " ".join(map(str, sorted(released)))]
    yield from host_script("firewall_apply", *args)


def _rules(live: dict | None, port: int, sources: list, local_ports: list[int] | None,
           transition: str) -> tuple[set[int], list[int], str]:
    """The ports to filter, the loopback-only ports and the rules text for a transition."""
    ports = {port} | (filtered_ports(live) - {port}) if transition == "widen" else {port}
    local_ports = sorted(set(local_ports or ()))
    return ports, local_ports, render_rules(port if ports == {port} else ports, sources, local_ports)


def _in_place(live: dict | None, kept: str | None, port: int, ports: set[int], sources: list,
              local_ports: list[int], rules: str) -> bool:
    return live == desired_table(port_list(port if ports == {port} else ports), sources, local_ports) \
        and kept == hashlib.sha256(rules.encode()).hexdigest()


def firewall_settled(live: dict | None, kept: str | None, port: int, sources: list[str],
                     local_ports: list[int] | None = None, transition: str = "widen") -> bool:
    """``listener_firewall`` would do nothing, given the NftablesTable fact ``live`` and the kept
    rules file's Sha256File fact ``kept`` (tasks skip declaring it: bars_receiver/snapshot.py)."""
    if transition == "release" and not filtered_ports(live) - {port}:
        return True
    networks = [parse_network(str(source)) for source in sources]
    ports, local_ports, rules = _rules(live, port, networks, local_ports, transition)
    return _in_place(live, kept, port, ports, networks, local_ports, rules)


@operation()
def listener_firewall(port: int, sources: list[str], path: str = RULES_PATH, transition: str = "widen",
                      local_ports: list[int] | None = None):
    """
    Let only ``sources`` reach TCP ``port``: the nftables table ``inet bars_receiver``, live and
    kept at ``path`` for boot.

    + port: the TLS-MA listener port; TCP to it from anywhere else is dropped
    + sources: IPv4/IPv6 addresses or CIDRs allowed to reach it (the BaRS proxy egress addresses),
      as strings such as ``"35.197.254.55"`` or ``"2001:db8::/64"``; one that is not is refused
    + path: where the rules file is kept for the boot-time unit
    + transition: ``widen`` (before nginx moves): filter ``port`` and every port the live table
      already filters; ``release`` (after nginx is confirmed on ``port``): filter ``port`` alone,
      once the host shows nginx listening there and nothing on the released ports
    + local_ports: ports of applications on the host's loopback that nginx proxies to; TCP to them
      is dropped unless it arrives on loopback (sent by the host itself)

    **Example:**

    .. code:: python

        listener_firewall(name="Only the BaRS proxy may reach port 443", port=443,
                          sources=["35.197.254.55", "35.246.55.143"])
    """
    try:
        sources = [parse_network(str(source)) for source in sources]
    except ValueError as error:
        raise OperationError(f"listener_firewall: sources: {error}") from None
    live = host.get_fact(NftablesTable, family=FAMILY, table=TABLE)
    old = filtered_ports(live) - {port}
    if transition == "release" and not old:
        host.noop(f"no earlier listener port to release; port {port} is filtered by the step before nginx")
        return
    ports, local_ports, rules = _rules(live, port, sources, local_ports, transition)
    try:
        verify_rules(rules, ports, sources, local_ports)  # what goes live is exactly the validated table
    except RulesMismatch as error:
        raise OperationError(f"the rendered firewall rules were not applied: {error}") from None
    if _in_place(live, host.get_fact(Sha256File, path=path), port, ports, sources, local_ports, rules):
        host.noop(f"nftables table {FAMILY} {TABLE} and {path} already allow only the proxy to port {_dport(port_list(ports))}")
        return
    log_diff(path, rules)
    candidate = host.get_temp_filename()  # random: nobody can plant a link at the name in /tmp beforehand
    yield FileUploadCommand(StringIO(rules), candidate)
    if transition == "release" and old:
        yield from apply_commands(candidate, path, serving=port, released=old)
    else:
        yield from apply_commands(candidate, path)
