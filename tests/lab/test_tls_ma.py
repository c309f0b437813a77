"""TLS-MA on a real lab host: real nginx, real handshakes, real client certificates.

Clients run inside the lab's network namespace from 127.0.0.2, the address that plays the BaRS
proxy (the firewall drops everyone else). The lab's stand-in application logs every request it
receives, so a refused request is shown not to have reached it.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from cryptography import x509

from lab.project import endpoint, fqdn

ACTIVE = fqdn("LAB01")
REQUESTED = fqdn("LAB02")
PROXY = "127.0.0.2"
UPSTREAM_LOG = "/var/log/bars-lab-upstream.jsonl"
CONFIG = "/etc/nginx/conf.d/bars-receiver.conf"


@pytest.fixture(scope="module")
def active(project, ca):
    """LAB01 signed by the lab CA and active; LAB02 still waiting for its certificate."""
    project.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
    project.deploy()
    ca.write_bundle(project.root, "test")
    ca.sign_csr_file(project.root / "requests" / "test" / f"{ACTIVE}.csr", project.root, "test")
    project.deploy()
    return project


@pytest.fixture(scope="module")
def clients(ca, tmp_path_factory):
    """Client certificates: key and certificate files per kind."""
    directory = tmp_path_factory.mktemp("clients")
    made = {}
    for kind, cn in (("good", "bars-proxy.lab.nhs.uk"), ("wrong-ca", "bars-proxy.lab.nhs.uk"),
                     ("expired", "bars-proxy.lab.nhs.uk"), ("other", "stranger.lab.nhs.uk")):
        key, cert = ca.issue_client(cn, kind="good" if kind == "other" else kind)
        (directory / f"{kind}.key").write_bytes(key)
        (directory / f"{kind}.pem").write_bytes(cert)
        made[kind] = (directory / f"{kind}.pem", directory / f"{kind}.key")
    return made


def curl(lab, project, path: str, client=None, headers=(), name: str = ACTIVE, extra=()) -> tuple[int, dict, str]:
    """An HTTPS request to the lab host from the proxy's address; (status, headers, body). ``extra``:
    more curl options (a method, a raw request target)."""
    argv = ["curl", "-sS", "--max-time", "10", "--interface", PROXY, "--resolve", f"{name}:443:127.0.0.1",
            "--cacert", str(project.root / "files" / "ca" / "test" / "lab-root.pem"), "-D", "-", "--path-as-is"]
    if client:
        argv += ["--cert", str(client[0]), "--key", str(client[1])]
    for header in headers:
        argv += ["-H", header]
    result = lab.netns_run([*argv, *extra, f"https://{name}{path}"], capture_output=True, text=True)
    if result.returncode != 0:
        return 0, {}, result.stderr
    head, _, body = result.stdout.partition("\n\n")  # text mode has turned CRLF into LF
    lines = head.splitlines()
    status = int(lines[0].split()[1])
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return status, {k.lower(): v for k, v in fields.items()}, body


def upstream_saw(lab, request_id: str) -> bool:
    return request_id in lab.ssh(f"cat {UPSTREAM_LOG} 2>/dev/null || true").stdout


def s_client(lab, *args: str) -> subprocess.CompletedProcess:
    return lab.netns_run(["openssl", "s_client", "-connect", "127.0.0.1:443", "-bind", f"{PROXY}:0", *args],
                         input="", capture_output=True, text=True, timeout=20)


def test_good_client_reaches_upstream_with_request_intact(active, lab, clients):
    request_id = str(uuid.uuid4())
    status, headers, body = curl(
        lab, active, "/$process-message?_format=json&x=%24a", clients["good"],
        headers=[f"X-Request-Id: {request_id}", "X-Correlation-Id: corr-1",
                 "X-Client-Subject-DN: CN=forged", "X-Client-Verify: SUCCESS-forged"],
    )
    assert status == 200, body
    received = json.loads(body)["received"]
    assert received["path"] == "/$process-message?_format=json&x=%24a"
    sent = {name.title(): value for name, value in received["headers"].items()}
    assert sent["X-Request-Id"] == request_id and sent["X-Correlation-Id"] == "corr-1"
    assert sent["X-Client-Subject-Dn"] == "CN=bars-proxy.lab.nhs.uk,OU=Devices,O=nhs"
    assert sent["X-Client-Verify"] == "SUCCESS"
    assert sent["X-Client-Serial"] and sent["X-Client-Serial"] != "forged"
    assert sent["X-Forwarded-For"] == PROXY and sent["X-Forwarded-Proto"] == "https"
    assert headers["x-request-id"] == request_id and headers["x-correlation-id"] == "corr-1"


def test_metadata_answers_end_to_end(active, lab, clients):
    status, _, body = curl(lab, active, "/metadata", clients["good"])
    assert status == 200 and json.loads(body)["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize("kind", [None, "wrong-ca", "expired"])
def test_bad_clients_are_refused_and_never_reach_upstream(active, lab, clients, kind):
    request_id = str(uuid.uuid4())
    status, _, body = curl(lab, active, "/metadata", clients[kind] if kind else None,
                           headers=[f"X-Request-Id: {request_id}"])
    assert status in (0, 403), (status, body)  # handshake refused, or the BaRS-shaped 403 (TLS-MA failure)
    assert status == 0 or "REC_FORBIDDEN" in body
    assert not upstream_saw(lab, request_id)
    # and the good client still gets through, so the refusal is about the certificate
    assert curl(lab, active, "/metadata", clients["good"])[0] == 200


def test_served_chain_is_leaf_then_sub_ca(active, lab):
    result = s_client(lab, "-servername", ACTIVE, "-showcerts")
    pems = [block for block in result.stdout.split("-----BEGIN CERTIFICATE-----")[1:]]
    certs = [x509.load_pem_x509_certificate(("-----BEGIN CERTIFICATE-----" + block.split("-----END CERTIFICATE-----")[0]
                                             + "-----END CERTIFICATE-----\n").encode()) for block in pems]
    assert [c.subject.rfc4514_string() for c in certs] == [
        f"CN={ACTIVE},OU=Devices,O=nhs", certs[0].issuer.rfc4514_string(),
    ]
    assert certs[1].subject != certs[1].issuer  # a sub CA, not the root


@pytest.mark.parametrize("name", ["unknown.thirdparty.nhs.uk", REQUESTED])
def test_names_not_served_are_refused_at_the_handshake(active, lab, name):
    result = s_client(lab, "-servername", name)
    assert result.returncode != 0
    assert "BEGIN CERTIFICATE" not in result.stdout and "Server certificate" not in result.stdout
    assert "unrecognized name" in result.stderr or "handshake failure" in result.stderr


def test_tls_1_1_is_refused_and_1_2_accepted(active, lab):
    # SECLEVEL=0 makes this client willing to speak TLS 1.1, so the refusal is the server's.
    old = s_client(lab, "-servername", ACTIVE, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old.returncode != 0 and "BEGIN CERTIFICATE" not in old.stdout
    modern = s_client(lab, "-servername", ACTIVE, "-tls1_2")
    assert "Protocol  : TLSv1.2" in modern.stdout


def test_allow_list_refuses_other_subjects(active, lab, clients):
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")],
                           settings={"client_dn_allowlist": ["CN=bars-proxy.lab.nhs.uk,OU=Devices,O=nhs"]})
    try:
        deploy_and_wait_for_reload(active, lab)
        request_id = str(uuid.uuid4())
        status, _, _ = curl(lab, active, "/metadata", clients["other"], headers=[f"X-Request-Id: {request_id}"])
        assert status == 403
        assert not upstream_saw(lab, request_id)
        assert curl(lab, active, "/metadata", clients["good"])[0] == 200
    finally:
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
        deploy_and_wait_for_reload(active, lab)


def nginx_workers(lab) -> str:
    return lab.ssh("ps --ppid $(cat /run/nginx.pid) -o pid= | sort").stdout


def deploy_and_wait_for_reload(project, lab) -> None:
    """systemctl reload only signals nginx; wait (bounded) until new workers have replaced the old."""
    workers = nginx_workers(lab)
    project.deploy()
    deadline = time.monotonic() + 10
    while nginx_workers(lab) == workers:
        assert time.monotonic() < deadline, "nginx did not reload within 10 s"
        time.sleep(0.1)


def test_broken_configuration_never_goes_live(active, lab, clients):
    """nginx -t on the host is the last check: a value the controller lets through (here a cipher
    name added to this copy's allow-list, test only) that nginx refuses never goes live."""
    before = lab.ssh(f"sha256sum {CONFIG}").stdout
    workers = nginx_workers(lab)
    grammar = active.root / "bars_receiver" / "inventory" / "grammar.py"
    original = grammar.read_text()
    grammar.write_text(original + '\nSTRONG_CIPHERS = (*STRONG_CIPHERS, "NO-SUCH-CIPHER")  # test only\n')
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")], settings={"tls_ciphers": "NO-SUCH-CIPHER"})
    try:
        run = active.deploy(check=False)
        assert run.returncode != 0
        assert "nginx keeps serving" in run.output, run.output[-3000:]
        assert 'SSL_CTX_set_cipher_list("NO-SUCH-CIPHER") failed' in run.output  # nginx's own message
        assert lab.ssh(f"sha256sum {CONFIG}").stdout == before
        assert lab.ssh("ls -a /etc/nginx/conf.d/").stdout.split() == [".", "..", "bars-receiver.conf"]
        assert nginx_workers(lab) == workers  # not reloaded
        assert curl(lab, active, "/metadata", clients["good"])[0] == 200
    finally:
        grammar.write_text(original)
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])


