"""verify_rules: the rendered nft file is exactly our table, or the run stops before it goes live."""

from __future__ import annotations

import ipaddress

import pytest

from bars_receiver.firewall.nftables import render_rules
from bars_receiver.firewall.rules_check import RulesMismatch, verify_rules

SOURCES = [ipaddress.ip_network(n) for n in ("127.0.0.2", "192.0.2.0/28", "2001:db8::/64")]
RULES = render_rules(443, SOURCES)


def test_rendered_rules_verify():
    verify_rules(RULES, 443, SOURCES)


def test_a_port_union_verifies():
    verify_rules(RULES.replace("dport 443", "dport { 443, 8443 }"), [443, 8443], SOURCES)


@pytest.mark.parametrize("change, words", [
    (lambda r: r.replace("127.0.0.2", "0.0.0.0/0"), "validated proxy_addresses"),
    (lambda r: r.replace(", 192.0.2.0/28", ""), "validated proxy_addresses"),
    (lambda r: r.replace("2001:db8::/64", "192.0.2.99"), "IPv4 address"),
    (lambda r: r.replace("tcp dport 443 drop", "tcp dport 443 accept"), "expected drop rule"),
    (lambda r: r.replace("tcp dport 443 drop", "tcp dport 443 drop\n\t\ttcp dport 80 accept"), "exactly 3 rules"),
    (lambda r: r.replace("policy accept", "policy drop"), "policy accept"),
    (lambda r: r.replace("\tchain input {", "\tchain output {\n\t}\n\tchain input {"), "nothing else"),
    (lambda r: r + "table ip nat {\n}\n", "nothing else"),
    (lambda r: r.replace("delete table", "flush ruleset\ndelete table"), "nothing else"),
    (lambda r: r.replace("flags interval", "flags interval\n\t\tauto-merge", 1), "flags interval' only"),
    (lambda r: r.replace("127.0.0.2", '"127.0.0.2"'), "characters"),
    (lambda r: r.replace("127.0.0.2", "$addr"), "characters"),
    (lambda r: r.replace("}\n}", "}"), "never closed"),
    (lambda r: r.replace("tcp dport 443 drop", "tcp dport 443 drop }"), "closes nothing"),
])
def test_anything_else_is_refused(change, words):
    with pytest.raises(RulesMismatch) as raised:
        verify_rules(change(RULES), 443, SOURCES)
    assert words in str(raised.value)


@pytest.mark.parametrize("port", [0, 65536, True, "443"])
def test_bad_ports_are_refused(port):
    with pytest.raises(RulesMismatch):
        verify_rules(RULES, port, SOURCES)


def test_the_loopback_application_rule_verifies_with_its_ports_only():
    rules = render_rules(443, SOURCES, [8080])
    verify_rules(rules, 443, SOURCES, [8080])
    with pytest.raises(RulesMismatch, match="loopback-only rule for port"):
        verify_rules(rules, 443, SOURCES, [9090])
    with pytest.raises(RulesMismatch, match="exactly 3 rules"):
        verify_rules(rules, 443, SOURCES)  # a rule the settings do not ask for
    with pytest.raises(RulesMismatch):
        verify_rules(rules.replace("iifname != lo drop", "accept"), 443, SOURCES, [8080])
