"""A first run's remote commands do not grow with endpoints: missing keys and CSRs are made in
one batched command each (every core of the host) and the request packs share one read of the
host, so two fresh lab hosts, one given 1 endpoint and one given 5, see the same count. So does
the install deploy once the lab CA signed every CSR: every certificate travels in one upload and
is installed by one command, every PKCS#12 is built by one.

Remote commands are counted from pyinfra's ``--debug`` log as bench/unchanged_run.py counts them
("Running command on", file uploads included).
"""

from __future__ import annotations

import pytest

from lab.project import endpoint, fqdn

FLEET_SIZE = 2
SETTINGS = {"key_passphrase_env": "BARS_SCALE_TEST_PASSPHRASE"}
ENV = {"BARS_SCALE_TEST_PASSPHRASE": "scale-test-passphrase"}
BASE = "/etc/bars-receiver"
SIZES = {1: 1, 2: 5}  # fleet host index -> endpoints


def remote_commands(output: str) -> int:
    return output.count("Running command on ") + output.count("Attempting upload of ")


def names(index: int) -> list[str]:
    return [f"S{index}{number:02d}" for number in range(SIZES[index])]


@pytest.fixture(scope="module")
def first_runs(fleet_project):
    """Each host's first run, in its own inventory: {index: (remote commands, run)}."""
    runs = {}
    for index in SIZES:
        fleet_project.write_fleet_inventory({index: [endpoint(name) for name in names(index)]}, SETTINGS,
                                            name=f"scale{index}")
        run = fleet_project.deploy("--debug", inventory=f"scale{index}", env=ENV)
        runs[index] = (remote_commands(run.output), run)
    return runs


@pytest.fixture(scope="module")
def install_runs(first_runs, fleet_project, ca):
    """Each host's install deploy once the lab CA signed its CSRs: {index: (remote commands, run)}."""
    runs = {}
    for index in SIZES:
        for name in names(index):
            ca.sign_csr_file(fleet_project.root / "requests" / f"scale{index}" / f"{fqdn(name)}.csr")
        run = fleet_project.deploy("--debug", inventory=f"scale{index}", env=ENV)
        runs[index] = (remote_commands(run.output), run)
    return runs


def test_first_run_remote_commands_do_not_grow_with_endpoints(first_runs):
    counts = {SIZES[index]: commands for index, (commands, _) in first_runs.items()}
    assert counts[1] > 0 and counts[1] == counts[5], counts


def test_install_run_remote_commands_do_not_grow_with_endpoints(install_runs):
    counts = {SIZES[index]: commands for index, (commands, _) in install_runs.items()}
    assert counts[1] > 0 and counts[1] == counts[5], counts
    for index, (_, run) in install_runs.items():
        assert run.output.count("certificates.tar") >= 1, run.output[-3000:]  # every certificate in one upload
        assert f"Certificate{'s' if SIZES[index] > 1 else ''} for " in run.output
        assert f"PKCS#12 and application hand-off{'s' if SIZES[index] > 1 else ''} for " in run.output


def test_installed_endpoints_are_active_with_their_pfx(install_runs, fleet):
    for index in SIZES:
        for name in names(index):
            directory = f"{BASE}/{fqdn(name)}"
            on_host = fleet.ssh(index, f"openssl x509 -in {directory}/cert.pem -noout -pubkey; "
                                       f"openssl pkey -in {directory}/key.pem -passin file:{directory}/key.pass -pubout; "
                                       f"readlink /etc/bars-receiver-app/{fqdn(name)}/live").stdout.split("-----END PUBLIC KEY-----")
            assert on_host[0].strip() and on_host[0].strip() == on_host[1].strip()
            assert on_host[2].strip().startswith("archive/")


def test_batched_keys_are_encrypted_root_only_with_their_csrs(first_runs, fleet, fleet_project):
    for index in SIZES:
        def on_host(command: str, index: int = index) -> str:
            return fleet.ssh(index, command).stdout

        for name in names(index):
            directory = f"{BASE}/{fqdn(name)}"
            modes = on_host(f"stat -L -c '%a %U' {directory}/key.pem {directory}/key.pass").split()
            assert modes == ["600", "root", "600", "root"]
            assert "ENCRYPTED" in on_host(f"head -1 {directory}/key.pem")
            key = on_host(f"openssl pkey -in {directory}/key.pem -passin file:{directory}/key.pass -pubout")
            assert on_host(f"openssl req -in {directory}/csr.pem -noout -pubkey") == key
            pack = fleet_project.root / "requests" / f"scale{index}" / f"{fqdn(name)}.csr"
            assert pack.read_text() == on_host(f"cat {directory}/csr.pem")


def test_second_run_changes_nothing_and_declares_no_certificate_operation(install_runs, fleet_project):
    for index in SIZES:
        run = fleet_project.deploy(inventory=f"scale{index}", env=ENV)
        assert run.changed == 0, run.output[-3000:]
        assert "Certificate for " not in run.output and "Certificates for " not in run.output
        assert "PKCS#12 and application hand-off" not in run.output


CONFIG = "/etc/nginx/conf.d/bars-receiver.conf"


def test_unchanged_runs_have_the_same_remote_commands_at_1_and_5_endpoints(install_runs, fleet, fleet_project):
    """Unchanged runs answer the endpoint facts from the host-side output cache (one find) and
    leave the nginx configuration unrendered: the same count at both sizes, the cache root-only."""
    counts = {}
    for index in SIZES:
        runs = [fleet_project.deploy("--debug", inventory=f"scale{index}", env=ENV) for _ in range(2)]
        assert [run.changed for run in runs] == [0, 0]
        counts[SIZES[index]] = {remote_commands(run.output) for run in runs}
        listing = fleet.ssh(index, "stat -c '%a %U %n' /var/cache/bars-receiver/facts "
                                   "/var/cache/bars-receiver/facts/endpoint_files "
                                   "/var/cache/bars-receiver/facts/certificate_files").stdout.split("\n")
        assert [line.split()[:2] for line in listing if line] == [["700", "root"], ["600", "root"], ["600", "root"]]
    assert counts[1] == counts[5] and len(counts[1]) == 1, counts


def test_caches_do_not_hide_a_change_on_the_host(install_runs, fleet, fleet_project):
    """A key made readable by others and a hand-edited nginx configuration, behind both caches,
    are found and put right by the next run; the run after that changes nothing."""
    index = 2
    key = f"{BASE}/{fqdn(names(index)[0])}/live/key.pem"
    fleet.ssh(index, f"chmod 0644 $(readlink -f {key})")
    fleet.ssh(index, f"echo '# edited by hand' >> {CONFIG}")
    assert fleet_project.deploy(inventory=f"scale{index}", env=ENV).changed >= 2
    assert fleet.ssh(index, f"stat -L -c %a {key}").stdout.strip() == "600"
    assert "edited by hand" not in fleet.ssh(index, f"cat {CONFIG}").stdout
    assert fleet_project.deploy(inventory=f"scale{index}", env=ENV).changed == 0