def test_configuration_nginx_as_a_whole_refuses_is_rolled_back(active, lab, clients):
    """Our file passes alone but clashes with another site: the previous file comes back."""
    before = lab.ssh(f"sha256sum {CONFIG}").stdout
    workers = nginx_workers(lab)
    lab.ssh("echo 'server_names_hash_bucket_size 64;' > /etc/nginx/conf.d/zz-other-site.conf")
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")], settings={"upstream_timeout": 25})
    try:
        run = active.deploy(check=False)
        assert run.returncode != 0
        assert '"server_names_hash_bucket_size" directive is duplicate' in run.output
        assert "nginx as a whole refused the new configuration; the previous one was restored" in run.output
        assert lab.ssh(f"sha256sum {CONFIG}").stdout == before
        assert nginx_workers(lab) == workers  # not reloaded
        assert curl(lab, active, "/metadata", clients["good"])[0] == 200
    finally:
        lab.ssh("rm -f /etc/nginx/conf.d/zz-other-site.conf")
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])


def test_a_reload_nginx_cannot_take_fails_every_run_until_fixed(active, lab, clients):
    """nginx -t does not bind ports: with the new port taken, only the reload shows the problem."""
    port = 8444
    squatter = int(lab.ssh(f"nohup python3 -m http.server {port} --bind 0.0.0.0 >/dev/null 2>&1 & echo $!").stdout)
    deadline = time.monotonic() + 10
    while not lab.ssh(f"ss -Hltn 'sport = :{port}'").stdout.strip():
        assert time.monotonic() < deadline, "the squatting server did not start"
        time.sleep(0.1)
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")], settings={"listen_port": port})
    try:
        for _ in range(2):  # the second run must not pass silently
            run = active.deploy(check=False)
            assert run.returncode != 0
            assert "nginx did not take the new configuration" in run.output
            assert "Address already in use" in run.output  # nginx's own log line
        assert curl(lab, active, "/metadata", clients["good"])[0] == 200  # still serving on 443
    finally:
        lab.ssh(f"[ \"$(cat /proc/{squatter}/comm 2>/dev/null)\" = python3 ] && kill {squatter} || true")
    try:
        active.deploy()
        assert "nginx" in lab.ssh(f"ss -Hltnp 'sport = :{port}'").stdout
        assert active.deploy().changed == 0
    finally:
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
        deploy_and_wait_for_reload(active, lab)


