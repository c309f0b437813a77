"""The firewall table: rendering, reading nft's listing back, and when the operation acts.

``data/nft-1.0.6-list-table.json`` is what Debian 12's nft printed for ``nft -j list table inet
bars_receiver`` after applying ``render_rules(443, SOURCES)``.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
from pathlib import Path

import pytest
from pyinfra.api import FileUploadCommand
from pyinfra.context import ctx_host
from pyinfra.facts.files import Sha256File

from bars_receiver.firewall.nftables import (
    RULES_PATH,
    NftablesTable,
    desired_table,
    firewall_settled,
    filtered_ports,
    listener_firewall,
    render_rules,
    table_state,
)
from bars_receiver.scripts import script_text
from bars_receiver.shipping import SCRIPTS_DIR, SHIPPED, ShippedScripts, script_hash

APPLY_SCRIPT = f"{SCRIPTS_DIR}/{script_hash('firewall_apply')}.sh"

SOURCES = [ipaddress.ip_network(a) for a in ("35.197.254.55", "35.246.55.143", "2001:db8:ba25::/48")]
LISTING = json.loads((Path(__file__).parent / "data" / "nft-1.0.6-list-table.json").read_text())


def networks(*addresses: str):
    return [ipaddress.ip_network(a) for a in addresses]


def block(text: str, start: str) -> list[str]:
    """The lines of one `set`/`chain` block of the rendered file, without the braces."""
    lines = [line.strip() for line in text.splitlines()]
    first = lines.index(f"{start} {{")
    return lines[first + 1:lines.index("}", first)]


# ---- rendering


def test_file_replaces_only_our_table_in_one_go():
    text = render_rules(443, SOURCES)
    statements = [line for line in text.splitlines() if re.match(r"(add |delete |flush |)table\b|flush\b", line)]
    assert statements == [
        "table inet bars_receiver",
        "delete table inet bars_receiver",
        "table inet bars_receiver {",
    ]
    assert "ruleset" not in text


def test_v4_and_v6_sets_hold_the_proxy_addresses():
    text = render_rules(443, networks("35.197.254.55", "35.246.55.143", "2001:db8::7", "2001:db8:1::/64"))
    assert block(text, "set proxy_v4") == [
        "type ipv4_addr", "flags interval", "elements = { 35.197.254.55, 35.246.55.143 }",
    ]
    assert block(text, "set proxy_v6") == [
        "type ipv6_addr", "flags interval", "elements = { 2001:db8::7, 2001:db8:1::/64 }",
    ]


def test_only_the_listener_port_is_filtered():
    chain = block(render_rules(8443, SOURCES), "chain input")
    assert chain == [
        "type filter hook input priority filter; policy accept;",
        "tcp dport 8443 ip saddr @proxy_v4 accept",
        "tcp dport 8443 ip6 saddr @proxy_v6 accept",
        "tcp dport 8443 drop",
    ]


def test_a_family_without_addresses_gets_an_empty_set():
    text = render_rules(443, networks("127.0.0.2"))
    assert block(text, "set proxy_v6") == ["type ipv6_addr", "flags interval"]
    assert "tcp dport 443 ip6 saddr @proxy_v6 accept" in text  # matches nothing: v6 is dropped


def test_overlapping_addresses_are_merged_as_nft_requires():
    text = render_rules(443, networks("10.0.0.0/25", "10.0.0.128/25", "10.0.0.7", "192.0.2.1"))
    assert "elements = { 10.0.0.0/24, 192.0.2.1 }" in text


# ---- comparing the live table with the desired one


def test_the_applied_file_reads_back_as_desired():
    assert table_state(LISTING) == desired_table(443, SOURCES)


def test_handles_do_not_matter():
    renumbered = copy.deepcopy(LISTING)
    for item in renumbered["nftables"]:
        for body in item.values():
            if "handle" in body:
                body["handle"] += 100
    assert table_state(renumbered) == desired_table(443, SOURCES)


def objects(listing, kind):
    return [item[kind] for item in listing["nftables"] if kind in item]


def _extra_rule(listing):
    accept_all = {"family": "inet", "table": "bars_receiver", "chain": "input", "handle": 99, "expr": [{"accept": None}]}
    listing["nftables"].insert(5, {"rule": accept_all})


def _drop_element(listing):
    objects(listing, "set")[0]["elem"].pop()


def _dormant(listing):
    objects(listing, "table")[0]["flags"] = ["dormant"]


def _policy(listing):
    objects(listing, "chain")[0]["policy"] = "drop"


def _rule_order(listing):
    rules = [item for item in listing["nftables"] if "rule" in item]
    others = [item for item in listing["nftables"] if "rule" not in item]
    listing["nftables"] = others + rules[::-1]


def _extra_chain(listing):
    listing["nftables"].append({"chain": {"family": "inet", "table": "bars_receiver", "name": "other", "handle": 9}})


@pytest.mark.parametrize("edit", [_extra_rule, _drop_element, _dormant, _policy, _rule_order, _extra_chain])
def test_hand_edits_make_the_table_differ(edit):
    edited = copy.deepcopy(LISTING)
    edit(edited)
    assert table_state(edited) != desired_table(443, SOURCES)


def test_changed_settings_make_the_table_differ():
    live = table_state(LISTING)
    assert live != desired_table(8443, SOURCES)
    assert live != desired_table(443, SOURCES[:1] + SOURCES[2:])
    assert live != desired_table(443, [*SOURCES, ipaddress.ip_network("2001:db8:ffff::1")])


def test_fact_parses_the_one_line_json():
    assert NftablesTable().process([json.dumps(LISTING)]) == table_state(LISTING)


# ---- the operation: faked facts in, commands out


class FakeHost:
    def __init__(self, live, kept):
        self.facts = {NftablesTable: live, Sha256File: kept}
        self.noops: list[str] = []
        # The host already holds the apply script (bars_receiver/shipping.py): it is run, not sent.
        self.data = {SHIPPED: ShippedScripts(directory_ready=True, present={script_hash("firewall_apply")})}

    def get_fact(self, fact, **kwargs):
        return self.facts[fact]

    def noop(self, description):
        self.noops.append(description)

    def get_temp_filename(self, key=None):
        return "/tmp/pyinfra-candidate"


def run_op(live, kept, port=443, sources=SOURCES):
    fake = FakeHost(live, kept)
    with ctx_host.use(fake):
        commands = list(listener_firewall._inner(port=port, sources=sources))
    return commands, fake.noops


def kept_digest(port=443, sources=SOURCES):
    return hashlib.sha256(render_rules(port, sources).encode()).hexdigest()


def test_matching_table_and_file_do_nothing():
    commands, noops = run_op(desired_table(443, SOURCES), kept_digest())
    assert commands == [] and len(noops) == 1


@pytest.mark.parametrize("live, kept", [
    (None, None),                                      # first run, or the table was deleted by hand
    ("edited", "right"),                               # the live table was edited by hand
    ("right", None),                                   # the boot file is missing
    ("right", "0" * 64),                               # the boot file was edited
])
def test_any_difference_uploads_checks_and_applies(live, kept):
    live = desired_table(443, SOURCES) if live == "right" else ({} if live == "edited" else None)
    kept = kept_digest() if kept == "right" else kept
    commands, noops = run_op(live, kept)
    assert noops == []
    upload, apply = commands
    assert isinstance(upload, FileUploadCommand) and upload.dest == "/tmp/pyinfra-candidate"
    assert upload.src.getvalue() == render_rules(443, SOURCES)
    assert str(apply) == f"sh {APPLY_SCRIPT} /tmp/pyinfra-candidate {RULES_PATH}"
    script = script_text("firewall_apply")
    assert script.index("nft -c -f") < script.index('nft -f "$candidate"') < script.index('mv -f "$staged"')


# ---- listen_port changes: the old and the new port filtered together until nginx has moved


def run_transition(live, transition, port=8443):
    fake = FakeHost(live, None)
    with ctx_host.use(fake):
        commands = list(listener_firewall._inner(port=port, sources=SOURCES, transition=transition))
    return commands, fake.noops


def test_two_ports_render_as_one_anonymous_set_in_every_rule():
    chain = block(render_rules({8443, 443}, networks("127.0.0.2")), "chain input")
    assert chain[1:] == [
        "tcp dport { 443, 8443 } ip saddr @proxy_v4 accept",
        "tcp dport { 443, 8443 } ip6 saddr @proxy_v6 accept",
        "tcp dport { 443, 8443 } drop",
    ]
    assert render_rules({443}, SOURCES) == render_rules(443, SOURCES)  # steady state: as before


def test_filtered_ports_reads_our_drop_rules_only():
    assert filtered_ports(desired_table(443, SOURCES)) == {443}
    assert filtered_ports(desired_table([443, 8443], SOURCES)) == {443, 8443}
    assert filtered_ports(table_state(LISTING)) == {443}
    hand_added = copy.deepcopy(desired_table(443, SOURCES))
    hand_added["rules input"].append({"expr": [{"match": {"op": "==", "left": {"payload": {
        "protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": None}]})
    assert filtered_ports(hand_added) == {443}  # never widened to a hand-added port such as SSH's
    assert filtered_ports(None) == set()


def test_a_port_change_first_widens_to_both_ports():
    commands, _ = run_transition(desired_table(443, SOURCES), "widen")
    upload, apply = commands
    assert upload.src.getvalue() == render_rules([443, 8443], SOURCES)
    assert str(apply) == f"sh {APPLY_SCRIPT} /tmp/pyinfra-candidate {RULES_PATH}"  # no listener check to widen


def test_after_nginx_the_old_port_is_released_only_once_the_host_confirms_it():
    commands, _ = run_transition(desired_table(443, SOURCES), "release")
    upload, apply = commands
    assert upload.src.getvalue() == render_rules(8443, SOURCES)
    assert str(apply) == f"sh {APPLY_SCRIPT} /tmp/pyinfra-candidate {RULES_PATH} 8443 443"
    script = script_text("firewall_apply")
    assert script.index('ss -Htln "sport = :$serving"') < script.index('nft -f "$candidate"')


def test_an_interrupted_change_keeps_both_ports_until_released():
    both = desired_table([443, 8443], SOURCES)
    fake = FakeHost(both, hashlib.sha256(render_rules([443, 8443], SOURCES).encode()).hexdigest())
    with ctx_host.use(fake):
        assert list(listener_firewall._inner(port=8443, sources=SOURCES, transition="widen")) == []
    commands, _ = run_transition(both, "release")
    assert commands[0].src.getvalue() == render_rules(8443, SOURCES)


def test_nothing_to_release_in_steady_state_or_on_a_first_run():
    for live in (desired_table(8443, SOURCES), None):
        commands, noops = run_transition(live, "release")
        assert commands == [] and "no earlier listener port" in noops[0]


# ---- an application on the host's loopback answers the host alone


def test_a_loopback_application_port_is_dropped_unless_it_arrives_on_loopback():
    rules = render_rules(443, SOURCES, [8080, 5000])
    chain = block(rules, "chain input")
    assert chain[-1] == "tcp dport { 5000, 8080 } iifname != lo drop"
    assert chain[-2] == "tcp dport 443 drop"  # the listener's own rules come first, unchanged
    assert render_rules(443, SOURCES) == render_rules(443, SOURCES, [])  # no loopback upstream: as before


def test_the_loopback_rule_reads_back_as_nft_lists_it():
    """nft 1.0.6 lists ``tcp dport 8080 iifname != lo drop`` as these three expressions."""
    listing = copy.deepcopy(LISTING)
    listing["nftables"].append({"rule": {"family": "inet", "table": "bars_receiver", "chain": "input", "handle": 9,
                                         "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
        {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
        {"drop": None}]}})
    assert table_state(listing) == desired_table(443, SOURCES, [8080])
    assert table_state(listing) != desired_table(443, SOURCES)  # a table without it differs, and is re-applied
    assert table_state(listing) != desired_table(443, SOURCES, [8081])
    assert filtered_ports(table_state(listing)) == {443}  # never mistaken for an earlier listener port


@pytest.mark.parametrize("case", ["steady", "edited", "absent", "no file", "port change", "interrupted", "first run"])
@pytest.mark.parametrize("transition", ["widen", "release"])
def test_settled_says_exactly_when_the_operation_would_do_nothing(case, transition):
    """tasks/firewall*.py skip declaring the operation on firewall_settled's word (a snapshot of
    the same facts): it must agree with the operation in every case."""
    right = kept_digest()
    live, kept, port = {
        "steady": (desired_table(443, SOURCES), right, 443),
        "edited": ({}, right, 443),
        "absent": (None, None, 443),
        "no file": (desired_table(443, SOURCES), None, 443),
        "port change": (desired_table(443, SOURCES), right, 8443),
        "interrupted": (desired_table([443, 8443], SOURCES),
                        hashlib.sha256(render_rules([443, 8443], SOURCES).encode()).hexdigest(), 8443),
        "first run": (None, None, 8443),
    }[case]
    fake = FakeHost(live, kept)
    with ctx_host.use(fake):
        commands = list(listener_firewall._inner(port=port, sources=SOURCES, transition=transition))
    assert firewall_settled(live, kept, port, [str(source) for source in SOURCES], None, transition) == (commands == [])
