"""Property tests: arbitrary input either is refused by the grammar with a ValueError, or comes out
in a form that cannot change the structure of what it is rendered into.

- nft: any proxy_addresses and port that pass validation render a rules file that verify_rules
  accepts, whose sets hold exactly the validated addresses; any quote, backslash, '$' or control
  character slipped into the rendered file is refused.
- nginx-bound strings (upstream, receiver_path, client DNs): what passes holds none of the
  characters that end or open an nginx token or variable unescaped.
"""

from __future__ import annotations

import ipaddress
import re

from hypothesis import HealthCheck, assume, given, settings, strategies as st

from bars_receiver.firewall.nftables import render_rules
from bars_receiver.firewall.rules_check import RulesMismatch, verify_rules
from bars_receiver.inventory import grammar
from bars_receiver.inventory.addresses import check_union, parse_network
from bars_receiver.inventory.dn import normalise_dn

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


def _network_text(draw_version, address, prefix):
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network) if draw_version else str(network.network_address)


ipv4 = st.builds(lambda a, p, full: _network_text(full, ipaddress.IPv4Address(a), p),
                 st.integers(1 << 24, (224 << 24) - 1), st.integers(20, 32), st.booleans())
ipv6 = st.builds(lambda a, p, full: _network_text(full, ipaddress.IPv6Address(a), p),
                 st.integers(0x2 << 125, (0x4 << 125) - 1), st.integers(52, 128), st.booleans())
# Unicast ranges (Hypothesis favours 0 and the ends of a range, which are refused ranges), plus the lab's.
entry = st.one_of(ipv4, ipv6, st.sampled_from(["127.0.0.2", "::1"]))


def validated(entries: list[str]):
    networks = []
    for text in entries:
        try:
            networks.append(parse_network(text))
        except ValueError:
            return None
    try:
        check_union(networks)
    except ValueError:
        return None
    return networks


@SETTINGS
@given(st.lists(entry, min_size=1, max_size=8), st.integers(1, 65535))
def test_any_validated_addresses_render_exactly_their_table(entries, port):
    networks = validated(entries)
    assume(networks)
    rules = render_rules(port, networks)
    verify_rules(rules, port, networks)
    elements = set(re.findall(r"elements = \{ ([^}]*) \}", rules))
    listed = {ipaddress.ip_network(e) for line in elements for e in line.split(", ")}
    assert listed == set(ipaddress.collapse_addresses([n for n in networks if n.version == 4])) | set(
        ipaddress.collapse_addresses([n for n in networks if n.version == 6]))
    assert rules.count("chain ") == 1 and rules.count(f"tcp dport {port} ") == 3


@SETTINGS
@given(st.one_of(st.text(max_size=40), st.builds(lambda a, p: f"{a}/{p}", ipv4 | ipv6, st.integers(-1, 129))))
def test_any_text_is_refused_or_a_plain_network(text):
    try:
        network = parse_network(text)
    except ValueError:
        return
    assert re.fullmatch(r"[0-9a-f.:/]+", str(network)) and network.prefixlen > 0
    verify_rules(render_rules(443, [network]), 443, [network])


@SETTINGS
@given(st.lists(ipv4, min_size=1, max_size=4), st.integers(1, 65535), st.sampled_from(list('"\\$`\'\x00\x1b')),
       st.integers(0, 10_000))
def test_a_foreign_character_in_the_rules_is_refused(entries, port, char, where):
    networks = validated(entries)
    assume(networks)
    rules = render_rules(port, networks)
    body_start = rules.index("table ")  # after the comment lines
    at = body_start + where % (len(rules) - body_start)
    try:
        verify_rules(rules[:at] + char + rules[at:], port, networks)
    except RulesMismatch:
        return
    raise AssertionError(f"{char!r} at {at} was not refused")


@SETTINGS
@given(st.lists(ipv4, min_size=1, max_size=4), st.integers(1, 65535), st.integers(1, 65535))
def test_rules_for_another_port_are_refused(entries, port, other):
    networks = validated(entries)
    assume(networks and port != other)
    try:
        verify_rules(render_rules(other, networks), port, networks)
    except RulesMismatch:
        return
    raise AssertionError("rules for another port were accepted")


# Characters that would end, open or substitute inside an nginx token if rendered unescaped.
NGINX_SPECIAL = set("\"';{}$#\\ \t\r\n\x00")