def test_second_run_changes_nothing_and_does_not_reload(active, lab):
    active.deploy()
    workers = nginx_workers(lab)
    run = active.deploy()
    assert run.changed == 0, run.output[-3000:]
    assert nginx_workers(lab) == workers


def test_revoked_client_is_refused_with_a_crl(active, lab, ca, clients, tmp_path):
    key, cert = ca.issue_client("revoked-proxy.lab.nhs.uk")
    (tmp_path / "revoked.key").write_bytes(key)
    (tmp_path / "revoked.pem").write_bytes(cert)
    revoked = (tmp_path / "revoked.pem", tmp_path / "revoked.key")
    serial = x509.load_pem_x509_certificate(cert).serial_number
    assert curl(lab, active, "/metadata", revoked)[0] == 200  # a good certificate until it is revoked
    crl_file = active.root / "files" / "crl" / "test.crl"
    crl_file.parent.mkdir(parents=True, exist_ok=True)
    crl_file.write_bytes(ca.authority.crls_pem(revoked=(serial,)))
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")], settings={"client_crl": "files/crl/test.crl"})
    try:
        deploy_and_wait_for_reload(active, lab)
        assert "ssl_crl /etc/bars-receiver/client-crl.pem;" in lab.ssh(f"cat {CONFIG}").stdout
        request_id = str(uuid.uuid4())
        status, _, body = curl(lab, active, "/metadata", revoked, headers=[f"X-Request-Id: {request_id}"])
        assert status in (0, 403), (status, body)
        assert not upstream_saw(lab, request_id)
        assert curl(lab, active, "/metadata", clients["good"])[0] == 200
        assert active.deploy().changed == 0
    finally:
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
        deploy_and_wait_for_reload(active, lab)


