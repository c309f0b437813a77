"""The host snapshot (bars_receiver/snapshot.py): many facts in one command give exactly what each
fact gives alone; an unknown value never lets a task skip an operation; the predicates the tasks
use agree with the operations they stand in for."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pyinfra.api import FactBase, StringCommand
from pyinfra.context import ctx_host
from pyinfra.facts.files import Directory, File, Sha256File

from bars_receiver.certificates.facts import CertificateFiles
from bars_receiver.firewall.nftables import NftablesTable
from bars_receiver.host_files import file_atomically, file_settled, owned, private_directory
from bars_receiver.keys.facts import PUBLIC_KEY_CACHE, EndpointFiles
from bars_receiver.nginx.default_site import DefaultSite, default_site_settled
from bars_receiver.snapshot import (
    MAX_COMMAND_BYTES, HostSnapshot, Snapshot, host_reads, read, service_settled,
)

ME = os.getuid()


def shell(command) -> tuple[int, list[str]]:
    text = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
    result = subprocess.run(["sh", "-c", text], capture_output=True, text=True)
    return result.returncode, result.stdout.splitlines()


def alone(one) -> object:
    """What pyinfra's get_fact makes of the fact's own command run by itself."""
    fact = one.fact()
    command = fact.command(**one.kwargs)
    status, lines = shell(command)
    assert status == 0
    return fact.process(lines) if lines else fact.default()


def without_atime(value):
    """A File fact's value less its access time, which reading the file (Sha256File) may move."""
    return {key: item for key, item in value.items() if key != "atime"} if isinstance(value, dict) else value


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir(mode=0o750)
    (tmp_path / "file").write_text("content\n")
    (tmp_path / "file").chmod(0o640)
    return tmp_path


def test_one_command_gives_what_each_fact_gives_alone(tree):
    reads = (
        read(Directory, path=str(tree / "dir")),
        read(Directory, path=str(tree / "missing")),
        read(File, path=str(tree / "file")),
        read(File, path=str(tree / "dir")),  # not a file
        read(Sha256File, path=str(tree / "file")),
        read(Sha256File, path=str(tree / "missing")),
    )
    status, lines = shell(Snapshot().command(reads=reads))
    assert status == 0
    snapshot = HostSnapshot.of(reads, Snapshot().process(lines))
    assert set(snapshot.values) == set(reads)
    for one in reads:
        assert without_atime(snapshot.values[one]) == without_atime(alone(one)), one
    assert snapshot.values[reads[0]]["mode"] == 750 and snapshot.values[reads[1]] is None


def test_a_fact_whose_tool_is_missing_or_whose_command_fails_is_unknown(tree, monkeypatch):
    monkeypatch.setattr(NftablesTable, "requires_command", lambda self, **kwargs: "bars-no-such-tool")
    failing = read(DefaultSite)
    monkeypatch.setattr(DefaultSite, "command", lambda self: "echo partial; exit 3")
    reads = (read(NftablesTable, family="inet", table="t"), failing, read(Directory, path=str(tree / "dir")))
    status, lines = shell(Snapshot().command(reads=reads))
    snapshot = HostSnapshot.of(reads, Snapshot().process(lines))
    assert status == 0 and list(snapshot.values) == [reads[2]]
    assert not snapshot.settled(lambda live: True, reads[0])  # unknown: the operation is declared
    assert not snapshot.settled(default_site_settled, failing)
    assert snapshot.settled(lambda meta: meta["mode"] == 750, reads[2])
    assert not snapshot.settled(lambda meta: meta["mode"] == 700, reads[2])


class Waits(FactBase):
    """Waits up to 5 s for the file Touches makes: only when both run at once does it see it."""

    def command(self, path, tries=50):
        return f'i=0; while [ ! -f {path} ] && [ $i -lt {tries} ]; do sleep 0.1; i=$((i + 1)); done; cat {path}'

    def process(self, output):
        return output


class Touches(FactBase):
    def command(self, path):
        return f"echo made > {path}.new && mv {path}.new {path} && echo touched"

    def process(self, output):
        return output


def test_reads_run_at_once_and_come_back_in_order(tmp_path):
    reads = (read(Waits, path=str(tmp_path / "flag")), read(Touches, path=str(tmp_path / "flag")))
    status, lines = shell(Snapshot().command(reads=reads))
    snapshot = HostSnapshot.of(reads, Snapshot().process(lines))
    assert status == 0
    assert snapshot.values == {reads[0]: ["made"], reads[1]: ["touched"]}  # the first waited for the second


