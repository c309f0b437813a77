"""Structural check of the rendered nftables rules file, on the controller, before it goes live.

Why a second look at what was just rendered: the file is the only thing between the internet and
the listener port. ``nft -c`` only says the file is valid nft; this says it is *our* table and
nothing more: one table ``inet bars_receiver`` declared, deleted and re-created; exactly the two
address sets, holding exactly the validated proxy addresses (collapsed); exactly one chain, the
input hook with policy accept; exactly the accept-from-proxy rules and the drop, on the listener
port(s) only. Any other character, statement, element or port (a value that somehow carried a
quote, ``;``, a brace or another address) is refused with what differs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from types import MappingProxyType

from bars_receiver.inventory.addresses import Network

FAMILY, TABLE = "inet", "bars_receiver"
SETS = MappingProxyType({"proxy_v4": ("ipv4_addr", "ip", 4), "proxy_v6": ("ipv6_addr", "ip6", 6)})
# Every character the file may hold: nft keywords, addresses, numbers, punctuation of its syntax.
_ALLOWED = re.compile(r"[A-Za-z0-9_.:/@,;=!{}\- \t\n]*")


class RulesMismatch(ValueError):
    """The rendered rules are not exactly the table the settings ask for."""


def _statements(text: str) -> list:
    """Parse the subset of nft syntax we render into nested lists: a statement is a string, a
    block is ``(header, [statements])``."""
    lines = [line.split("#", 1)[0] if not line.lstrip().startswith("#") else "" for line in text.splitlines()]
    body = "\n".join(lines)
    if not _ALLOWED.fullmatch(body):
        bad = sorted({c for c in body if not _ALLOWED.fullmatch(c)})
        raise RulesMismatch(f"the rules hold characters nft rules here never need: {bad!r}")
    # An anonymous port set in a rule ("dport { 443, 8443 }") is part of the rule, not a block.
    body = re.sub(r"dport \{([0-9 ,]*)\}", lambda m: "dport " + m.group(1).replace(" ", ""), body)
    tokens = re.findall(r"\{|\}|[^{}\n;]+|\n|;", body)
    stack: list[tuple[str, list]] = [("", [])]
    current = ""
    for token in tokens:
        if token == "{":
            stack.append((current.strip(), []))
            current = ""
        elif token == "}":
            if current.strip():
                stack[-1][1].append(current.strip())
            current = ""
            if len(stack) == 1:
                raise RulesMismatch("a '}' closes nothing")
            header, inner = stack.pop()
            stack[-1][1].append((header, inner))
        elif token in ("\n", ";"):
            if current.strip():
                stack[-1][1].append(current.strip())
            current = ""
        else:
            current += token
    if len(stack) != 1:
        raise RulesMismatch("a '{' is never closed")
    if current.strip():
        stack[0][1].append(current.strip())
    return stack[0][1]


def _ports(ports: int | Iterable[int]) -> set[int]:
    ports = {ports} if isinstance(ports, int) else set(ports)
    if not ports or any(isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535 for p in ports):
        raise RulesMismatch(f"listener port(s) {sorted(ports)!r} are not 1-65535")
    return ports


def _dport(text: str) -> set[int]:
    """The port match as rendered: ``443`` or ``{ 443, 8443 }`` (the braces arrive as a block)."""
    return {int(p) for p in text.split(",")} if re.fullmatch(r"[0-9]+(,[0-9]+)*", text.replace(" ", "")) else set()


def verify_rules(text: str, ports: int | Iterable[int], sources: Iterable[Network],
                 local_ports: Iterable[int] = ()) -> None:
    """Raise ``RulesMismatch`` unless ``text`` is exactly our table for ``ports`` and ``sources``,
    with ``local_ports`` (loopback applications) dropped unless sent by the host itself."""
    ports = _ports(ports)
    local_ports = set(local_ports)
    if local_ports:
        _ports(local_ports)
    wanted = {version: set(ipaddress.collapse_addresses(n for n in sources if n.version == version))
              for version in (4, 6)}
    top = _statements(text)
    name = f"{FAMILY} {TABLE}"
    if len(top) != 3 or top[0] != f"table {name}" or top[1] != f"delete table {name}" \
            or not isinstance(top[2], tuple) or top[2][0] != f"table {name}":
        raise RulesMismatch(f"the file must declare, delete and re-create table {name} and nothing else")
    blocks = {header: inner for header, inner in (s for s in top[2][1] if isinstance(s, tuple))}
    if len(blocks) != len(top[2][1]) or set(blocks) != {*(f"set {s}" for s in SETS), "chain input"}:
        raise RulesMismatch(f"table {name} must hold the sets {', '.join(SETS)} and the chain input, nothing else "
                            f"(found {[s[0] if isinstance(s, tuple) else s for s in top[2][1]]})")
    for set_name, (type_, _, version) in SETS.items():
        inner = blocks[f"set {set_name}"]
        head = [s for s in inner if isinstance(s, str) and s != "elements ="]
        if head != [f"type {type_}", "flags interval"]:
            raise RulesMismatch(f"set {set_name} must be 'type {type_}' with 'flags interval' only (found {head})")
        lists = [s[1] for s in inner if isinstance(s, tuple)]
        if len(lists) > 1 or [s for s in inner if isinstance(s, tuple) and s[0] != "elements ="]:
            raise RulesMismatch(f"set {set_name} has more than one element list")
        found: set[Network] = set()
        for item in (",".join(lists[0]).split(",") if lists else []):
            if not item.strip():
                continue
            try:
                network = ipaddress.ip_network(item.strip())
            except ValueError:
                raise RulesMismatch(f"set {set_name} holds {item.strip()!r}, which is not an address") from None
            if network.version != version:
                raise RulesMismatch(f"set {set_name} holds {network}, an IPv{network.version} address")
            found.add(network)
        if found != wanted[version]:
            raise RulesMismatch(
                f"set {set_name} holds {sorted(map(str, found))} but the validated proxy_addresses are "
                f"{sorted(map(str, wanted[version]))}"
            )
    chain = blocks["chain input"]
    rules = []
    for statement in chain:
        rules.append(statement if isinstance(statement, str) else f"{statement[0]} {{{','.join(statement[1])}}}")
    expected_head = ["type filter hook input priority filter", "policy accept"]
    if rules[:2] != expected_head:
        raise RulesMismatch(f"chain input must start 'type filter hook input priority filter; policy accept;' "
                            f"(found {rules[:2]})")
    shapes = [(rf"tcp dport (.+?) {match} saddr @{set_name} accept", set_name, ports)
              for set_name, (_, match, _) in SETS.items()]
    shapes.append((r"tcp dport (.+?) drop", "drop", ports))
    if local_ports:
        shapes.append((r"tcp dport (.+?) iifname != lo drop", "loopback-only", local_ports))
    body = rules[2:]
    if len(body) != len(shapes):
        raise RulesMismatch(f"chain input must hold exactly {len(shapes)} rules (accept from each set, then drop"
                            f"{', then the loopback-only application ports' if local_ports else ''}); "
                            f"found {len(body)}: {body}")
    for rule, (shape, what, wanted_ports) in zip(body, shapes):
        matched = re.fullmatch(shape, rule)
        if not matched or _dport(matched.group(1)) != wanted_ports:
            raise RulesMismatch(f"rule {rule!r} is not the expected {what} rule for port(s) {sorted(wanted_ports)}")