url_like = st.builds(lambda scheme, host, port, tail: f"{scheme}://{host}{port}{tail}",
                     st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
                     st.one_of(st.sampled_from(["127.0.0.1", "[::1]", "app.example", "a"]), st.text(max_size=12)),
                     st.one_of(st.just(""), st.builds(lambda p: f":{p}", st.one_of(st.integers(-1, 70000), st.text(max_size=6)))),
                     st.one_of(st.just(""), st.just("/"), st.text(max_size=8)))


@SETTINGS
@given(st.one_of(url_like, st.text(max_size=40)))
def test_upstream_either_refused_or_plain(value):
    try:
        result = grammar.upstream(value)
    except ValueError:
        return
    assert not NGINX_SPECIAL & set(result)
    assert re.fullmatch(r"https?://(\[[0-9a-f:]+\]|[a-z0-9.-]+)(:[1-9][0-9]{0,4})?", result)
    assert grammar.upstream(result) == result


@SETTINGS
@given(st.one_of(st.text(max_size=30), st.lists(st.sampled_from(["a", "..", ".", "", "x~y", "%2e", "b c", "$"]),
                                                 max_size=4).map(lambda parts: "/" + "/".join(parts) + "/")))
def test_receiver_path_either_refused_or_unreserved(value):
    try:
        result = grammar.receiver_path(value)
    except ValueError:
        return
    assert re.fullmatch(r"/([A-Za-z0-9._~-]+/)*", result) and "/../" not in result and "/./" not in result


dn_part = st.builds(lambda t, v: f"{t}={v}", st.sampled_from(["CN", "OU", "O", "cn", "C", "X", ""]),
                    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=10))


@SETTINGS
@given(st.one_of(st.lists(dn_part, min_size=1, max_size=4).map(",".join),
                 st.lists(dn_part, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)),
                 st.text(max_size=30)))
def test_dn_either_refused_or_in_nginx_form(value):
    try:
        result = normalise_dn(value)
    except ValueError:
        return
    assert not result.startswith("~")
    assert not set(result) & set("${}\t\r\n\x00`")
    assert all(c.isascii() and c.isprintable() for c in result)
    assert not result.endswith("\\") or result.endswith("\\\\")
    assert normalise_dn(result) == result  # the normal form is a fixed point


@SETTINGS
@given(st.text(max_size=40))
def test_deploy_dir_either_refused_or_plain(value):
    try:
        result = grammar.deploy_dir(value)
    except ValueError:
        return
    assert re.fullmatch(r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+", result) and "/../" not in result + "/"
    assert "bars" in result.rsplit("/", 1)[1].lower()


# --- the whole inventory: any text is a working inventory or an InventoryError, never a traceback ----

GOOD_YAML = """environment: int
settings:
  key_size: 2048
  listen_port: 443
  client_dn_allowlist: ["CN=x,OU=Devices,O=nhs"]
hosts:
  rx-1:
    ssh_hostname: 10.0.0.5
    endpoints:
      - ods: RX809
        supplier: Acme
        upstream: http://127.0.0.1:5000
        receiver_path: /bars/
"""


def _mutated(draw_ops):
    text = GOOD_YAML
    for at, insert, cut in draw_ops:
        at %= len(text) + 1
        text = text[:at] + insert + text[at + cut:]
    return text


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.text(max_size=6), st.integers(0, 3)), min_size=1, max_size=4))
def test_any_inventory_text_is_loaded_or_refused_with_a_message(ops):
    import tempfile
    from pathlib import Path
    import shutil

    from bars_receiver.inventory.errors import InventoryError
    from bars_receiver.inventory.loader import load_hosts

    text = _mutated(ops)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        shutil.copytree(Path(__file__).resolve().parents[2] / "group_data", root / "group_data")
        (root / "inventories").mkdir()
        path = root / "inventories" / "int.yml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            hosts = load_hosts(path)
        except InventoryError as error:
            assert all(str(problem).startswith(("inventories/int.yml", "group_data/")) for problem in error.problems)
            return
    for _, data in hosts:
        receiver = data["receiver"]
        for endpoint in receiver.endpoints:
            assert grammar.upstream(endpoint.upstream) == endpoint.upstream
            assert grammar.receiver_path(endpoint.receiver_path) == endpoint.receiver_path
        assert all(normalise_dn(dn) == dn for dn in receiver.settings.client_dn_allowlist)
