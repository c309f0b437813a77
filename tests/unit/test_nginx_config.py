"""The rendered nginx configuration: what each TLS-MA rule turns into."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bars_receiver.inventory.loader import load_hosts
from bars_receiver.nginx.config import Site, render_config

REPO = Path(__file__).resolve().parents[2]


def receiver(tmp_path: Path, **settings):
    for name in ("group_data", "files"):
        shutil.copytree(REPO / name, tmp_path / name, dirs_exist_ok=True)
    (tmp_path / "inventories").mkdir(exist_ok=True)
    document = {
        "environment": "int",
        "settings": settings,
        "hosts": {"rx": {"endpoints": [{"ods": "RX809", "supplier": "Acme", "upstream": "http://127.0.0.1:5000/"}]}},
    }
    path = tmp_path / "inventories" / "int.yml"
    path.write_text(yaml.safe_dump(document))
    return load_hosts(path)[0][1]["receiver"]


def site(fqdn="BaRS-INT-RX809.Acme.thirdparty.nhs.uk", receiver_path="/", password=None,
         upstream="http://127.0.0.1:5000"):
    directory = f"/etc/bars-receiver/{fqdn}"
    return Site(fqdn=fqdn, chain=f"{directory}/chain.pem", key=f"{directory}/key.pem",
                key_password_file=password, client_ca=f"{directory}/ca.pem",
                upstream=upstream, receiver_path=receiver_path)


def server_blocks(text: str) -> list[str]:
    return ["server {" + part for part in text.split("server {")[1:]]


def test_unknown_names_are_refused_at_the_handshake(tmp_path):
    text = render_config(receiver(tmp_path), [])
    [default] = server_blocks(text)
    assert "listen 443 ssl default_server;" in default
    assert "ssl_reject_handshake on;" in default
    assert "ssl_certificate" not in text


def test_each_active_endpoint_gets_an_sni_server_with_client_verification(tmp_path):
    fqdns = ["BaRS-INT-RX809.Acme.thirdparty.nhs.uk", "BaRS-INT-RX810.Acme.thirdparty.nhs.uk"]
    text = render_config(receiver(tmp_path), [site(fqdn) for fqdn in fqdns])
    blocks = server_blocks(text)
    assert len(blocks) == 3
    for fqdn, block in zip(fqdns, blocks[1:]):
        assert f"server_name {fqdn};" in block
        assert f"ssl_certificate /etc/bars-receiver/{fqdn}/chain.pem;" in block
        assert "ssl_verify_client on;" in block
        assert "ssl_verify_depth 2;" in block
        assert f"ssl_client_certificate /etc/bars-receiver/{fqdn}/ca.pem;" in block
        assert "ssl_protocols TLSv1.2 TLSv1.3;" in block
        assert "ssl_password_file" not in block


def test_path_is_passed_through_untouched(tmp_path):
    text = render_config(receiver(tmp_path), [site()])
    block = server_blocks(text)[1]
    # proxy_pass without a URI part sends the client's request URI as it came.
    assert "proxy_pass http://bars_http_127_0_0_1_5000_f9413619;" in block
    assert "upstream bars_http_127_0_0_1_5000_f9413619 {\n    server 127.0.0.1:5000;\n" in text
    assert "    keepalive 16;\n" in text
    assert "location ^~ / {" in block
    assert "return 404;" not in block


def test_receiver_path_limits_what_is_proxied(tmp_path):
    block = server_blocks(render_config(receiver(tmp_path), [site(receiver_path="/bars/")]))[1]
    assert "location ^~ /bars/ {" in block
    assert "location / {\n        return 404;" in block


def test_client_identity_headers_are_set_by_nginx(tmp_path):
    block = server_blocks(render_config(receiver(tmp_path), [site()]))[1]
    for line in (
        "proxy_set_header X-Client-Subject-DN $ssl_client_s_dn;",
        "proxy_set_header X-Client-Serial $ssl_client_serial;",
        "proxy_set_header X-Client-Verify $ssl_client_verify;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto https;",
        "proxy_read_timeout 30s;",
    ):
        assert line in block


def test_allowlist_returns_403_for_other_subjects(tmp_path):
    dns = ["CN=proxy.example.nhs.uk,OU=Devices,O=nhs", "CN=other.nhs.uk"]
    text = render_config(receiver(tmp_path, client_dn_allowlist=dns), [site()])
    assert "if ($bars_client_allowed = 0) {\n            return 403;" in text
    assert 'map $ssl_client_s_dn $bars_client_allowed {\n    default 0;\n' in text
    for dn in dns:
        assert f'    "\\\\{dn}" 1;\n' in text


def test_passphrase_protected_key_uses_its_password_file(tmp_path):
    block = server_blocks(render_config(receiver(tmp_path), [site(password="/etc/bars-receiver/x/key.pass")]))[1]
    assert "ssl_password_file /etc/bars-receiver/x/key.pass;" in block


def test_protocols_ciphers_port_and_timeout_are_settings(tmp_path):
    settings = dict(tls_protocols=["TLSv1.3"], tls_ciphers="ECDHE-RSA-AES256-GCM-SHA384", listen_port=8443,
                    upstream_timeout=20)
    block = server_blocks(render_config(receiver(tmp_path, **settings), [site()]))[1]
    assert "listen 8443 ssl;" in block and "listen [::]:8443 ssl;" in block
    assert "ssl_protocols TLSv1.3;" in block
    assert "ssl_ciphers ECDHE-RSA-AES256-GCM-SHA384;" in block
    assert "proxy_read_timeout 20s;" in block


def test_upstream_trailing_slash_is_dropped(tmp_path):
    assert receiver(tmp_path).endpoints[0].upstream == "http://127.0.0.1:5000"


@pytest.mark.parametrize("settings, field", [
    ({"tls_protocols": ["TLSv1.1"]}, "settings.tls_protocols[0]"),
    ({"tls_ciphers": "AES256 GCM"}, "settings.tls_ciphers"),
    ({"client_dn_allowlist": ['CN="x"']}, "settings.client_dn_allowlist[0]"),
    ({"upstream_timeout": 40}, "settings.upstream_timeout"),
])
def test_bad_tls_settings_are_refused(tmp_path, settings, field):
    from bars_receiver.inventory.errors import InventoryError

    with pytest.raises(InventoryError) as raised:
        receiver(tmp_path, **settings)
    assert f"inventories/int.yml: {field}: " in str(raised.value)


def test_client_crl_is_checked_when_set(tmp_path):
    with_crl = Site(**{**site().__dict__, "crl": "/etc/bars-receiver/client-crl.pem"})
    block = server_blocks(render_config(receiver(tmp_path), [with_crl]))[1]
    assert "ssl_crl /etc/bars-receiver/client-crl.pem;" in block
    assert "ssl_crl" not in render_config(receiver(tmp_path), [site()])


def test_upstream_names_never_collide(tmp_path):
    """'app-1.internal' and 'app.1.internal' read alike once punctuation becomes '_': the short
    hash of the exact address keeps their upstream blocks apart, so both render and verify."""
    sites = [site(fqdn="BaRS-INT-RX809.Acme.thirdparty.nhs.uk", upstream="http://app-1.internal:8080"),
             site(fqdn="BaRS-INT-RX810.Acme.thirdparty.nhs.uk", upstream="http://app.1.internal:8080")]
    assert sites[0].upstream_name != sites[1].upstream_name
    text = render_config(receiver(tmp_path), sites)
    assert "server app-1.internal:8080;" in text and "server app.1.internal:8080;" in text
