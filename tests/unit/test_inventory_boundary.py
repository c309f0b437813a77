"""The inventory boundary as a whole: YAML 1.2 types, bounds on the file, per-environment facts,
one machine once, and rewritten values reaching the settings object."""

from __future__ import annotations

import copy

import pytest
import yaml

from bars_receiver.inventory.errors import MAX_SHOWN, InventoryError
from bars_receiver.inventory.loader import load_hosts
from bars_receiver.inventory.yaml12 import MAX_BYTES

from .test_inventory import GOOD, project  # noqa: F401  (fixture)


def write_text(project, text: str | bytes, name: str = "int"):
    path = project / "inventories" / f"{name}.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refused(project, text) -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load_hosts(write_text(project, text))
    return [str(problem) for problem in raised.value.problems]


GOOD_TEXT = yaml.safe_dump(GOOD, sort_keys=False)


@pytest.mark.parametrize("line, field, words", [
    ("listen_port: 0443", "settings.listen_port", "write 443 without quotes or leading zeros"),
    ("listen_port: on", "settings.listen_port", "YAML 1.2"),
    ("listen_port: '8443'", "settings.listen_port", "must be a whole number, but the YAML gives text"),
    ("listen_port: 443.0", "settings.listen_port", "decimal number"),
    ("listen_port: true", "settings.listen_port", "a boolean"),
    ("renewal_days: yes", "settings.renewal_days", "YAML 1.2"),
    ("client_dn_allowlist: CN=x", "settings.client_dn_allowlist", "must be a list, but the YAML gives text"),
    ("upstream_timeout: 1:30", "settings.upstream_timeout", "text"),
    ("tls_ciphers: 2026-01-01", "settings.tls_ciphers", "not one of the allowed"),
])
def test_yaml_12_types_are_never_coerced(project, line, field, words):
    found = refused(project, GOOD_TEXT.replace("settings:\n", f"settings:\n  {line}\n"))
    assert any(p.startswith(f"inventories/int.yml: {field}: ") and words in p for p in found), found


@pytest.mark.parametrize("text, words", [
    (b"environment: int\nsettings: {key_size: 2048}\nhosts: {a\xff: {}}\n", "is not UTF-8: byte 0xff on line 3"),
    ("x: " + "[" * 5000 + "]" * 5000, "nesting deeper than"),
    ("x: " + "{a: " * 3000 + "1" + "}" * 3000, "nesting deeper than"),
    ("a: &x [1]\nb: *x\n", "alias *x is not allowed"),
    ("<<: {environment: int}\n", "unknown top-level key"),
    ("environment: !!python/object/apply:os.system [id]\n", "is not allowed in an inventory"),
    ("listen_port: " + "9" * 5000 + "\n", "too long to read"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "must be a mapping"),
])
def test_bad_files_are_messages_not_tracebacks(project, text, words):
    found = refused(project, text)
    assert all(p.startswith("inventories/int.yml") for p in found), found
    assert any(words in p for p in found), found


def test_huge_file_is_refused_unread(project):
    found = refused(project, "# " + "x" * MAX_BYTES)
    assert found == [f"inventories/int.yml: is larger than {MAX_BYTES // 1024} KiB; an inventory is a few KiB of YAML"]


def test_many_problems_are_capped_with_a_count(project):
    document = copy.deepcopy(GOOD)
    for index in range(200):
        document["hosts"][f"h{index}"] = {"ssh_port": 0, "endpoints": []}
    with pytest.raises(InventoryError) as raised:
        load_hosts(write_text(project, yaml.safe_dump(document)))
    text = str(raised.value)
    assert len(raised.value.problems) >= 400
    assert text.count("\n  - ") == MAX_SHOWN
    assert f"and {len(raised.value.problems) - MAX_SHOWN} more problems, not shown" in text


def test_group_data_that_does_not_run_is_named(project):
    (project / "group_data" / "int.py").write_text("proxy_addresses = [\n")
    found = refused(project, GOOD_TEXT)
    assert found and found[0].startswith("group_data/int.py: does not run as Python: SyntaxError")


