"""The firewall on a real lab host, proven with real packets inside the lab's network namespace.

127.0.0.2 and fd00:ba25::2 play the BaRS proxy, 127.0.0.3 and fd00:ba25::3 a stranger. The
listener is the deploy's own nginx, serving one endpoint signed by the lab CA, reached with a lab
client certificate. Every packet stays on the lab's loopback; nothing is ever sent to the real
BaRS proxy addresses.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from bars_receiver.firewall.nftables import RULES_PATH, UNIT, render_rules
from lab.ca import LabCA
from lab.project import endpoint, fqdn

PORT = 8443
PROXY = ("127.0.0.2", "fd00:ba25::2")
STRANGER = ("127.0.0.3", "fd00:ba25::3")
LISTENER_V6 = "fd00:ba25::1"  # 127.0.0.1 for IPv4
SETTINGS = {"listen_port": PORT, "proxy_addresses": list(PROXY)}
ENDPOINTS = [endpoint("FW01")]
SERVED = fqdn("FW01")
TIMED_OUT, REFUSED = 28, 7  # curl exit statuses
FIREWALL_OP = f"tasks/firewall.py | Firewall: only the BaRS proxy may reach port {PORT}"


def on_host(lab, command: str) -> str:
    return lab.ssh(command).stdout


def table(lab) -> str:
    return on_host(lab, "nft list table inet bars_receiver")


def ruleset(lab) -> str:
    return on_host(lab, "nft list ruleset")


class Caller:
    """Makes TLS-MA requests to the listener as the BaRS proxy would, from a chosen source."""

    def __init__(self, lab, client_dir, ca_file):
        self.lab, self.client_dir, self.ca_file = lab, client_dir, ca_file

    def request(self, source: str) -> tuple[int, str]:
        """(curl's exit status, HTTP status) for GET /metadata from ``source``.

        Exit 0 means TLS and HTTP went through; 28 means no answer within the 2 s connect timeout
        (the SYN was dropped); 7 means the connection was refused (the firewall did not drop it).
        """
        address = f"[{LISTENER_V6}]" if ":" in source else "127.0.0.1"
        result = self.lab.netns_run(
            ["curl", "-sS", "-g", "--interface", source, "--connect-timeout", "2", "--max-time", "10",
             "--resolve", f"{SERVED}:{PORT}:{address}", "--cacert", str(self.ca_file),
             "--cert", str(self.client_dir / "client.pem"), "--key", str(self.client_dir / "client.key"),
             "-o", "/dev/null", "-w", "%{http_code}", f"https://{SERVED}:{PORT}/metadata"],
            capture_output=True, text=True, timeout=30,
        )
        return result.returncode, result.stdout

    def assert_only_the_proxy_gets_through(self) -> None:
        for proxy, stranger in zip(PROXY, STRANGER):
            assert self.request(proxy) == (0, "200"), f"the proxy {proxy} was not let through"
            assert self.request(stranger)[0] == TIMED_OUT, f"the stranger {stranger} was not dropped"


@pytest.fixture(scope="module")
def caller(lab, project, tmp_path_factory) -> Caller:
    """Holds a client certificate from the lab CA, as the BaRS proxy would present."""
    key, cert = LabCA().issue_client("bars-proxy.lab.nhs.uk")
    directory = tmp_path_factory.mktemp("client")
    (directory / "client.key").write_bytes(key)
    (directory / "client.pem").write_bytes(cert)
    return Caller(lab, directory, project.root / "files" / "ca" / "test" / "lab-root.pem")


def assert_ssh_works(lab) -> None:
    """A fresh SSH login (each lab.ssh is a new connection) still gets a shell."""
    assert lab.ssh("echo ssh-ok").stdout == "ssh-ok\n"


def changed_operations(run) -> list[str]:
    results = json.loads(run.stdout[run.stdout.index("{"):])["results"]["operations"]
    return [op["name"] for op in results if op["success"]]


@pytest.fixture(scope="module")
def first_run(lab, project, caller):
    """Someone else's table exists before our first run; nothing yet listens on the port."""
    for address in (LISTENER_V6, *PROXY[1:], *STRANGER[1:]):
        lab.netns_run(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"], check=True)
    lab.ssh("nft -f - <<'EOF'\n"
            "table ip someone_else {\n"
            "  chain input { type filter hook input priority 10; policy accept; tcp dport 9999 accept; }\n"
            "}\nEOF")
    before = {
        "someone_else": on_host(lab, "nft list table ip someone_else"),
        "stranger": caller.request(STRANGER[0]),
    }
    project.write_inventory(ENDPOINTS, settings=SETTINGS)
    run = project.deploy()
    ca = LabCA()
    ca.write_bundle(project.root, "test")
    ca.sign_csr_file(project.root / "requests" / "test" / f"{SERVED}.csr", project.root, "test")
    project.deploy()  # the endpoint is now active: nginx serves it on PORT
    return run, before


def test_first_run_adds_our_table_and_nothing_else(first_run, lab):
    run, before = first_run
    assert run.changed > 0
    assert before["stranger"][0] == REFUSED  # before our table, a closed port refuses at once
    assert on_host(lab, "nft list table ip someone_else") == before["someone_else"]
    assert sorted(on_host(lab, "nft list tables").splitlines()) == ["table inet bars_receiver", "table ip someone_else"]
    sources = [ipaddress.ip_network(address) for address in PROXY]
    # The endpoint's upstream is the lab application on 127.0.0.1:8080: kept to the host itself.
    assert on_host(lab, f"cat {RULES_PATH}") == render_rules(PORT, sources, [8080])
    assert on_host(lab, f"systemctl is-enabled {UNIT}; systemctl is-active {UNIT}").split() == ["enabled", "active"]
    assert_ssh_works(lab)


def test_only_the_proxy_reaches_the_listener(first_run, caller, lab):
    caller.assert_only_the_proxy_gets_through()


def test_other_ports_are_not_filtered(first_run, lab):
    banner = lab.netns_run(
        ["python3", "-c", "import socket; s = socket.create_connection(('127.0.0.1', 22), 3, ('127.0.0.3', 0));"
                          " print(s.recv(64).decode())"],
        capture_output=True, text=True, timeout=30,
    )
    assert banner.stdout.startswith("SSH-2.0-"), banner.stderr
    closed = lab.netns_run(["curl", "-s", "--interface", "127.0.0.3", "--connect-timeout", "2",
                            f"http://127.0.0.1:{PORT + 1}/"], capture_output=True, timeout=30)
    assert closed.returncode == REFUSED  # refused at once, not dropped


def test_second_run_changes_nothing(first_run, project, lab):
    live = ruleset(lab)
    run = project.deploy()
    assert run.changed == 0, changed_operations(run)
    assert ruleset(lab) == live
    assert_ssh_works(lab)


def test_a_hand_deleted_table_is_restored(first_run, caller, project, lab):
    wanted = table(lab)
    lab.ssh("nft delete table inet bars_receiver")
    # The stranger's connection now gets through; nginx's own source list (the second layer) says 403.
    assert caller.request(STRANGER[0]) == (0, "403")
    run = project.deploy()
    assert changed_operations(run) == [FIREWALL_OP]
    assert table(lab) == wanted
    caller.assert_only_the_proxy_gets_through()
    assert_ssh_works(lab)


def test_a_hand_edited_table_is_restored(first_run, caller, project, lab):
    wanted = table(lab)
    lab.ssh("nft insert rule inet bars_receiver input ip saddr 127.0.0.3 accept")
    assert caller.request(STRANGER[0]) == (0, "403")  # let in by the edit; refused by nginx itself
    assert changed_operations(project.deploy()) == [FIREWALL_OP]
    assert table(lab) == wanted
    caller.assert_only_the_proxy_gets_through()
    assert project.deploy().changed == 0


def test_an_invalid_address_is_refused_and_changes_nothing(first_run, caller, project, lab):
    live, kept = ruleset(lab), on_host(lab, f"sha256sum {RULES_PATH}")
    project.write_inventory(ENDPOINTS, settings={**SETTINGS, "proxy_addresses": ["127.0.0.2", "127.0.0.256"]})
    try:
        run = project.deploy(check=False)
    finally:
        project.write_inventory(ENDPOINTS, settings=SETTINGS)
    assert run.returncode != 0
    assert "inventories/test.yml: settings.proxy_addresses[1]: '127.0.0.256' is not an IPv4/IPv6 address" in run.output
    assert ruleset(lab) == live
    assert on_host(lab, f"sha256sum {RULES_PATH}") == kept
    assert_ssh_works(lab)
    caller.assert_only_the_proxy_gets_through()


def test_the_listener_port_may_not_be_the_ssh_port(first_run, project, lab):
    live = ruleset(lab)
    project.write_inventory(ENDPOINTS, settings={**SETTINGS, "listen_port": 22})
    try:
        run = project.deploy(check=False)
    finally:
        project.write_inventory(ENDPOINTS, settings=SETTINGS)
    assert run.returncode != 0
    assert "inventories/test.yml: settings.listen_port: 22 is also the SSH port of hosts." in run.output
    assert "nothing was done on any host" in run.output
    assert ruleset(lab) == live
    assert_ssh_works(lab)


def test_rules_that_are_not_our_table_never_leave_the_controller(first_run, caller, project, lab):
    """A rendered file that differs from the validated table (here an extra address) is stopped by
    the structural check on the controller, before anything is uploaded."""
    module = project.root / "bars_receiver" / "firewall" / "nftables.py"
    original = module.read_text()
    module.write_text(original + (
        "\n\n_render_rules = render_rules\n\n\n"
        "def render_rules(port, sources, *rest):  # test only: one address more than validated\n"
        "    return _render_rules(port, sources, *rest).replace('elements = { ', 'elements = { 127.0.0.3, ', 1)\n"
    ))
    live, kept = ruleset(lab), on_host(lab, f"sha256sum {RULES_PATH}")
    try:
        run = project.deploy(check=False)
    finally:
        module.write_text(original)
    assert run.returncode != 0
    assert "the rendered firewall rules were not applied: set proxy_v4 holds" in run.output
    assert ruleset(lab) == live
    assert on_host(lab, f"sha256sum {RULES_PATH}") == kept
    caller.assert_only_the_proxy_gets_through()


def test_rules_nft_rejects_change_nothing(first_run, caller, project, lab):
    """A candidate that fails `nft -c`: the run fails with nft's own message, and the live
    ruleset, the kept rules file and /tmp are exactly as before. (The controller's structural
    check would stop this file first; it is bypassed here to exercise nft's own check.)"""
    module = project.root / "bars_receiver" / "firewall" / "nftables.py"
    original = module.read_text()
    module.write_text(original + (
        "\n\n_render_rules = render_rules\n\n\n"
        "def render_rules(port, sources, *rest):  # test only: a rule nft cannot parse\n"
        "    return _render_rules(port, sources, *rest).replace(' drop', ' dorp')\n\n\n"
        "def verify_rules(*args):  # test only: skip the controller's structural check\n"
        "    pass\n"
    ))
    live, kept = ruleset(lab), on_host(lab, f"sha256sum {RULES_PATH}")
    try:
        run = project.deploy(check=False)
    finally:
        module.write_text(original)
    assert run.returncode != 0
    assert "Error: syntax error" in run.output and "dorp" in run.output
    assert "nft rejected the new firewall rules" in run.output
    assert ruleset(lab) == live
    assert on_host(lab, f"sha256sum {RULES_PATH}") == kept
    assert on_host(lab, "ls -A /tmp | grep -c '^pyinfra-' || true").strip() == "0"
    assert_ssh_works(lab)
    caller.assert_only_the_proxy_gets_through()


def test_restarting_or_reloading_nftables_keeps_our_table(first_run, caller, lab):
    """/etc/nftables.conf starts with `flush ruleset`; our unit follows nftables.service."""
    wanted = table(lab)
    for action in ("restart", "reload"):
        # systemctl returns once nftables.service is done; wait for the job it set off for our unit
        lab.ssh(f"systemctl {action} nftables && for i in $(seq 50); do "
                "[ -z \"$(systemctl list-jobs --no-legend)\" ] && break; sleep 0.1; done")
        assert table(lab) == wanted, action
        caller.assert_only_the_proxy_gets_through()


def test_rules_come_back_after_a_reboot_without_a_deploy(first_run, caller, project, lab):
    wanted = table(lab)
    lab.reboot()
    assert table(lab) == wanted
    assert on_host(lab, f"systemctl is-active {UNIT}").strip() == "active"
    caller.assert_only_the_proxy_gets_through()
    assert project.deploy().changed == 0  # new handles after the reboot are not a difference
