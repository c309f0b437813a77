"""Host scripts shipped by content hash (bars_receiver/shipping.py): which commands an operation
yields for a script the host holds, lacks, or has just been sent; the fact that says what it
holds; and the install command, run for real in a temporary directory."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host

from bars_receiver.scripts import script_text
from bars_receiver.shipping import (
    SCRIPTS_DIR, SHIPPED, HostRecords, ShippedScripts, current_hashes, host_script, script_hash, shipped,
)


class FakeData(dict):
    def get(self, key, default=None):
        return super().get(key, default)


class FakeHost:
    def __init__(self, record: ShippedScripts | None):
        self.data = FakeData({SHIPPED: record} if record is not None else {})


def collect(record: ShippedScripts | None, name: str, *args) -> list:
    with ctx_host.use(FakeHost(record)):
        return list(host_script(name, *args))


def words(command: StringCommand) -> str:
    return str(command.get_raw_value())


def test_a_script_the_host_holds_is_run_from_its_hash_with_nothing_uploaded():
    digest = script_hash("reconcile")
    record = ShippedScripts(directory_ready=True, present={digest})
    commands = collect(record, "reconcile", "/etc/bars-receiver", "/etc/bars receiver-app")
    assert len(commands) == 1
    assert words(commands[0]) == f"sh {SCRIPTS_DIR}/{digest}.sh /etc/bars-receiver '/etc/bars receiver-app'"
    assert len(digest) == 64 and digest == hashlib.sha256(script_text("reconcile").encode()).hexdigest()


def test_a_missing_script_is_uploaded_under_a_temporary_name_checked_renamed_then_run_once():
    record = ShippedScripts(directory_ready=False, stale={"0" * 64 + ".sh"})
    digest = script_hash("retire")
    commands = collect(record, "retire", "/b", "/a", "x.nhs.uk", "int")
    mkdir, upload, install, run = commands
    assert "mkdir -p" in words(mkdir) and "chmod 700" in words(mkdir) and SCRIPTS_DIR in words(mkdir)
    assert isinstance(upload, FileUploadCommand)
    assert upload.dest == f"{SCRIPTS_DIR}/.{digest}.tmp" and upload.src.getvalue() == script_text("retire")
    assert words(install).endswith(f"install {SCRIPTS_DIR} {SCRIPTS_DIR}/.{digest}.tmp {digest} "
                                   f"{SCRIPTS_DIR}/{'0' * 64}.sh")
    assert words(run) == f"sh {SCRIPTS_DIR}/{digest}.sh /b /a x.nhs.uk int"
    # The record now holds it: the next operation of this run only runs it; nothing stale is left.
    assert record.present == {digest} and record.directory_ready and not record.stale
    assert len(collect(record, "retire", "/b", "/a", "y.nhs.uk", "int")) == 1
    # Another script: uploaded, but the directory is not made again.
    assert [type(command) for command in collect(record, "app_reload", "u")] == \
        [FileUploadCommand, StringCommand, StringCommand]


def test_a_changed_script_is_a_new_hash_and_is_uploaded_again(monkeypatch):
    old = script_hash("prepare")
    record = ShippedScripts(directory_ready=True, present={old})
    monkeypatch.setattr("bars_receiver.shipping.script_text", lambda name: script_text(name) + "# changed\n")
    monkeypatch.setattr("bars_receiver.shipping.script_hash",
                        lambda name: hashlib.sha256((script_text(name) + "# changed\n").encode()).hexdigest())
    commands = collect(record, "prepare", "/d")
    assert [type(command) for command in commands] == [FileUploadCommand, StringCommand, StringCommand]
    assert old not in words(commands[-1])


def test_a_dry_run_or_change_check_stops_at_the_first_command_and_records_nothing():
    """pyinfra's change check (and --dry) takes an operation's first command and stops: the record
    must not claim an upload that never ran."""
    record = ShippedScripts(directory_ready=True)
    with ctx_host.use(FakeHost(record)):
        generator = host_script("prepare", "/d")
        assert isinstance(next(generator), FileUploadCommand)
        generator.close()
    assert not record.present


def test_an_operation_called_ad_hoc_uploads_its_script():
    commands = collect(None, "prepare", "/d")
    assert isinstance(commands[1], FileUploadCommand) and len(commands) == 4


def test_secrets_and_script_text_never_reach_the_command_line():
    record = ShippedScripts(directory_ready=True)
    for command in collect(record, "make_key", "/d", "live", 2048, "encrypted"):
        if isinstance(command, StringCommand):
            assert "stage_clear()" not in words(command)


def test_shipped_returns_the_path_for_a_helper_script():
    record = ShippedScripts(directory_ready=True, present={script_hash("make_key")})
    with ctx_host.use(FakeHost(record)):
        generator = shipped("make_key")
        try:
            next(generator)
            raise AssertionError("nothing should be uploaded")
        except StopIteration as done:
            assert done.value == f"{SCRIPTS_DIR}/{script_hash('make_key')}.sh"


def run_fact(base: Path, scripts: Path):
    command = HostRecords().command(base_dir=str(base), scripts_dir=str(scripts))
    output = subprocess.run(["sh", "-c", words(command)], capture_output=True, text=True, check=True).stdout
    return HostRecords().process(output.splitlines())


def test_the_fact_lists_checked_hashes_stale_names_and_the_record(tmp_path):
    base, scripts = tmp_path / "base", tmp_path / "scripts"
    base.mkdir()
    empty = run_fact(base, scripts)
    assert empty.managed_by is None and not empty.scripts.present and not empty.scripts.directory_ready
    scripts.mkdir(mode=0o700)
    good = script_hash("prepare")
    (scripts / f"{good}.sh").write_text(script_text("prepare"))
    corrupt = script_hash("retire")
    (scripts / f"{corrupt}.sh").write_text("half")
    (scripts / f"{'a' * 64}.sh").write_text("an old version")
    (scripts / f".{good}.tmp").write_text("an interrupted upload")
    (base / "managed-by").write_text("inventory=int\nenvironment=int\n")
    value = run_fact(base, scripts)
    assert value.managed_by == {"inventory": "int", "environment": "int"}
    assert value.scripts.present == ({good} if os.geteuid() == 0 else set())  # root:root 0700 only
    assert value.scripts.stale == {f"{corrupt}.sh", f"{'a' * 64}.sh"}
    assert value.scripts.directory_ready == (os.geteuid() == 0)
    assert good in current_hashes() and "a" * 64 not in current_hashes()


def test_the_fact_trusts_only_a_root_only_directory():
    line = f"{script_hash('prepare')}  {script_hash('prepare')}.sh"
    ready = HostRecords().process(["@@scripts 700 0 0", line]).scripts
    assert ready.directory_ready and ready.present == {script_hash("prepare")}
    for stat in ("755 0 0", "700 1000 0", ""):
        loose = HostRecords().process([f"@@scripts {stat}", line]).scripts
        assert not loose.directory_ready and not loose.present


def runnable(command: str) -> str:
    """The install command as this test can run it: without root, chown to root is the one step
    it cannot take (the lab runs it whole, as root)."""
    return command if os.geteuid() == 0 else command.replace('chown root:root "$f" && ', "")


def install(tmp_path: Path, content: str, digest: str, *stale: str) -> subprocess.CompletedProcess:
    record = ShippedScripts(directory=str(tmp_path), directory_ready=True, stale=set(stale))
    with ctx_host.use(FakeHost(record)):
        commands = list(host_script("prepare"))
    raw = words(commands[1]).replace(script_hash("prepare"), digest)
    (tmp_path / f".{digest}.tmp").write_text(content)
    return subprocess.run(["sh", "-c", runnable(raw)], capture_output=True, text=True)


def test_install_renames_only_a_whole_upload_and_prunes_old_hashes(tmp_path):
    (tmp_path / "old.sh").write_text("old")
    text = "echo hello\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    result = install(tmp_path, text, digest, "old.sh")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{digest}.sh").read_text() == text
    assert (tmp_path / f"{digest}.sh").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "old.sh").exists() and not (tmp_path / f".{digest}.tmp").exists()
    half = install(tmp_path, text[:4], "b" * 64)
    assert half.returncode == 1 and "does not hash to" in half.stderr
    assert not (tmp_path / f"{'b' * 64}.sh").exists() and not (tmp_path / f".{'b' * 64}.tmp").exists()


def test_a_damaged_file_under_the_hash_being_installed_is_replaced_not_pruned_after_it(tmp_path):
    """The fact lists a current hash whose content is wrong as stale; installing that very hash
    renames over it and must not then remove what it has just installed."""
    digest = script_hash("prepare")
    record = ShippedScripts(directory=str(tmp_path), directory_ready=True, stale={f"{digest}.sh", "old.sh"})
    with ctx_host.use(FakeHost(record)):
        commands = list(host_script("prepare", "/d"))
    install = words(commands[1])
    assert install.endswith(f"install {tmp_path} {tmp_path}/.{digest}.tmp {digest} {tmp_path}/old.sh")
    (tmp_path / f"{digest}.sh").write_text("damaged")
    (tmp_path / "old.sh").write_text("old")
    (tmp_path / f".{digest}.tmp").write_text(script_text("prepare"))
    result = subprocess.run(["sh", "-c", runnable(install)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{digest}.sh").read_text() == script_text("prepare") and not (tmp_path / "old.sh").exists()