@pytest.mark.parametrize("first, second", [
    ({"ssh_hostname": "10.0.0.5"}, {"ssh_hostname": "10.0.0.5"}),
    ({"ssh_hostname": "Host.Example"}, {"ssh_hostname": "HOST.example"}),
    ({"ssh_hostname": "::1"}, {"ssh_hostname": "0:0::1"}),
    ({"ssh_hostname": "127.0.0.1"}, {"ssh_hostname": "localhost"}),
    ({"ssh_hostname": "127.0.0.1"}, {"ssh_hostname": "::ffff:127.0.0.1"}),
    ({"ssh_hostname": "10.0.0.5"}, {"ssh_hostname": "::ffff:10.0.0.5"}),
    ({"ssh_hostname": "localhost"}, {"ssh_hostname": "::1"}),
])
def test_one_machine_under_two_names_is_refused(project, first, second):
    document = copy.deepcopy(GOOD)
    document["hosts"]["rx-1"].update(first)
    document["hosts"]["rx-2"] = {**second, "endpoints": [
        {"ods": "RX810", "supplier": "Acme", "upstream": "http://127.0.0.1:5000"}]}
    found = refused(project, yaml.safe_dump(document))
    assert any(p.startswith("inventories/int.yml: hosts.rx-2: reaches the same machine as hosts.rx-1") for p in found)


def test_same_address_on_another_ssh_port_is_another_machine(project):
    document = copy.deepcopy(GOOD)
    document["hosts"]["rx-1"].update(ssh_hostname="10.0.0.5")
    document["hosts"]["rx-2"] = {"ssh_hostname": "10.0.0.5", "ssh_port": 2222, "endpoints": [
        {"ods": "RX810", "supplier": "Acme", "upstream": "http://127.0.0.1:5000"}]}
    assert len(load_hosts(write_text(project, yaml.safe_dump(document)))) == 2


def test_prod_facts_are_not_overridable(project):
    document = copy.deepcopy(GOOD)
    document["environment"] = "prod"
    document["settings"].update(ca_pins={}, certificate_request_email="me@example.org", proxy_addresses=["192.0.2.1"])
    with pytest.raises(InventoryError) as raised:
        load_hosts(write_text(project, yaml.safe_dump(document), "prod"))
    found = [str(p) for p in raised.value.problems]
    for key in ("ca_pins", "certificate_request_email"):
        assert any(p.startswith(f"inventories/prod.yml: settings.{key}: is a fact of the PROD environment, set in "
                                "group_data/prod.py") for p in found), found
    assert not any("proxy_addresses" in p for p in found)


def test_values_reach_settings_in_canonical_form(project, caplog):
    document = copy.deepcopy(GOOD)
    document["settings"].update(base_dir="//etc//bars-receiver/", client_dn_allowlist=["/O=nhs/OU=Devices/CN=proxy"])
    document["hosts"]["rx-1"]["endpoints"][0]["upstream"] = "HTTP://[0::1]:5000/"
    [(_, data)] = load_hosts(write_text(project, yaml.safe_dump(document)))
    receiver = data["receiver"]
    assert receiver.settings.base_dir == "/etc/bars-receiver"
    assert receiver.settings.client_dn_allowlist == ["CN=proxy,OU=Devices,O=nhs"]
    assert receiver.endpoints[0].upstream == "http://[::1]:5000"
    assert "settings.client_dn_allowlist[0]: '/O=nhs/OU=Devices/CN=proxy' is read as 'CN=proxy,OU=Devices,O=nhs'" \
        in caplog.text


def test_ods_with_trailing_newline_is_reported_under_ods(project):
    document = copy.deepcopy(GOOD)
    document["hosts"]["rx-1"]["endpoints"][0]["ods"] = "RX809\n"
    found = refused(project, yaml.safe_dump(document))
    assert [p for p in found if ".ods: " in p] and not [p for p in found if ".fqdn: " in p], found


@pytest.mark.parametrize("key", ["bad host", "a;b", "-x", "$(id)"])
def test_host_names_have_a_grammar(project, key):
    document = copy.deepcopy(GOOD)
    document["hosts"][key] = document["hosts"].pop("rx-1")
    found = refused(project, yaml.safe_dump(document))
    assert any("is not a usable host name" in p for p in found), found