def test_a_slow_application_gets_a_504_after_upstream_timeout(active, lab, clients):
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")], settings={"upstream_timeout": 2})
    try:
        deploy_and_wait_for_reload(active, lab)
        assert "proxy_read_timeout 2s;" in lab.ssh(f"cat {CONFIG}").stdout
        assert curl(lab, active, "/metadata", clients["good"], headers=["X-Lab-Delay: 1"])[0] == 200
        assert curl(lab, active, "/metadata", clients["good"], headers=["X-Lab-Delay: 4"])[0] == 504
    finally:
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
        deploy_and_wait_for_reload(active, lab)


def test_encrypted_key_is_served_through_its_password_file(active, lab, ca, clients):
    secret = {"BARS_LAB_KEY_PASSPHRASE": "lab-passphrase-for-nginx"}
    endpoints = [endpoint("LAB01"), endpoint("LAB02"), endpoint("LAB03", supplier="Encrypted")]
    settings = {"key_passphrase_env": "BARS_LAB_KEY_PASSPHRASE"}
    name = fqdn("LAB03", "Encrypted")
    active.write_inventory(endpoints, settings=settings)
    active.deploy(env=secret)
    ca.sign_csr_file(active.root / "requests" / "test" / f"{name}.csr", active.root, "test")
    active.deploy(env=secret)

    assert lab.ssh(f"head -1 /etc/bars-receiver/{name}/key.pem").stdout.strip() == \
        "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    config = lab.ssh(f"cat {CONFIG}").stdout
    assert f"ssl_password_file /etc/bars-receiver/{name}/live/key.pass;" in config
    deadline = time.monotonic() + 10
    while (status := curl(lab, active, "/metadata", clients["good"], name=name)[0]) != 200:
        assert time.monotonic() < deadline, f"{name} answered {status}"
        time.sleep(0.2)
    assert active.deploy(env=secret).changed == 0


def test_reboot_brings_back_the_listener(active, lab, clients):
    lab.reboot()
    assert curl(lab, active, "/metadata", clients["good"])[0] == 200
    assert curl(lab, active, "/metadata")[0] in (0, 403)


# --- The listener's own defects (issue 9) and its second layer behind the firewall (issue 10) ---


