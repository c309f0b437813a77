"""The host scripts in files/scripts/: shellcheck-clean POSIX sh, and what lib.sh's recovery
does with each state an interrupted run of the previous or the current layout can leave."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from bars_receiver.certificates import operations as ops
from bars_receiver.scripts import COMMENT, FUNCTION, SCRIPTS, SOURCE_LIB, WORD, lib_for, lib_parts, script_text

from .test_certificate_install import KEY, OTHER_KEY, generation, issued, run, snapshot
from .test_renewal import NEXT_KEY, key_pem, legacy_dir, migrate  # noqa: F401  (fixture)

SHELLCHECK = shutil.which("shellcheck")


def test_every_script_is_shellcheck_clean():
    assert SHELLCHECK, "shellcheck is missing: bin/setup installs it (Debian package shellcheck)"
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert len(scripts) >= 10
    result = subprocess.run([SHELLCHECK, "-s", "sh", "-x", "-P", "SCRIPTDIR", *map(str, scripts)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


STANDALONE = {"ship_script"}  # ships the others, so it runs inline as it is, without lib.sh


@pytest.mark.parametrize("name", sorted(p.stem for p in SCRIPTS.glob("*.sh") if p.stem not in {"lib", *STANDALONE}))
def test_every_script_inlines_lib_and_parses_as_posix_sh(name):
    text = script_text(name)
    assert f"BARS_SCRIPT={name}\n" in text and "\nCOMPAT_NAMES=" in text  # lib.sh's top-level lines
    assert SOURCE_LIB not in text
    assert subprocess.run(["sh", "-n", "-c", text], capture_output=True).returncode == 0
    # Every lib.sh function named anywhere in the text (outside comments) is defined in it.
    _, functions = lib_parts()
    defined = {match.group(2) for match in FUNCTION.finditer(text)}
    named = set(WORD.findall(COMMENT.sub("", text))) & set(functions)
    assert named <= defined, sorted(named - defined)


def test_lib_splits_into_its_top_level_lines_and_every_function():
    preamble, functions = lib_parts()
    source = (SCRIPTS / "lib.sh").read_text()
    defined = re.findall(r"^([a-z_][a-z0-9_]*)\(\) \{$", source, re.M)
    assert sorted(defined) == sorted(functions) and len(functions) > 30
    assert not re.search(r"^[a-z_][a-z0-9_]*\(\) \{", preamble, re.M) and "COMPAT_NAMES=" in preamble
    assert len(preamble) + sum(map(len, functions.values())) == len(source)  # nothing lost


def test_a_script_carries_only_the_lib_functions_it_needs():
    """make_key.sh runs once per endpoint: sh reads only the functions it can call, not lib.sh's
    thirty-odd. A function lib.sh calls from another (fail from stage_generation) comes along."""
    _, functions = lib_parts()
    key = {match.group(2) for match in FUNCTION.finditer(script_text("make_key"))}
    assert {"point", "point_compat", "point_live", "remember_public", "step", "fail"} <= key
    assert "migrate" not in key and "served_digest" not in key and len(key) < len(functions) / 2
    assert "fail" in {match.group(2) for match in FUNCTION.finditer(lib_for("stage_generation x"))}


def test_the_standalone_shipper_sources_nothing_and_parses_as_posix_sh():
    for name in STANDALONE:
        text = (SCRIPTS / f"{name}.sh").read_text()
        assert SOURCE_LIB not in text
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


def shipped_file(directory: Path, name: str) -> str:
    """Script ``name`` as a file, as bars_receiver/shipping.py ships it to the host."""
    path = directory / f"{name}.sh"
    path.write_text(script_text(name))
    return str(path)


def test_batched_keys_and_csrs_are_made_on_every_core_and_never_replace_a_key(tmp_path):
    """make_keys.sh: one command for every missing key (make_key.sh under xargs -P), each 0600 in
    its own generation with its own copy of the one staged passphrase and its CSR beside it;
    make_csrs.sh: every CSR again, for the keys now there."""
    base = tmp_path / "base"
    base.mkdir()
    directories = [base / f"e{index}.nhs.uk" for index in range(3)]
    assert run("prepare", str(directories[0])).returncode == 0
    staged = directories[0] / ".staging" / "gen" / "key.pass"
    staged.write_text("batch-passphrase\n")
    staged.chmod(0o600)
    pairs = [value for directory in directories for value in (str(directory), directory.name)]
    made = run("make_keys", shipped_file(tmp_path, "make_key"), "live", "2048", "encrypted",
                str(tmp_path / "cache"), *pairs)
    assert made.returncode == 0, made.stderr
    requests = {directory: (directory / "csr.pem").read_text() for directory in directories}
    for directory in directories:
        assert requests[directory].startswith("-----BEGIN CERTIFICATE REQUEST-----\n")
        assert requests[directory].endswith("-----END CERTIFICATE REQUEST-----\n")
        assert (directory / "archive" / "1" / "csr.pem").stat().st_mode & 0o777 == 0o600
    csrs = run("make_csrs", shipped_file(tmp_path, "make_csr"), "live", str(tmp_path / "cache"), *pairs)
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
    again = run("make_keys", shipped_file(tmp_path, "make_key"), "live", "2048", "plain",
                str(tmp_path / "cache"), str(directories[1]), directories[1].name)
    assert again.returncode != 0 and "refusing to replace a private key" in again.stderr
    assert {directory: (directory / "key.pem").read_bytes() for directory in directories} == keys


# ---------------------------------------------------------------- batched installs and PKCS#12 builds


def endpoints_with_keys(base: Path, keys) -> list[Path]:
    directories = []
    for index, key in enumerate(keys):
        directory = base / f"e{index}.nhs.uk"
        directory.mkdir(parents=True, mode=0o700)
        generation(directory, key=key)
        directories.append(directory)
    return directories


def install_batch(base: Path, certificate, directories: list[Path], env=None) -> subprocess.CompletedProcess:
    """What certificates_installed runs: prepare.sh on base_dir, the one tar uploaded, the batch."""
    assert run("prepare", str(base)).returncode == 0
    bundle = base / ".staging" / "certificates.tar"
    files = (certificate.leaf_pem, certificate.chain_pem, certificate.ca_pem)
    bundle.write_bytes(ops.certificate_bundle([(directory.name, *files) for directory in directories]).getvalue())
    args = [shipped_file(base.parent, "switch"), str(base), str(bundle), str(base.parent / "cache"),
            *(v for d in directories for v in (str(d), "live"))]
    return subprocess.run(["sh", "-c", script_text("install_certificates"), "bars", *args],
                          capture_output=True, text=True, env=env)


def test_batched_install_switches_each_endpoint_alone_and_names_the_one_that_fails(tmp_path):
    """install_certificates.sh: one tar for every endpoint, switch.sh per endpoint under xargs -P.
    An endpoint whose certificate is not for its key is named and left as it was; the others are
    installed; the batch fails."""
    base = tmp_path / "base"
    directories = endpoints_with_keys(base, (KEY, OTHER_KEY, KEY))
    certificate = issued(tmp_path / "project")  # for KEY
    before = snapshot(directories[1])
    result = install_batch(base, certificate, directories)
    assert result.returncode == 1
    assert f"{directories[1]}: the new cert.pem is not for live/key.pem" in result.stderr
    assert "the others are installed" in result.stderr
    for directory in (directories[0], directories[2]):
        assert os.readlink(directory / "live") == "archive/2"
        assert (directory / "cert.pem").read_text() == certificate.leaf_pem
        assert (directory / "live" / "key.pem").samefile(directory / "archive" / "1" / "key.pem")
    assert snapshot(directories[1]) == before and os.readlink(directories[1] / "live") == "archive/1"
    assert not list(base.rglob(".staging"))
    assert run("repair_check", str(directories[1])).stdout == ""

    (directories[0] / "live" / "ca.pem").chmod(0o600)
    modes = run("install_certificates", shipped_file(tmp_path, "switch"), str(base), "", str(tmp_path / "cache"),
                str(directories[0]), "modes")
    assert modes.returncode == 0, modes.stderr
    assert (directories[0] / "live" / "ca.pem").stat().st_mode & 0o777 == 0o644


def test_a_bundle_missing_an_endpoints_files_switches_nothing(tmp_path):
    """install_certificates.sh extracts exactly the files each endpoint to install needs, into the
    generations it staged; one missing from the tar stops the batch before any switch."""
    base = tmp_path / "base"
    directories = endpoints_with_keys(base, (KEY, KEY))
    before = [snapshot(directory) for directory in directories]
    certificate = issued(tmp_path / "project")
    assert run("prepare", str(base)).returncode == 0
    bundle = base / ".staging" / "certificates.tar"
    files = (certificate.leaf_pem, certificate.chain_pem, certificate.ca_pem)
    bundle.write_bytes(ops.certificate_bundle([(directories[0].name, *files)]).getvalue())  # none for the second
    result = run("install_certificates", shipped_file(tmp_path, "switch"), str(base), str(bundle), str(tmp_path / "cache"),
                 *(v for d in directories for v in (str(d), "live")))
    assert result.returncode == 1 and "nothing was switched" in result.stderr
    assert all(os.readlink(directory / "live") == "archive/1" for directory in directories)
    # What was staged is what an interrupted run leaves: the next run's reconcile clears it.
    assert run("reconcile", str(base), str(tmp_path / "app")).returncode == 0
    assert [snapshot(directory) for directory in directories] == before and not list(base.rglob(".staging"))


def test_batched_install_stopped_by_the_hook_is_finished_by_reconcile(tmp_path):
    base = tmp_path / "base"
    (directory,) = endpoints_with_keys(base, (KEY,))
    hook = tmp_path / "stop"
    hook.write_text("switch:2\n")
    certificate = issued(tmp_path / "project")
    result = install_batch(base, certificate, [directory], env={**os.environ, "BARS_TEST_STOP": str(hook)})
    assert result.returncode != 0 and "test hook: switch: stopped after step 2" in result.stderr
    assert os.readlink(directory / "live") == "archive/1"  # stopped between archive and the rename
    assert run("repair_check", str(directory)).stdout != ""
    assert run("reconcile", str(base), str(tmp_path / "app")).returncode == 0  # rolled back: live as it was
    assert run("repair_check", str(directory)).stdout == "" and os.readlink(directory / "live") == "archive/1"
    assert install_batch(base, certificate, [directory]).returncode == 0  # the next run installs it
    assert (directory / "chain.pem").read_text() == certificate.chain_pem


def test_batched_pfx_builds_copy_the_one_uploaded_password_and_name_a_failure(tmp_path):
    """build_pfxs.sh: the CI-secret password uploaded once into the first hand-off's staging is
    copied (0600) to the others; build_pfx.sh per endpoint under xargs -P; a build that fails is
    named and leaves its hand-off as it was; no staged password outlives the batch."""
    base, app = tmp_path / "base", tmp_path / "app"
    directories = endpoints_with_keys(base, (KEY, KEY, KEY))
    app.mkdir(mode=0o700)
    certificate = issued(tmp_path / "project")
    result = install_batch(base, certificate, directories)
    assert result.returncode == 0, result.stderr
    (directories[1] / "live" / "key.pass").write_text("wrong-passphrase\n")
    handoffs = [app / d.name for d in directories]
    assert run("prepare", str(handoffs[0])).returncode == 0
    staged = handoffs[0] / ".staging" / "gen" / "pfx.pass"
    staged.write_text("uploaded-secret\n")
    staged.chmod(0o600)
    args = [shipped_file(tmp_path, "build_pfx"), "modern", "env", "root", "700", "600", "0123456789abcdef", "1000",
            str(tmp_path / "cache"),
            *(v for d, h in zip(directories, handoffs) for v in (str(d), str(h), d.name, "upload"))]
    result = run("build_pfxs", *args)
    assert result.returncode == 1
    assert f"{directories[1]}/live/key.pem: openssl cannot read it" in result.stderr
    assert "the others are built" in result.stderr
    for directory, handoff in ((directories[0], handoffs[0]), (directories[2], handoffs[2])):
        assert (handoff / "pfx.pass").read_text() == "uploaded-secret\n"
        assert (handoff / "pfx.pass").stat().st_mode & 0o777 == 0o600
        key, cert, _ = pkcs12.load_key_and_certificates((handoff / "receiver.pfx").read_bytes(), b"uploaded-secret")
        assert cert.public_bytes(serialization.Encoding.PEM).decode() == certificate.leaf_pem
        assert (directory / "pfx.inputs").exists()
    assert not (handoffs[1] / "live").exists() and not (directories[1] / "pfx.inputs").exists()
    assert not list(app.rglob(".staging")) and not list(app.rglob("*.pass.*"))

# A multi-line string that reads as shell: the host scripts' grammar, not prose.
SHELL_LINE = re.compile(r"(^|\n)\s*(set -e|if \[|if !|fi$|done$|then$|while |for \w+ in|\w+=\$\d|exec |rm -f|mv -f)", re.M)


def shell_strings(source: str) -> list[int]:
    """Line numbers of string literals (docstrings aside) spanning lines that read as shell."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and "\n" in node.value.strip() and SHELL_LINE.search(node.value)]


def test_the_shell_detector_finds_a_script_in_a_string():
    assert shell_strings('X = """\nset -e\nrm -f "$1"\n"""\n') == [1]
    assert shell_strings('def f():\n    """Runs\n    rm -f on it."""\n    return "one line: rm -f x"\n') == []


def test_no_shell_script_lives_in_a_python_string():
    """Every host script is a file here (issue 12): Python only chooses which runs, with what."""
    root = SCRIPTS.parent.parent
    sources = [*sorted((root / "bars_receiver").rglob("*.py")), *sorted((root / "tasks").glob("*.py")),
               root / "deploy.py"]
    assert len(sources) > 20
    found = {str(path.relative_to(root)): lines for path in sources if (lines := shell_strings(path.read_text()))}
    assert found == {}, f"shell in Python strings (move it to files/scripts/): {found}"
