"""A first run's remote commands do not grow with endpoints: missing keys and CSRs are made in
one batched command each (every core of the host) and the request packs share one read of the
host, so two fresh lab hosts, one given 1 endpoint and one given 5, see the same count.

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


def test_first_run_remote_commands_do_not_grow_with_endpoints(first_runs):
    counts = {SIZES[index]: commands for index, (commands, _) in first_runs.items()}
    assert counts[1] > 0 and counts[1] == counts[5], counts


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


def test_second_run_changes_nothing(first_runs, fleet_project):
    for index in SIZES:
        assert fleet_project.deploy(inventory=f"scale{index}", env=ENV).changed == 0