@pytest.mark.parametrize("only, refused_flag, accepted_flag, accepted", [
    ("TLSv1.3", "-tls1_2", "-tls1_3", "TLSv1.3"),
    ("TLSv1.2", "-tls1_3", "-tls1_2", "TLSv1.2"),
])
def test_tls_protocols_take_effect_where_nginx_negotiates(active, lab, only, refused_flag, accepted_flag, accepted):
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")], settings={"tls_protocols": [only]})
    try:
        deploy_and_wait_for_reload(active, lab)
        for name in (ACTIVE, "unknown.thirdparty.nhs.uk"):  # the catch-all negotiates for unknown names
            refused = s_client(lab, "-servername", name, refused_flag)
            assert refused.returncode != 0 and "BEGIN CERTIFICATE" not in refused.stdout, refused.stdout[-2000:]
            assert "Cipher is (NONE)" in refused.stdout or "alert protocol version" in refused.stderr, refused.stderr
        ok = s_client(lab, "-servername", ACTIVE, accepted_flag)
        assert f"New, {accepted}, Cipher is" in ok.stdout, ok.stdout[-2000:]
    finally:
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
        deploy_and_wait_for_reload(active, lab)


@pytest.mark.parametrize("kind", ["good", None, "wrong-ca"])
@pytest.mark.parametrize("host_header", ["unknown.thirdparty.nhs.uk", REQUESTED, "localhost"])
def test_a_host_other_than_the_sni_endpoint_is_refused_with_421(active, lab, clients, kind, host_header):
    request_id = str(uuid.uuid4())
    status, _, body = curl(lab, active, "/index.html", clients[kind] if kind else None,
                           headers=[f"Host: {host_header}", f"X-Request-Id: {request_id}"])
    assert status in (421, 0) if kind == "wrong-ca" else status == 421, (status, body)
    assert "Welcome to nginx" not in body and "received" not in body
    assert not upstream_saw(lab, request_id)


def test_an_allow_list_entry_starting_with_tilde_is_never_a_pattern(active, lab, clients):
    """'~CN=' would be a regex matching every subject; nginx must compare it as text."""
    active.write_inventory([endpoint("LAB01"), endpoint("LAB02")], settings={"client_dn_allowlist": ["~CN="]})
    run = active.deploy(check=False)
    try:
        if run.returncode == 0:  # accepted by the inventory: then it is an exact, never-matching key
            assert '"\\\\~CN=" 1;' in lab.ssh(f"cat {CONFIG}").stdout
            deadline = time.monotonic() + 10
            while curl(lab, active, "/metadata", clients["good"])[0] != 403:
                assert time.monotonic() < deadline, "the allow-list was not applied"
                time.sleep(0.2)
        else:  # refused while the inventory loads: nothing changed
            assert "client_dn_allowlist" in run.output and "Traceback" not in run.output
    finally:
        active.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
        if run.returncode == 0:
            deploy_and_wait_for_reload(active, lab)
    assert curl(lab, active, "/metadata", clients["good"])[0] == 200


def test_with_the_firewall_flushed_a_stranger_still_cannot_reach_the_application(active, lab, clients):
    lab.ssh("nft flush ruleset")
    try:
        request_id = str(uuid.uuid4())
        argv = ["curl", "-sS", "--max-time", "10", "--interface", "127.0.0.3", "--resolve", f"{ACTIVE}:443:127.0.0.1",
                "--cacert", str(active.root / "files" / "ca" / "test" / "lab-root.pem"), "-o", "-", "-w", "%{http_code}",
                "--cert", str(clients["good"][0]), "--key", str(clients["good"][1]),
                "-H", f"X-Request-Id: {request_id}", f"https://{ACTIVE}/metadata"]
        result = lab.netns_run(argv, capture_output=True, text=True)
        assert result.stdout.endswith("403"), (result.stdout, result.stderr)  # the firewall is gone: nginx refuses
        assert not upstream_saw(lab, request_id)
        assert curl(lab, active, "/metadata", clients["good"])[0] == 200  # the proxy's address still gets in
    finally:
        active.deploy()  # puts the firewall back
    assert "bars_receiver" in lab.ssh("nft list tables").stdout
