"""Fleet inventories: load-balanced FQDNs on several hosts, retired endpoints, their file names."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from bars_receiver.inventory.errors import InventoryError
from bars_receiver.inventory.loader import load_hosts

REPO = Path(__file__).resolve().parents[2]
FQDN = "BaRS-INT-RX809.Acme.thirdparty.nhs.uk"
ENDPOINT = {"ods": "RX809", "supplier": "Acme", "upstream": "http://127.0.0.1:5000"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "group_data", tmp_path / "group_data")
    (tmp_path / "inventories").mkdir()
    return tmp_path


def load(project: Path, hosts: dict) -> dict:
    path = project / "inventories" / "int.yml"
    path.write_text(yaml.safe_dump({"environment": "int", "settings": {}, "hosts": {
        name: {"endpoints": endpoints} for name, endpoints in hosts.items()}}))
    return {name: data["receiver"] for name, data in load_hosts(path)}


def problems(project: Path, hosts: dict) -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load(project, hosts)
    return [str(problem) for problem in raised.value.problems]


def balanced(**extra) -> dict:
    return {**copy.deepcopy(ENDPOINT), "load_balanced": True, **extra}


def test_a_load_balanced_fqdn_gets_one_pack_name_per_host(project):
    receivers = load(project, {"rx-a": [balanced()], "rx-b": [balanced()]})
    (a,), (b,) = receivers["rx-a"].endpoints, receivers["rx-b"].endpoints
    assert a.fqdn == b.fqdn == FQDN
    assert (a.stem(), b.stem()) == (f"{FQDN}@rx-a", f"{FQDN}@rx-b")


def test_a_plain_endpoint_keeps_its_fqdn_as_file_name(project):
    (endpoint,) = load(project, {"rx-a": [copy.deepcopy(ENDPOINT)]})["rx-a"].endpoints
    assert endpoint.stem() == FQDN and endpoint.pack_name is None


@pytest.mark.parametrize("first, second", [(False, True), (True, False), (False, False)])
def test_two_hosts_need_load_balanced_on_every_listing(project, first, second):
    messages = problems(project, {"rx-a": [balanced(load_balanced=first)], "rx-b": [balanced(load_balanced=second)]})
    assert any("hosts.rx-b.endpoints[0].fqdn" in m and "load_balanced: true" in m and "docs/ha.md" in m
               for m in messages), messages


def test_the_same_fqdn_twice_on_one_host_is_refused_even_when_load_balanced(project):
    messages = problems(project, {"rx-a": [balanced(), balanced()]})
    assert any("hosts.rx-a.endpoints[1].fqdn" in m and "already listed for this host" in m for m in messages), messages


def test_load_balanced_must_be_a_boolean(project):
    messages = problems(project, {"rx-a": [balanced(load_balanced="yes")]})
    assert any("load_balanced" in m for m in messages), messages


def test_a_retired_endpoint_is_kept_apart_from_the_served_ones(project):
    receiver = load(project, {"rx-a": [{**ENDPOINT, "retired": True},
                                       {**ENDPOINT, "ods": "RX810"}]})["rx-a"]
    assert [e.fqdn for e in receiver.endpoints] == ["BaRS-INT-RX810.Acme.thirdparty.nhs.uk"]
    assert [e.fqdn for e in receiver.retired] == [FQDN]


def test_a_load_balanced_certificate_is_read_from_its_hosts_file(project):
    """files/certs/int/<fqdn>@<host>.cer belongs to that host; a file for an unknown host is ignored."""
    from bars_receiver.certificates.issued import check_inventory_certificates

    (project / "files" / "certs" / "int").mkdir(parents=True)
    (project / "files" / "certs" / "int" / f"{FQDN}@rx-c.cer").write_text("not used")
    result = check_inventory_certificates(project, "int", [f"{FQDN}@rx-a", f"{FQDN}@rx-b"])
    assert result.problems == [] and result.certificates == {}
    assert any(f"{FQDN}@rx-c.cer: no endpoint" in warning for warning in result.warnings)
