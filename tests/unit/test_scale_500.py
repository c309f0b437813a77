"""500 endpoints on one host (the per-host limit): the inventory loads, and everything rendered
from it (nginx configuration, nftables rules, status table, request notes) is made and passes
its checks; 501 is refused naming the field. And the nginx structural check is skipped only for
a text identical to the live file: a changed one is checked, a broken one refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bars_receiver.certificates.facts import InstalledCertificates
from bars_receiver.certificates.x509 import sha256_hex
from bars_receiver.firewall.nftables import render_rules
from bars_receiver.firewall.rules_check import verify_rules
from bars_receiver.inventory.errors import InventoryError
from bars_receiver.inventory.loader import load_hosts
from bars_receiver.inventory.settings import MAX_ENDPOINTS_PER_HOST
from bars_receiver.nginx import config as nginx
from bars_receiver.nginx.config import Site, render_config
from bars_receiver.nginx.verify import ConfigRefused, parse
from bars_receiver.request_packs import note_fields, note_template, render_note
from bars_receiver.status.report import endpoint_rows, format_table

REPO = Path(__file__).resolve().parents[2]


def inventory(tmp_path: Path, count: int) -> Path:
    for name in ("group_data", "files"):
        shutil.copytree(REPO / name, tmp_path / name, dirs_exist_ok=True)
    (tmp_path / "inventories").mkdir(exist_ok=True)
    # Each endpoint its own loopback application port: the firewall's local-port rule grows too.
    endpoints = [{"ods": f"S{index:04d}", "supplier": "Acme", "upstream": f"http://127.0.0.1:{20000 + index}"}
                 for index in range(count)]
    path = tmp_path / "inventories" / "int.yml"
    path.write_text(yaml.safe_dump({"environment": "int", "settings": {"proxy_addresses": ["192.0.2.10"]},
                                    "hosts": {"rx": {"endpoints": endpoints}}}))
    return path


def sites(receiver) -> list[Site]:
    return [Site(fqdn=e.fqdn, chain=f"{receiver.endpoint_dir(e.fqdn)}/live/chain.pem",
                 key=f"{receiver.endpoint_dir(e.fqdn)}/live/key.pem", key_password_file=None,
                 client_ca=f"{receiver.endpoint_dir(e.fqdn)}/live/ca.pem", upstream=e.upstream,
                 receiver_path=e.receiver_path) for e in receiver.endpoints]


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    [(_, data)] = load_hosts(inventory(tmp_path_factory.mktemp("p500"), MAX_ENDPOINTS_PER_HOST))
    return data["receiver"]


def test_the_limit_is_500(receiver):
    assert MAX_ENDPOINTS_PER_HOST == 500
    assert len(receiver.endpoints) == 500
    assert len({e.fqdn for e in receiver.endpoints}) == 500


def test_501_endpoints_are_refused_naming_the_field(tmp_path):
    with pytest.raises(InventoryError) as refused:
        load_hosts(inventory(tmp_path, MAX_ENDPOINTS_PER_HOST + 1))
    assert "hosts.rx.endpoints" in str(refused.value) and "500" in str(refused.value)


def test_nginx_configuration_for_500_renders_and_verifies(receiver):
    text = render_config(receiver, sites(receiver))  # verify() runs: ConfigRefused would fail here
    assert "server_names_hash_max_size 2048;" in text  # 500 names without nginx's "not optimal" warning
    parsed = parse(text)
    assert len([d for d in parsed if d["directive"] == "server"]) == 501  # one per endpoint and the catch-all
    assert len([d for d in parsed if d["directive"] == "upstream"]) == 500


def test_firewall_rules_for_500_application_ports_render_and_verify(receiver):
    ports = receiver.local_upstream_ports
    assert len(ports) == 500
    sources = receiver.settings.proxy_addresses
    verify_rules(render_rules(receiver.settings.listen_port, sources, ports), receiver.settings.listen_port,
                 sources, ports)


def test_status_table_has_a_row_per_endpoint(receiver):
    table = format_table(endpoint_rows("rx", receiver, InstalledCertificates()))
    assert len(table.splitlines()) == 1 + 1 + 500
    assert all(e.fqdn in table for e in receiver.endpoints)


def test_request_notes_for_500_render(receiver):
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    notes = {e.fqdn: render_note(receiver.project_dir, note_template(receiver), note_fields(receiver, e, "rx"), public)
             for e in receiver.endpoints}
    assert all(fqdn in note for fqdn, note in notes.items())


class Counting:
    def __init__(self):
        self.calls = 0
        self.real = nginx.verify

    def __call__(self, text, expected):
        self.calls += 1
        return self.real(text, expected)


@pytest.fixture
def counted(monkeypatch):
    counting = Counting()
    monkeypatch.setattr(nginx, "verify", counting)
    return counting


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    [(_, data)] = load_hosts(inventory(tmp_path_factory.mktemp("p3"), 3))
    return data["receiver"]


def test_unchanged_configuration_skips_the_structural_check(small, counted):
    text = render_config(small, sites(small))
    assert counted.calls == 1
    assert render_config(small, sites(small), live_sha256=sha256_hex(text.encode())) == text
    assert counted.calls == 1


def test_changed_configuration_is_checked(small, counted):
    live = render_config(small, sites(small)[:-1])  # the live file lacks one endpoint
    counted.calls = 0
    render_config(small, sites(small), live_sha256=sha256_hex(live.encode()))
    assert counted.calls == 1
    render_config(small, sites(small), live_sha256="")  # no live file
    assert counted.calls == 2


def test_changed_broken_configuration_is_refused(small, counted, monkeypatch):
    good = render_config(small, sites(small))
    real_render = nginx.render

    def broken(*args, **kwargs):  # a template that would also serve plain HTTP
        return real_render(*args, **kwargs) + "server {\n    listen 80;\n    return 200;\n}\n"

    monkeypatch.setattr(nginx, "render", broken)
    with pytest.raises(ConfigRefused, match="listen 80"):
        render_config(small, sites(small), live_sha256=sha256_hex(good.encode()))
