"""Crash safety on a real lab host: migration from the previous layout, every step of every host
script that changes serving material stopped as a crash would, and a listen_port change probed
by a stranger the whole time.

A crash is the test-only hook of files/scripts/lib.sh: a file planted on the host,
/run/bars-receiver-test-stop, holding "<script>:<k>", makes the script SIGKILL itself after its
k-th step (nothing tidied, the deploy fails there). Then nginx is restarted, as a reboot would,
and must start and serve TLS-MA (a real handshake with a real client certificate) with the old or
the new material, never a mismatch; the next deploy must finish with no human and the one after
it change nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography import x509

from lab.ca import LabCA
from lab.project import REPO, endpoint, fqdn

PREVIOUS_LAYOUT = "c519905"  # main before generations: key.pem, cert.pem... as files, next/ a directory
NAME = fqdn("CR01")
KEY_DIR = f"/etc/bars-receiver/{NAME}"
HOOK = "/run/bars-receiver-test-stop"
SETTINGS = {"key_passphrase_env": "BARS_CRASH_TEST_PASSPHRASE", "renewal_days": 30}
ENV = {"BARS_CRASH_TEST_PASSPHRASE": "crash-test-passphrase"}
PROXY, STRANGER = "127.0.0.2", "127.0.0.3"
# The deploy's code, not what the test made in the project copy (files/certs, files/ca, requests).
CODE = ("bars_receiver", "tasks", "group_data", "files/templates", "files/scripts", "deploy.py", "inventories/lab.py")


def on_host(lab, command: str) -> str:
    return lab.ssh(command).stdout


def use_code(project, commit: str | None) -> None:
    """The project's deploy code: the commit's (git archive), or this checkout's (None)."""
    for name in CODE:
        target = project.root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    if commit is None:
        for name in CODE:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, project.root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, project.root / name)
        if getattr(project, "crash_inventory", None):  # inventories/test.py from this checkout's lab.py
            project.write_inventory(*project.crash_inventory)
        return
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, *(c for c in CODE if c != "files/scripts")],
                             capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(project.root, filter="data")
    project.write_inventory(*project.crash_inventory)  # inventories/test.py from that commit's lab.py


def inventory(project, endpoints, **settings) -> None:
    project.crash_inventory = ([endpoint(name) for name in endpoints], {**SETTINGS, **settings})
    project.write_inventory(*project.crash_inventory)


def requests(project, name: str) -> Path:
    return project.root / "requests" / "test" / name


def leaf_of(project, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates((project.root / "files" / "certs" / "test" / f"{name}.cer").read_bytes())[0]


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> LabCA:
    return LabCA(tmp_path_factory.mktemp("lab-ca"))


@pytest.fixture(scope="module")
def client(ca, tmp_path_factory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("client")
    key, cert = ca.issue_client("bars-proxy.lab.nhs.uk")
    (directory / "client.key").write_bytes(key)
    (directory / "client.pem").write_bytes(cert)
    return directory / "client.pem", directory / "client.key"


def tls_ma(lab, project, client, name: str = NAME, port: int = 443) -> x509.Certificate:
    """A TLS-MA request from the proxy's address with a real client certificate: nginx must
    complete the handshake, accept the client (any answer but 400/495/496, or the 403 nginx's own
    BaRS-shaped answer gives a refused client certificate) and present a leaf; returns that leaf."""
    ca_file = project.root / "files" / "ca" / "test" / "lab-root.pem"
    result = lab.netns_run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--interface", PROXY,
         "--resolve", f"{name}:{port}:127.0.0.1", "--cacert", str(ca_file), "--cert", str(client[0]),
         "--key", str(client[1]), f"https://{name}:{port}/metadata"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout not in ("400", "403", "495", "496"), result.stdout + result.stderr
    shown = lab.netns_run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-bind", f"{PROXY}:0",
                           "-servername", name, "-cert", str(client[0]), "-key", str(client[1])],
                          input="", capture_output=True, text=True, timeout=20)
    assert "-----BEGIN CERTIFICATE-----" in shown.stdout, shown.stdout + shown.stderr
    return x509.load_pem_x509_certificates(shown.stdout.encode())[0]


def restart_nginx(lab) -> None:
    """As a reboot would: nginx reads every file anew, and must start."""
    result = lab.ssh("systemctl restart nginx && systemctl is-active nginx", check=False)
    assert result.returncode == 0 and result.stdout.strip() == "active", result.stdout + result.stderr


def key_inodes(lab) -> set[str]:
    return set(on_host(lab, "find /etc/bars-receiver -type f -name key.pem -printf '%i\\n'").split())