def test_without_a_temporary_directory_the_reads_run_in_turn(tree, tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "mktemp").write_text("#!/bin/sh\nexit 1\n")
    (stubs / "mktemp").chmod(0o755)
    reads = (read(Directory, path=str(tree / "dir")), read(Sha256File, path=str(tree / "file")),
             read(Waits, path=str(tmp_path / "never"), tries=3))
    text = Snapshot().command(reads=reads).get_raw_value()
    result = subprocess.run(["sh", "-c", text], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"})
    snapshot = HostSnapshot.of(reads, Snapshot().process(result.stdout.splitlines()))
    assert result.returncode == 0
    assert set(snapshot.values) == set(reads[:2])  # the waiting read gave up: nothing ran beside it
    for one in reads[:2]:
        assert without_atime(snapshot.values[one]) == without_atime(alone(one))


def test_an_interrupted_snapshot_leaves_no_temporary_directory(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    reads = (read(Touches, path=str(tmp_path / "flag")), read(Waits, path=str(tmp_path / "never"), tries=20))
    text = Snapshot().command(reads=reads).get_raw_value()
    shell_process = subprocess.Popen(["sh", "-c", text], env={**os.environ, "TMPDIR": str(scratch)},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(100):  # until the first read has written its file
        if list(scratch.glob("*/0")) and (tmp_path / "flag").exists():
            break
        time.sleep(0.05)
    assert list(scratch.iterdir())
    shell_process.send_signal(signal.SIGHUP)
    shell_process.communicate(timeout=10)
    assert shell_process.returncode != 0
    assert not list(scratch.iterdir())  # what the reads printed went with it


class FactsHost:
    """A host whose get_fact answers from a table, counting each read."""

    def __init__(self, facts):
        self.facts, self.reads, self.noops = facts, 0, []

    def get_fact(self, fact, **kwargs):
        self.reads += 1
        return self.facts[fact]

    def noop(self, description):
        self.noops.append(description)


def test_a_collected_fact_comes_from_the_snapshot_or_is_read_then():
    held = read(Sha256File, path="/etc/x")
    snapshot = HostSnapshot({held: "ab" * 32})
    host = FactsHost({Sha256File: "cd" * 32})
    with ctx_host.use(host):
        assert snapshot.fact(Sha256File, path="/etc/x") == "ab" * 32 and host.reads == 0
        assert snapshot.fact(Sha256File, path="/etc/y") == "cd" * 32 and host.reads == 1


def test_the_snapshot_command_fits_in_one_argument():
    """The remote shell gets the whole command as one argument (Linux: at most 128 KiB)."""
    reads = host_reads("/etc/bars-receiver", "/etc/bars-receiver-app", "/etc/bars-receiver/client-crl.pem") + (
        read(EndpointFiles, base_dir="/etc/bars-receiver", cache_dir=PUBLIC_KEY_CACHE, cache_write=True),
        read(CertificateFiles, base_dir="/etc/bars-receiver", app_dir="/etc/bars-receiver-app",
             password_source="env", app_group="bars-app", cache_write=True),
    )
    size = len(Snapshot().command(reads=reads).get_raw_value().encode())
    print(size)
    assert size < MAX_COMMAND_BYTES


@pytest.mark.parametrize("meta, sha_ok, mode, expected", [
    ({"mode": 644, "user": "root", "group": "root"}, True, "644", True),
    ({"mode": 664, "user": "root", "group": "root"}, True, "644", False),
    ({"mode": 644, "user": "app", "group": "root"}, True, "644", False),
    ({"mode": 644, "user": "root", "group": "root"}, False, "644", False),
    (None, False, "644", False),
])
def test_file_settled_agrees_with_file_atomically(meta, sha_ok, mode, expected):
    from bars_receiver.certificates.x509 import sha256_hex

    content = "unit\n"
    sha = sha256_hex(content.encode()) if sha_ok else "00" * 32
    host = FactsHost({File: meta, Sha256File: sha})
    with ctx_host.use(host):
        commands = list(file_atomically._inner(path="/etc/x", content=content, mode=mode))
    assert file_settled(meta, sha, content, mode) == expected == (commands == [])


@pytest.mark.parametrize("meta, expected", [
    ({"mode": 700, "user": "root", "group": "root"}, True),
    ({"mode": 755, "user": "root", "group": "root"}, False),
    ({"mode": 700, "user": "root", "group": "adm"}, False),
    (None, False),
    (False, False),
])
def test_owned_agrees_with_private_directory(meta, expected):
    host = FactsHost({Directory: meta})
    with ctx_host.use(host):
        commands = list(private_directory._inner(path="/etc/bars-receiver"))
    assert owned(meta, "700", "root") == expected == (commands == [])


def test_service_settled_only_when_active_and_enabled():
    assert service_settled({"nginx.service": True}, {"nginx.service": True}, "nginx.service")
    assert not service_settled({"nginx.service": False}, {"nginx.service": True}, "nginx.service")
    assert not service_settled({"nginx.service": True}, {}, "nginx.service")
    assert not service_settled({}, {}, "nginx.service")


def test_default_site_settled_only_when_not_enabled():
    assert default_site_settled("absent")
    assert not default_site_settled("untouched") and not default_site_settled("modified")