@pytest.mark.parametrize("name", ["my inventory", "int;x", ".hidden", "a$b"])
def test_inventory_names_have_a_grammar(project, name):
    with pytest.raises(InventoryError) as raised:
        load_hosts(write_text(project, GOOD_TEXT, name))
    [problem] = raised.value.problems
    assert "the inventory's name" in str(problem) and "letters, digits, '-' and '_'" in str(problem)


def test_client_crl_naming_a_directory_is_a_message(project):
    document = copy.deepcopy(GOOD)
    document["settings"]["client_crl"] = "group_data"
    found = refused(project, yaml.safe_dump(document))
    assert any(p.startswith("group_data: cannot be read as a file") for p in found), found


def test_a_defect_in_the_checks_is_still_a_message_naming_the_file(project, monkeypatch):
    import bars_receiver.inventory.loader as inventory

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(inventory._Loader, "machines", broken)
    found = refused(project, GOOD_TEXT)
    assert found == ["inventories/int.yml: could not be checked (KeyError: 'boom'); this is a defect in the "
                     "deploy's input checks: report it with this file"]


@pytest.mark.parametrize("upstream, words", [
    ("http://127.0.0.1:22", "is on this host's SSH port 22"),
    ("http://localhost:443", "is the listener's own port 443"),
    ("https://[::1]", "is the listener's own port 443"),
])
def test_a_loopback_application_on_the_ssh_or_listener_port_is_refused(project, upstream, words):
    document = copy.deepcopy(GOOD)
    document["hosts"]["rx-1"]["endpoints"][0]["upstream"] = upstream
    found = refused(project, yaml.safe_dump(document))
    assert any(p.startswith("inventories/int.yml: hosts.rx-1.endpoints[0].upstream: ") and words in p
               for p in found), found


def test_loopback_application_ports_reach_the_settings(project):
    document = copy.deepcopy(GOOD)
    document["hosts"]["rx-1"]["endpoints"][0]["upstream"] = "http://127.0.0.1:5000"
    document["hosts"]["rx-1"]["endpoints"].append(
        {"ods": "RX810", "supplier": "Acme", "upstream": "http://10.1.2.3:6000"})
    (host,) = [h for h in load_hosts(write_text(project, yaml.safe_dump(document))) if h[0] == "rx-1"]
    assert host[1]["receiver"].local_upstream_ports == [5000]  # 10.1.2.3 is another machine: not filtered here


@pytest.mark.parametrize("line, field, words", [
    ("listen_port: ! 443", "", "tag '!' is not allowed"),
    ("listen_port: 0x" + "f" * 100, "", "too long to read"),
    ("key_size: 4096.0", "settings.key_size", "not a whole number"),
    ("proxy_addresses: ['64:ff9b::/96']", "settings.proxy_addresses", "NAT64"),
    ("proxy_addresses: ['::ffff:0:0:0/96']", "settings.proxy_addresses", "IPv4-translated"),
    ("key_passphrase_env: PATH", "settings.key_passphrase_env", "does not start with 'BARS_'"),
    ("pfx_password_env: CI_JOB_TOKEN", "settings.pfx_password_env", "does not start with 'BARS_'"),
])
def test_values_found_by_an_adversarial_review_are_refused(project, line, field, words):
    text = GOOD_TEXT.replace("settings:\n", f"settings:\n  {line}\n")
    if "key_size: 4096.0" in line:
        text = text.replace("  key_size: 2048\n", "", 1)  # GOOD sets key_size: once only
    found = refused(project, text)
    assert any(f"inventories/int.yml: {field}" in p and words in p for p in found), found


@pytest.mark.parametrize("value", ["no", "off"])
def test_host_key_checking_cannot_be_switched_off(project, value):
    document = copy.deepcopy(GOOD)
    document["hosts"]["rx-1"]["ssh_strict_host_key_checking"] = value
    found = refused(project, yaml.safe_dump(document))
    assert any("hosts.rx-1.ssh_strict_host_key_checking" in p for p in found), found