def crash(project, lab, script: str, step: int) -> bool:
    """Run the deploy with the hook planted; True when it stopped there (False: fewer steps)."""
    lab.ssh(f"echo {script}:{step} > {HOOK}")
    try:
        run = project.deploy(env=ENV, check=False)
    finally:
        lab.ssh(f"rm -f {HOOK}")
    stopped = f"test hook: {script}: stopped after step {step}" in run.output
    assert stopped == (run.returncode != 0), run.output[-3000:]
    return stopped


def recovers(project, lab) -> None:
    """The next deploy finishes unattended; the one after it changes nothing."""
    assert project.deploy(env=ENV).returncode == 0
    run = project.deploy(env=ENV)
    assert run.changed == 0, run.output[-3000:]
    assert on_host(lab, "find /etc/bars-receiver /etc/bars-receiver-app -name .staging -o -name '.*.new'") == ""


# ---------------------------------------------------------------- the previous layout migrates


@pytest.fixture(scope="module")
def previous_layout(project, lab, ca):
    """CR01 deployed by the code before generations: active with a certificate inside its renewal
    window, so a next/ key and CSR are staged too."""
    inventory(project, ["CR01"])
    use_code(project, PREVIOUS_LAYOUT)
    project.deploy(env=ENV)
    now = dt.datetime.now(dt.timezone.utc)
    ca.sign_csr_file(requests(project, f"{NAME}.csr"), project.root, "test",
                     not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=10))
    project.deploy(env=ENV)
    assert on_host(lab, f"test -f {KEY_DIR}/key.pem && test ! -L {KEY_DIR}/key.pem && test -d {KEY_DIR}/next "
                        f"&& test ! -L {KEY_DIR}/next && echo old-layout").strip() == "old-layout"
    files = {name: on_host(lab, f"stat -c %i {KEY_DIR}/{name}").strip()
             for name in ("key.pem", "key.pass", "cert.pem", "next/key.pem", "next/key.pass", "next/csr.pem")}
    files["pfx_password"] = on_host(lab, f"cat /etc/bars-receiver-app/{NAME}/pfx.pass")
    use_code(project, None)
    return files


@pytest.fixture(scope="module")
def migrated(previous_layout, project, lab):
    return project.deploy(env=ENV)


def test_previous_layout_migrates_on_the_next_run_keeping_every_key(previous_layout, migrated, project, lab, client):
    assert migrated.returncode == 0
    live, next_ = on_host(lab, f"readlink {KEY_DIR}/live {KEY_DIR}/next").split()
    assert live.startswith("archive/") and next_.startswith("archive/") and live != next_
    password = previous_layout.pop("pfx_password")
    assert on_host(lab, f"cat /etc/bars-receiver-app/{NAME}/pfx.pass") == password  # the application's, kept
    assert on_host(lab, f"readlink /etc/bars-receiver-app/{NAME}/pfx.pass").strip() == "live/pfx.pass"
    for name, inode in previous_layout.items():
        role, _, base = name.rpartition("/")
        assert on_host(lab, f"stat -L -c %i {KEY_DIR}/{role or 'live'}/{base}").strip() == inode, name
    assert tls_ma(lab, project, client) == leaf_of(project, NAME)
    restart_nginx(lab)
    assert tls_ma(lab, project, client) == leaf_of(project, NAME)
    assert requests(project, f"{NAME}.next.csr").read_text() == on_host(lab, f"cat {KEY_DIR}/next/csr.pem")
    run = project.deploy(env=ENV)
    assert run.changed == 0, run.output[-3000:]


# ---------------------------------------------------------------- the renewal swap, every step


@pytest.fixture(scope="module")
def renewal(migrated, project, lab, ca):
    """The certificate for the next key is committed; what the host and project hold before the swap."""
    old_leaf = leaf_of(project, NAME)
    ca.sign_csr_file(requests(project, f"{NAME}.next.csr"), project.root, "test")
    saved = project.root.parent / "requests-before-swap"
    shutil.copytree(project.root / "requests", saved)
    pointers = on_host(lab, f"readlink {KEY_DIR}/live {KEY_DIR}/next").split()
    return {"old": old_leaf, "new": leaf_of(project, NAME), "pointers": pointers, "requests": saved,
            "old_key": on_host(lab, f"stat -L -c %i {KEY_DIR}/live/key.pem").strip()}


def back_to_before_swap(project, lab, renewal) -> None:
    """Replays the renewal: live and next as they were (pointers only), the packs as they were, and
    the PKCS#12 record dropped so that it is rebuilt as after a real swap."""
    live, next_ = renewal["pointers"]
    lab.ssh(f"cd {KEY_DIR} && ln -sfn {live} .live.tmp && mv -T .live.tmp live && ln -sfn {next_} next "
            "&& rm -f pfx.inputs")
    shutil.rmtree(project.root / "requests")
    shutil.copytree(renewal["requests"], project.root / "requests")


