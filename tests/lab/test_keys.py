"""Keys, CSRs and request packs on a real lab host, over SSH, with real openssl."""

from __future__ import annotations

import shlex


import pytest
from cryptography import x509

from lab.project import endpoint, fqdn

ENDPOINTS = [endpoint("LAB01"), endpoint("LAB02"), endpoint("LAB03", supplier="OtherSupplier")]
BASE = "/etc/bars-receiver"


def on_host(lab, command: str) -> str:
    return lab.ssh(command).stdout


def host_snapshot(lab) -> str:
    """Every file under /etc with its mode, owner and content hash: a change anywhere shows."""
    return on_host(lab, "find /etc -xdev \\( -type f -o -type d -o -type l \\) -printf '%p %m %u %g %s\\n' | sort;"
                        " find /etc -xdev -type f -exec sha256sum {} + | sort")


def ssh_logins(lab) -> int:
    """SSH logins the host has accepted, this one included."""
    return int(on_host(lab, "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey' || true"))


@pytest.fixture(scope="module")
def first_run(project):
    project.write_inventory(ENDPOINTS)
    return project.deploy()


def test_first_run_makes_root_only_keys_and_csrs(first_run, lab):
    assert first_run.changed > 0
    assert on_host(lab, f"stat -c '%a %U %G' {BASE}").split() == ["700", "root", "root"]
    for item in ENDPOINTS:
        name = fqdn(item["ods"], item["supplier"])
        directory = f"{BASE}/{name}"
        assert on_host(lab, f"stat -L -c '%a %U %G' {directory} {directory}/key.pem").split() == [
            "700", "root", "root", "600", "root", "root",
        ]
        subject = on_host(lab, f"openssl req -in {directory}/csr.pem -noout -subject -nameopt RFC2253")
        assert subject.strip() == f"subject=CN={name}"
        # the CSR was signed by this key
        assert "verify OK" in lab.ssh(f"openssl req -in {directory}/csr.pem -noout -verify").stderr + \
            lab.ssh(f"openssl req -in {directory}/csr.pem -noout -verify").stdout


def test_request_packs_hold_the_hosts_csrs(first_run, project, lab):
    for item in ENDPOINTS:
        name = fqdn(item["ods"], item["supplier"])
        local = (project.root / "requests" / "test" / f"{name}.csr").read_text()
        assert local == on_host(lab, f"cat {BASE}/{name}/csr.pem")
        csr = x509.load_pem_x509_csr(local.encode())
        assert csr.is_signature_valid and csr.subject.rfc4514_string() == f"CN={name}"
        note = (project.root / "requests" / "test" / f"{name}.md").read_text()
        assert f"| FQDN | {name} |" in note and "Public key SHA-256" in note


def test_second_run_changes_nothing(first_run, project, lab):
    keys_before = on_host(lab, f"sha256sum {BASE}/*/key.pem {BASE}/*/csr.pem")
    run = project.deploy()
    assert run.changed == 0, run.output[-3000:]
    assert on_host(lab, f"sha256sum {BASE}/*/key.pem {BASE}/*/csr.pem") == keys_before


def test_deleted_csr_is_remade_with_the_same_key(first_run, project, lab):
    directory = f"{BASE}/{fqdn('LAB02')}"
    key_before = on_host(lab, f"sha256sum {directory}/key.pem; stat -L -c %i {directory}/key.pem")
    public_before = on_host(lab, f"openssl pkey -in {directory}/key.pem -pubout")
    lab.ssh(f"rm {directory}/live/csr.pem")  # the file itself, in its generation
    (project.root / "requests" / "test" / f"{fqdn('LAB02')}.csr").unlink()

    run = project.deploy()

    assert run.changed == 2  # the CSR, and the request pack read back from the host
    assert on_host(lab, f"sha256sum {directory}/key.pem; stat -L -c %i {directory}/key.pem") == key_before
    csr_public = on_host(lab, f"openssl req -in {directory}/csr.pem -noout -pubkey")
    assert csr_public == public_before
    assert (project.root / "requests" / "test" / f"{fqdn('LAB02')}.csr").read_text() == \
        on_host(lab, f"cat {directory}/csr.pem")


