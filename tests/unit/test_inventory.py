"""Inventory validation: every bad input is refused with the file, the field and the fix."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from bars_receiver.inventory.errors import InventoryError
from bars_receiver.inventory.loader import load_hosts

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "environment": "int",
    "settings": {"key_size": 2048},
    "hosts": {
        "rx-1": {
            "ssh_user": "root",
            "endpoints": [{"ods": "RX809", "supplier": "Acme", "upstream": "http://127.0.0.1:5000"}],
        },
    },
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "group_data", tmp_path / "group_data")
    (tmp_path / "inventories").mkdir()
    return tmp_path


def write(project: Path, document: object, name: str = "int") -> Path:
    path = project / "inventories" / f"{name}.yml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def problems(project: Path, document: object, name: str = "int") -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load_hosts(write(project, document, name))
    return [str(problem) for problem in raised.value.problems]


def mutate(change) -> dict:
    document = copy.deepcopy(GOOD)
    change(document)
    return document


def ep(document: dict) -> dict:
    return document["hosts"]["rx-1"]["endpoints"][0]


def second_host(document: dict, **endpoint) -> None:
    document["hosts"]["rx-2"] = {"endpoints": [{"upstream": "http://127.0.0.1:1", **endpoint}]}


# (id, change to GOOD, field the message must name, words the message must contain)
BAD = [
    ("unknown environment", lambda d: d.update(environment="dev"), "environment", "one of: int, prod"),
    ("misspelt top-level key", lambda d: d.update(host={}), "host", "did you mean 'hosts'"),
    ("misspelt setting", lambda d: d["settings"].update(proxy_adresses=["1.2.3.4"]),
     "settings.proxy_adresses", "did you mean 'proxy_addresses'"),
    ("key size too small", lambda d: d["settings"].update(key_size=1024), "settings.key_size", "2048, 3072 or 4096"),
    ("port out of range", lambda d: d["settings"].update(listen_port=70000), "settings.listen_port", "65535"),
    ("address not an address", lambda d: d["settings"].update(proxy_addresses=["35.197.254"]),
     "settings.proxy_addresses[0]", "not an IPv4/IPv6 address"),
    ("CIDR with host bits", lambda d: d["settings"].update(proxy_addresses=["10.0.0.1/24"]),
     "settings.proxy_addresses[0]", "did you mean '10.0.0.0/24'"),
    ("proxy list opens everything", lambda d: d["settings"].update(proxy_addresses=["0.0.0.0/0"]),
     "settings.proxy_addresses[0]", "open to the whole internet"),
    ("listener on the SSH port", lambda d: d["settings"].update(listen_port=2222) or
     d["hosts"]["rx-1"].update(ssh_port=2222), "settings.listen_port", "also the SSH port of hosts.rx-1"),
    ("empty proxy list", lambda d: d["settings"].update(proxy_addresses=[]), "settings.proxy_addresses", "at least 1"),
    ("relative base_dir", lambda d: d["settings"].update(base_dir="etc/bars"), "settings.base_dir", "absolute"),
    ("bad env var name", lambda d: d["settings"].update(key_passphrase_env="my secret"),
     "settings.key_passphrase_env", "environment variable name"),
    ("passphrase env var unset", lambda d: d["settings"].update(key_passphrase_env="BARS_TEST_UNSET_PASSPHRASE"),
     "settings.key_passphrase_env", "is not set"),
    ("no hosts", lambda d: d.update(hosts={}), "hosts", "at least one host"),
    ("host without endpoints", lambda d: d["hosts"]["rx-1"].update(endpoints=[]),
     "hosts.rx-1.endpoints", "at least 1"),
    ("misspelt host key", lambda d: d["hosts"]["rx-1"].update(ssh_usr="root"),
     "hosts.rx-1.ssh_usr", "did you mean 'ssh_user'"),
    ("misspelt endpoint key", lambda d: ep(d).update(suplier="Acme"),
     "hosts.rx-1.endpoints[0].suplier", "did you mean 'supplier'"),
    ("ODS code with symbols", lambda d: ep(d).update(ods="RX 809"), "hosts.rx-1.endpoints[0].ods", "not an ODS code"),
    ("ODS code too short", lambda d: ep(d).update(ods="RX"), "hosts.rx-1.endpoints[0].ods", "3-12 letters or digits"),
    ("missing upstream", lambda d: ep(d).pop("upstream"), "hosts.rx-1.endpoints[0].upstream", "required"),
    ("upstream not http", lambda d: ep(d).update(upstream="ftp://app"), "hosts.rx-1.endpoints[0].upstream", "http(s) URL"),
    ("upstream with a path", lambda d: ep(d).update(upstream="http://127.0.0.1:5000/api"),
     "hosts.rx-1.endpoints[0].upstream", "request path is passed to the application unchanged"),
    ("receiver path relative", lambda d: ep(d).update(receiver_path="bars/"),
     "hosts.rx-1.endpoints[0].receiver_path", "starts and ends with '/'"),
    ("receiver path without closing slash", lambda d: ep(d).update(receiver_path="/bars"),
     "hosts.rx-1.endpoints[0].receiver_path", "e.g. '/' or '/bars/'"),
    ("request route is the environment's", lambda d: d["settings"].update(request_route="email"),
     "settings.request_route", "fact of the INT environment, set in group_data/int.py"),
    ("conventions are the environment's", lambda d: d["settings"].update(
        fqdn_conventions={"supplier": "BaRS-INT-{ods}.{supplier}.nhs.uk"}),
     "settings.fqdn_conventions", "an inventory cannot override it"),
    ("supplier not a DNS label", lambda d: ep(d).update(supplier="Acme Health"),
     "hosts.rx-1.endpoints[0].supplier", "not a DNS label"),
    ("supplier starts with hyphen", lambda d: ep(d).update(supplier="-Acme"),
     "hosts.rx-1.endpoints[0].supplier", "not starting or ending with a hyphen"),
    ("CN longer than 64", lambda d: ep(d).update(supplier="A" * 40), "hosts.rx-1.endpoints[0].supplier", "at most 64"),
    ("explicit FQDN not nhs.uk", lambda d: ep(d).update(fqdn="BaRS-INT-RX809.Acme.example.com", supplier=None),
     "hosts.rx-1.endpoints[0].fqdn", "not under .nhs.uk"),
    ("explicit FQDN off convention", lambda d: ep(d).update(fqdn="RX809.Acme.thirdparty.nhs.uk", supplier=None),
     "hosts.rx-1.endpoints[0].fqdn", "does not follow the INT convention"),
    ("explicit FQDN names other ODS", lambda d: ep(d).update(fqdn="BaRS-INT-RX999.Acme.thirdparty.nhs.uk"),
     "hosts.rx-1.endpoints[0].fqdn", "names ODS code 'RX999'"),
    ("explicit FQDN names other supplier", lambda d: ep(d).update(fqdn="BaRS-INT-RX809.Other.thirdparty.nhs.uk"),
     "hosts.rx-1.endpoints[0].fqdn", "names supplier 'Other'"),
    ("PROD FQDN in INT", lambda d: ep(d).update(fqdn="BaRS-PROD-RX809.Acme.thirdparty.nhs.uk"),
     "hosts.rx-1.endpoints[0].fqdn", "does not follow the INT convention"),
    ("provider-hosted in INT", lambda d: ep(d).update(hosting="provider"),
     "hosts.rx-1.endpoints[0].hosting", "INT endpoints are supplier-hosted"),
    ("provider given for supplier-hosted", lambda d: ep(d).update(provider="Trust"),
     "hosts.rx-1.endpoints[0].provider", "does not apply to a supplier-hosted endpoint"),
    ("no supplier", lambda d: ep(d).pop("supplier"), "hosts.rx-1.endpoints[0].supplier", "required to build the FQDN"),
    ("same FQDN on two hosts", lambda d: second_host(d, ods="rx809", supplier="ACME"),
     "hosts.rx-2.endpoints[0].fqdn", "already served by hosts.rx-1.endpoints[0]"),
    ("bad ssh port", lambda d: d["hosts"]["rx-1"].update(ssh_port=0), "hosts.rx-1.ssh_port", "greater than or equal to 1"),
    ("bad strict host key checking", lambda d: d["hosts"]["rx-1"].update(ssh_strict_host_key_checking="maybe"),
     "hosts.rx-1.ssh_strict_host_key_checking", "'yes'"),
]


@pytest.mark.parametrize("change, field, words", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_names_file_and_field(project, change, field, words):
    found = problems(project, mutate(change))
    expected = f"inventories/int.yml: {field}: "
    matching = [text for text in found if text.startswith(expected)]
    assert matching, f"no problem for {field!r} in {found}"
    assert any(words in text for text in matching), matching


def test_bad_cases_are_distinct():
    assert len(BAD) >= 20
    assert len({case[0] for case in BAD}) == len(BAD)


def test_good_inventory_resolves_fqdn_and_connection_data(project):
    [(name, data)] = load_hosts(write(project, GOOD))
    receiver = data["receiver"]
    assert name == "rx-1"
    assert data["ssh_user"] == "root"
    assert [e.fqdn for e in receiver.endpoints] == ["BaRS-INT-RX809.Acme.thirdparty.nhs.uk"]
    assert [str(a) for a in receiver.settings.proxy_addresses] == ["35.197.254.55/32", "35.246.55.143/32"]
    assert receiver.requests_dir == f"{project}/requests/int"


def test_ods_is_compared_case_insensitively(project):
    document = mutate(lambda d: ep(d).update(ods="rx809", fqdn="bars-int-RX809.acme.thirdparty.nhs.uk"))
    [(_, data)] = load_hosts(write(project, document))
    assert data["receiver"].endpoints[0].fqdn == "bars-int-RX809.acme.thirdparty.nhs.uk"
    assert data["receiver"].endpoints[0].ods == "RX809"


def test_prod_provider_hosted_uses_provider_convention(project):
    document = mutate(lambda d: d.update(environment="prod"))
    ep(document).update(hosting="provider", provider="ExampleTrust", supplier=None)
    del ep(document)["supplier"]
    [(_, data)] = load_hosts(write(project, document, "prod"))
    assert data["receiver"].endpoints[0].fqdn == "BaRS-PROD-RX809.ExampleTrust.nhs.uk"
    assert [str(a) for a in data["receiver"].settings.proxy_addresses] == ["34.89.0.111/32", "34.89.69.6/32"]


def test_inventory_overrides_group_data(project):
    document = mutate(lambda d: d["settings"].update(proxy_addresses=["2001:db8::/64", "192.0.2.7"]))
    [(_, data)] = load_hosts(write(project, document))
    assert [str(a) for a in data["receiver"].settings.proxy_addresses] == ["2001:db8::/64", "192.0.2.7/32"]


def test_bad_group_data_names_the_group_data_file(project):
    (project / "group_data" / "int.py").write_text(
        (project / "group_data" / "int.py").read_text() + '\nproxy_addresses = ["35.197.254.555"]\n'
    )
    [problem] = problems(project, GOOD)
    assert problem.startswith("group_data/int.py: proxy_addresses[0]: ")


def test_duplicate_yaml_key_is_refused(project):
    text = yaml.safe_dump(GOOD) + "environment: prod\n"
    [problem] = problems(project, text)
    assert problem.startswith("inventories/int.yml: ")
    assert "'environment' appears twice" in problem


def test_invalid_yaml_is_refused(project):
    [problem] = problems(project, "hosts: [unclosed\n")
    assert problem.startswith("inventories/int.yml: is not valid YAML")


def test_all_problems_are_reported_at_once(project):
    document = mutate(lambda d: ep(d).update(ods="!", upstream="nope"))
    found = problems(project, document)
    assert any(".ods: " in text for text in found) and any(".upstream: " in text for text in found)


def test_error_says_nothing_was_done(project):
    with pytest.raises(InventoryError) as raised:
        load_hosts(write(project, mutate(lambda d: ep(d).update(ods="!"))))
    assert "nothing was done on any host" in str(raised.value)


def test_passphrase_is_read_from_environment_and_hidden(project, monkeypatch):
    monkeypatch.setenv("BARS_TEST_PASSPHRASE", "correct horse battery")
    document = mutate(lambda d: d["settings"].update(key_passphrase_env="BARS_TEST_PASSPHRASE"))
    [(_, data)] = load_hosts(write(project, document))
    receiver = data["receiver"]
    assert receiver.key_passphrase.get_secret_value() == "correct horse battery"
    assert "correct horse" not in repr(receiver)


def test_short_passphrase_is_refused(project, monkeypatch):
    monkeypatch.setenv("BARS_TEST_PASSPHRASE", "abc")
    found = problems(project, mutate(lambda d: d["settings"].update(key_passphrase_env="BARS_TEST_PASSPHRASE")))
    assert any(text.startswith("inventories/int.yml: settings.key_passphrase_env: ") and "at least 4" in text
               for text in found)


@pytest.mark.parametrize("name", ["int", "prod", "lab"])
def test_committed_inventories_are_valid(name):
    hosts = load_hosts(REPO / "inventories" / f"{name}.yml")
    assert hosts and all(data["receiver"].endpoints for _, data in hosts)
