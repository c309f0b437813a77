"""The host scripts in files/scripts/: shellcheck-clean POSIX sh, and what lib.sh's recovery
does with each state an interrupted run of the previous or the current layout can leave."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bars_receiver.scripts import SCRIPTS, script_text

from .test_certificate_install import KEY, generation, run
from .test_renewal import NEXT_KEY, key_pem, legacy_dir, migrate  # noqa: F401  (fixture)

SHELLCHECK = shutil.which("shellcheck")


def test_every_script_is_shellcheck_clean():
    assert SHELLCHECK, "shellcheck is missing: bin/setup installs it (Debian package shellcheck)"
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert len(scripts) >= 10
    result = subprocess.run([SHELLCHECK, "-s", "sh", "-x", "-P", "SCRIPTDIR", *map(str, scripts)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(p.stem for p in SCRIPTS.glob("*.sh") if p.stem != "lib"))
def test_every_script_inlines_lib_and_parses_as_posix_sh(name):
    text = script_text(name)
    assert f"BARS_SCRIPT={name}\n" in text and "stage_clear()" in text
    assert subprocess.run(["sh", "-n", "-c", text], capture_output=True).returncode == 0


def public(directory: Path, role: str) -> str:
    passfile = directory / role / "key.pass"
    passin = f"file:{passfile}" if passfile.exists() else "pass:"
    return subprocess.run(["openssl", "pkey", "-in", str(directory / role / "key.pem"), "-passin", passin, "-pubout"],
                          capture_output=True, text=True, check=True).stdout


def test_half_swapped_previous_layout_finds_each_key_its_passphrase(legacy_dir):  # noqa: F811
    """The previous swap stopped between moving next/key.pass and next/key.pem: key.pass is the
    next key's, the live key's is only in the archive the swap had made."""
    archived = legacy_dir / "archive" / "20260101T000000Z-0123456789abcdef"
    archived.mkdir(parents=True)
    os.link(legacy_dir / "key.pass", archived / "key.pass")
    os.replace(legacy_dir / "next" / "key.pass", legacy_dir / "key.pass")
    migrate(legacy_dir)
    assert public(legacy_dir, "live") == public(legacy_dir, "archive/1")
    assert (legacy_dir / "live" / "key.pass").read_bytes() == b"pw"
    assert (legacy_dir / "next" / "key.pass").read_bytes() == b"pw2"
    assert (legacy_dir / "live" / "chain.pem").exists()  # still the live key's certificate
    assert run("repair_check", str(legacy_dir)).stdout == ""


def test_key_made_but_never_pointed_at_is_adopted_as_next(tmp_path):
    directory = tmp_path / "base" / "x.nhs.uk"
    directory.mkdir(parents=True)
    generation(directory)
    (directory / "archive" / "1" / "chain.pem").write_text("cert")
    stray = directory / "archive" / "2"
    stray.mkdir()
    (stray / "key.pem").write_bytes(key_pem(NEXT_KEY, b"pw2"))
    (directory / ".staging").mkdir()
    (directory / ".staging" / "key.pass").write_text("secret")
    reasons = run("repair_check", str(directory)).stdout.splitlines()
    assert "staging left by an interrupted run" in reasons and "next does not name generation 2" in reasons
    assert run("reconcile", str(directory.parent), str(tmp_path / "app")).returncode == 0
    assert os.readlink(directory / "next") == "archive/2" and not (directory / ".staging").exists()
    assert run("repair_check", str(directory)).stdout == ""


def test_next_left_naming_the_live_key_after_a_swap_is_dropped(tmp_path):
    directory = tmp_path / "base" / "x.nhs.uk"
    directory.mkdir(parents=True)
    gen = generation(directory, key=KEY)
    (directory / "next").symlink_to("archive/2")
    (directory / "archive" / "2").mkdir()
    os.link(gen / "key.pem", directory / "archive" / "2" / "key.pem")
    assert run("repair_check", str(directory)).stdout.splitlines() == ["next names no pending key"]
    assert run("reconcile", str(directory.parent), str(tmp_path / "app")).returncode == 0
    assert not (directory / "next").exists() and os.readlink(directory / "live") == "archive/1"


def test_stop_hook_kills_the_script_after_the_named_step(tmp_path):
    directory = tmp_path / "x.nhs.uk"
    directory.mkdir()
    hook = tmp_path / "stop"
    hook.write_text("make_key:2\n")
    env = {**os.environ, "BARS_TEST_STOP": str(hook)}
    assert run("prepare", str(directory)).returncode == 0
    result = subprocess.run(["sh", "-c", script_text("make_key"), "bars", str(directory), "live", "2048", "plain"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == -9 and "stopped after step 2" in result.stderr
    assert (directory / "archive" / "1" / "key.pem").exists() and not (directory / "live").exists()
    assert (directory / ".staging").exists()  # a crash tidies nothing: reconcile does
    assert run("reconcile", str(tmp_path), str(tmp_path / "app")).returncode == 0
    assert os.readlink(directory / "live") == "archive/1" and not (directory / ".staging").exists()


def test_migration_stopped_at_every_step_is_finished_by_the_next_run(legacy_dir, tmp_path):  # noqa: F811
    """reconcile.sh itself stopped after each step of moving the previous layout: the next run
    finishes it, every file keeps its inode, live and next name the right keys, and a further
    run changes nothing."""
    from .test_renewal import inodes

    original = tmp_path / "original"
    shutil.copytree(legacy_dir.parent, original, copy_function=os.link)  # same inodes, a second name each
    keys = {role: public(legacy_dir, role) for role in ("", "next")}
    steps = 0
    for step in range(1, 10):
        base = tmp_path / f"run-{step}"
        shutil.copytree(original, base, copy_function=os.link)
        directory = base / legacy_dir.name
        before = inodes(directory)
        hook = tmp_path / "stop"
        hook.write_text(f"reconcile:{step}\n")
        result = subprocess.run(["sh", "-c", script_text("reconcile"), "bars", str(base), str(tmp_path / "app")],
                                capture_output=True, text=True, env={**os.environ, "BARS_TEST_STOP": str(hook)})
        if result.returncode == 0:
            break
        assert result.returncode == -9, result.stderr
        steps = step
        migrate(directory)
        assert inodes(directory) >= before  # nothing lost (an interrupted step may leave a spare link)
        assert public(directory, "live") == keys[""] and public(directory, "next") == keys["next"]
        assert (directory / "live" / "chain.pem").exists()
        assert run("repair_check", str(directory)).stdout == ""
        settled = {str(p.relative_to(directory)): (p.is_symlink() and os.readlink(p)) for p in directory.rglob("*")}
        migrate(directory)
        assert {str(p.relative_to(directory)): (p.is_symlink() and os.readlink(p)) for p in directory.rglob("*")} == settled
    assert steps >= 4


def test_batched_keys_and_csrs_are_made_on_every_core_and_never_replace_a_key(tmp_path):
    """make_keys.sh: one command for every missing key (make_key.sh under xargs -P), each 0600 in
    its own generation with its own copy of the one staged passphrase; make_csrs.sh: every CSR."""
    base = tmp_path / "base"
    base.mkdir()
    directories = [base / f"e{index}.nhs.uk" for index in range(3)]
    assert run("prepare", str(directories[0])).returncode == 0
    staged = directories[0] / ".staging" / "gen" / "key.pass"
    staged.write_text("batch-passphrase\n")
    staged.chmod(0o600)
    made = run("make_keys", script_text("make_key"), "live", "2048", "encrypted", *map(str, directories))
    assert made.returncode == 0, made.stderr
    pairs = [value for directory in directories for value in (str(directory), directory.name)]
    csrs = run("make_csrs", script_text("make_csr"), "live", *pairs)
    assert csrs.returncode == 0, csrs.stderr
    for directory in directories:
        generation_dir = directory / "archive" / "1"
        assert os.readlink(directory / "live") == "archive/1" and not (directory / ".staging").exists()
        for name in ("key.pem", "key.pass"):
            assert (generation_dir / name).stat().st_mode & 0o777 == 0o600
        assert (generation_dir / "key.pass").read_text() == "batch-passphrase\n"
        request = subprocess.run(["openssl", "req", "-in", str(directory / "csr.pem"), "-noout", "-pubkey", "-subject"],
                                 capture_output=True, text=True, check=True).stdout
        assert public(directory, "live") in request and f"CN = {directory.name}" in request
    keys = {directory: (directory / "key.pem").read_bytes() for directory in directories}

    assert run("prepare", str(directories[1])).returncode == 0
    again = run("make_keys", script_text("make_key"), "live", "2048", "plain", str(directories[1]))
    assert again.returncode != 0 and "refusing to replace a private key" in again.stderr
    assert {directory: (directory / "key.pem").read_bytes() for directory in directories} == keys