def test_csr_for_a_changed_key_is_remade(first_run, project, lab):
    """A CSR that no longer matches the key (here: another endpoint's CSR) is replaced."""
    here, other = f"{BASE}/{fqdn('LAB01')}", f"{BASE}/{fqdn('LAB02')}"
    lab.ssh(f"cp {other}/csr.pem {here}/csr.pem")
    project.deploy()
    assert on_host(lab, f"openssl req -in {here}/csr.pem -noout -pubkey") == \
        on_host(lab, f"openssl pkey -in {here}/key.pem -pubout")
    assert on_host(lab, f"openssl req -in {here}/csr.pem -noout -subject -nameopt RFC2253").strip() == \
        f"subject=CN={fqdn('LAB01')}"


def test_loosened_key_permissions_are_restored(first_run, project, lab):
    key = f"{BASE}/{fqdn('LAB03', 'OtherSupplier')}/key.pem"
    lab.ssh(f"chmod 0644 {key}")
    project.deploy()
    assert on_host(lab, f"stat -L -c %a {key}").strip() == "600"


def test_existing_key_is_never_replaced_even_if_the_fact_is_stale(first_run, lab):
    """The on-host guard refuses to overwrite key.pem, whatever the controller believed."""
    directory = f"{BASE}/{fqdn('LAB01')}"
    before = on_host(lab, f"sha256sum {directory}/key.pem")
    from bars_receiver.scripts import script_text

    lab.ssh(f"sh -c {shlex.quote(script_text('prepare'))} bars {directory}")
    result = lab.ssh(f"sh -c {shlex.quote(script_text('make_key'))} bars {directory} live 2048 plain", check=False)
    assert result.returncode != 0
    assert "refusing to replace a private key" in result.stderr
    assert on_host(lab, f"sha256sum {directory}/key.pem") == before


def test_invalid_inventory_leaves_host_unchanged_and_unvisited(first_run, project, lab):
    before, logins_before = host_snapshot(lab), ssh_logins(lab)
    project.write_inventory([*ENDPOINTS, endpoint("LAB04", upstream="ftp://nope")], name="broken")

    run = project.deploy(inventory="broken", check=False)

    assert run.returncode != 0
    assert "inventories/broken.yml: hosts." in run.output and ".endpoints[3].upstream: " in run.output
    assert "nothing was done on any host" in run.output
    assert ssh_logins(lab) == logins_before + 1  # only the counting login itself: pyinfra never connected
    assert host_snapshot(lab) == before


def test_passphrase_never_in_output_or_process_list(first_run, project, lab):
    secret = "Xyzzy-passphrase-4711-never-shown"
    project.write_inventory(
        [*ENDPOINTS, endpoint("LAB05", supplier="Encrypted")],
        settings={"key_passphrase_env": "BARS_LAB_KEY_PASSPHRASE", "key_size": 4096},
        name="encrypted",
    )
    # Record the host's process list as fast as it will go for the whole run.
    lab.ssh("rm -f /run/ps.log /run/ps.stop; nohup sh -c 'while [ ! -e /run/ps.stop ]; do "
            "ps -eo args >> /run/ps.log; done' >/dev/null 2>&1 &")
    try:
        # Another inventory for the same host: handed over deliberately (see test_operated_from_ci.py).
        run = project.deploy("-vvv", "--data", "bars_take_over=test", inventory="encrypted",
                             env={"BARS_LAB_KEY_PASSPHRASE": secret})
    finally:
        lab.ssh("touch /run/ps.stop; sleep 0.3")
    processes = on_host(lab, "cat /run/ps.log")

    assert "genpkey" in processes  # the recorder saw the key being made
    assert secret not in processes
    assert secret not in run.output
    directory = f"{BASE}/{fqdn('LAB05', 'Encrypted')}"
    assert on_host(lab, f"head -1 {directory}/key.pem").strip() == "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    assert on_host(lab, f"stat -L -c '%a %U' {directory}/key.pass").split() == ["600", "root"]
    assert on_host(lab, f"cat {directory}/key.pass") == secret
    assert "4096 bit" in on_host(lab, f"openssl req -in {directory}/csr.pem -noout -text")
    # and the run after it is quiet
    assert project.deploy(inventory="encrypted", env={"BARS_LAB_KEY_PASSPHRASE": secret}).changed == 0