@pytest.mark.parametrize("script", ["switch", "build_pfx"])
def test_renewal_stopped_at_every_step_serves_and_recovers(renewal, project, lab, client, script):
    stopped_at = []
    for step in range(1, 12):
        back_to_before_swap(project, lab, renewal)
        keys = key_inodes(lab)
        if not crash(project, lab, script, step):
            break
        stopped_at.append(step)
        restart_nginx(lab)
        assert tls_ma(lab, project, client) in (renewal["old"], renewal["new"])
        recovers(project, lab)
        assert tls_ma(lab, project, client) == renewal["new"]
        assert renewal["old_key"] in key_inodes(lab) and keys <= key_inodes(lab)  # the old key stays, in archive/
        assert on_host(lab, f"find {KEY_DIR}/archive -inum {renewal['old_key']}").startswith(f"{KEY_DIR}/archive/")
    assert len(stopped_at) >= 4, stopped_at
    back_to_before_swap(project, lab, renewal)
    recovers(project, lab)


# ---------------------------------------------------------------- a first key and a first install, every step


def test_first_key_stopped_at_every_step_is_finished_or_rolled_back(renewal, project, lab, client):
    for step in range(1, 6):
        name = f"CRK{step}"
        inventory(project, ["CR01", name])
        if not crash(project, lab, "make_key", step):
            assert step > 3
            break
        restart_nginx(lab)
        assert tls_ma(lab, project, client) == renewal["new"]
        recovers(project, lab)
        directory = f"/etc/bars-receiver/{fqdn(name)}"
        assert on_host(lab, f"find {directory} -name key.pem -type f | wc -l").strip() == "1"  # one key, kept
        assert on_host(lab, f"openssl req -in {directory}/csr.pem -noout -pubkey") == \
            on_host(lab, f"openssl pkey -in {directory}/key.pem -passin file:{directory}/key.pass -pubout")
    inventory(project, ["CR01"])


def test_first_install_stopped_at_every_step_serves_and_recovers(renewal, project, lab, client, ca):
    names = [f"CRI{step}" for step in range(1, 5)]
    inventory(project, ["CR01", *names])
    project.deploy(env=ENV)
    for step, name in enumerate(names, start=1):
        ca.sign_csr_file(requests(project, f"{fqdn(name)}.csr"), project.root, "test")
        keys = key_inodes(lab)
        if not crash(project, lab, "switch", step):
            assert step > 3
            break
        restart_nginx(lab)
        assert tls_ma(lab, project, client) == renewal["new"]  # the other endpoint never stops serving
        recovers(project, lab)
        assert tls_ma(lab, project, client, name=fqdn(name)) == leaf_of(project, fqdn(name))
        assert key_inodes(lab) == keys


# ---------------------------------------------------------------- listen_port changes, probed by a stranger

PROBE = r"""
import os, socket, sys
stop, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
attempts = 0
while not os.path.exists(stop):
    for port in ports:
        s = socket.socket()
        s.bind(("127.0.0.3", 0))
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
            print("OPEN", port, flush=True)
        except OSError:
            pass
        finally:
            s.close()
        attempts += 1
print("ATTEMPTS", attempts, flush=True)
"""


def test_listen_port_changes_never_open_a_port_to_a_stranger(renewal, project, lab, client, tmp_path):
    stop = tmp_path / "stop"
    prober = subprocess.Popen([*lab.netns_prefix(), sys.executable, "-c", PROBE, str(stop), "443", "8443"],
                              stdout=subprocess.PIPE, text=True)
    try:
        inventory(project, ["CR01"], listen_port=8443)
        lab.ssh(f"echo firewall:release > {HOOK}")  # stopped after nginx moved, before 443 is released
        try:
            interrupted = project.deploy(env=ENV, check=False)
        finally:
            lab.ssh(f"rm -f {HOOK}")
        assert interrupted.returncode != 0
        rules = on_host(lab, "nft list table inet bars_receiver")
        assert "tcp dport { 443, 8443 } drop" in rules
        restart_nginx(lab)
        assert tls_ma(lab, project, client, port=8443) == renewal["new"]
        recovers(project, lab)
        assert "tcp dport 8443 drop" in on_host(lab, "nft list table inet bars_receiver")
        inventory(project, ["CR01"])  # and back, uninterrupted
        project.deploy(env=ENV)
        assert tls_ma(lab, project, client) == renewal["new"]
    finally:
        stop.touch()
        output, _ = prober.communicate(timeout=60)
    assert "OPEN" not in output, output
    assert int(output.split("ATTEMPTS")[1]) > 20
