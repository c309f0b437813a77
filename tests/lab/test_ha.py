"""A highly available endpoint: one FQDN on two fleet hosts behind a lab TCP load balancer.

Each host makes its own key and CSR for the same FQDN (the key never leaves its host), gets its own
request pack (requests/test/<fqdn>@<host>.csr) and certificate (files/certs/test/<fqdn>@<host>.cer,
signed by the lab CA playing NHS England), and serves its own. HAProxy (lab/balancer.py) on the
fleet's switch passes TCP through, round robin; TLS-MA calls from the BaRS proxy's address through
it reach both hosts, each answering with its own certificate.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.balancer import TcpBalancer
from lab.fleet import BALANCER, PROXY, host_address
from lab.project import endpoint, fqdn

FLEET_SIZE = 2
HA = fqdn("HA01")
CALLS = 8


def stem(fleet, index: int) -> str:
    return f"{HA}@{fleet.host_name(index)}"


def serial_of(pem: str | bytes) -> int:
    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificates(data)[0].serial_number


@pytest.fixture(scope="module")
def deployed(fleet, fleet_project, ca):
    """Both hosts list HA01 with load_balanced: true; the balancer's address may pass the firewall."""
    fleet_project.write_fleet_inventory(
        {index: [endpoint("HA01", load_balanced=True)] for index in (1, 2)},
        settings={"proxy_addresses": [PROXY, BALANCER]},
    )
    first = fleet_project.deploy()
    ca.write_bundle(fleet_project.root, "test")
    for index in (1, 2):  # NHS England issues one certificate per CSR, i.e. per host
        csr = fleet_project.root / "requests" / "test" / f"{stem(fleet, index)}.csr"
        cert = ca.authority.sign_csr(csr.read_bytes())
        (fleet_project.root / "files" / "certs" / "test").mkdir(parents=True, exist_ok=True)
        (fleet_project.root / "files" / "certs" / "test" / f"{stem(fleet, index)}.cer").write_bytes(
            ca.authority.chain_pem(cert))
    return first, fleet_project.deploy()


def test_each_host_has_its_own_key_pack_and_certificate(deployed, fleet, fleet_project):
    requests = fleet_project.root / "requests" / "test"
    keys = []
    for index in (1, 2):
        csr = x509.load_pem_x509_csr((requests / f"{stem(fleet, index)}.csr").read_bytes())
        assert csr.subject.rfc4514_string() == f"CN={HA}"
        keys.append(csr.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        note = (requests / f"{stem(fleet, index)}.md").read_text()
        assert "Load-balanced endpoint" in note and f"`{fleet.host_name(index)}`" in note
        assert f"files/certs/test/{stem(fleet, index)}.cer" in note
    assert keys[0] != keys[1]  # two keys: none was copied between hosts
    assert not (requests / f"{HA}.csr").exists()
    for index in (1, 2):
        served = fleet.served_certificate(host_address(index), HA)
        cer = (fleet_project.root / "files" / "certs" / "test" / f"{stem(fleet, index)}.cer").read_bytes()
        assert served is not None and serial_of(served) == serial_of(cer)


def test_tls_ma_through_the_balancer_reaches_both_hosts_with_their_own_certificates(deployed, fleet, fleet_project,
                                                                                      client):
    expected = {serial_of((fleet_project.root / "files" / "certs" / "test" / f"{stem(fleet, i)}.cer").read_bytes())
                for i in (1, 2)}
    request = f"GET /metadata HTTP/1.1\r\nHost: {HA}\r\nConnection: close\r\n\r\n"
    seen = []
    with TcpBalancer(fleet, [1, 2]):
        for _ in range(CALLS):
            result = fleet.netns_run(
                ["openssl", "s_client", "-connect", f"{BALANCER}:443", "-bind", f"{PROXY}:0", "-servername", HA,
                 "-cert", str(client / "client.pem"), "-key", str(client / "client.key"),
                 "-CAfile", str(fleet_project.root / "files" / "ca" / "test" / "lab-root.pem"),
                 "-verify_return_error", "-ign_eof"],
                input=request, capture_output=True, text=True, timeout=30)
            assert "Verify return code: 0 (ok)" in result.stdout, result.stdout[-2000:] + result.stderr
            assert "HTTP/1.1 200" in result.stdout and "CapabilityStatement" in result.stdout, result.stdout[-2000:]
            seen.append(serial_of(result.stdout))
    assert set(seen) == expected  # both hosts answered, each with its own certificate
