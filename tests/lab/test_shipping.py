"""Host scripts shipped by content hash (bars_receiver/shipping.py), through the real CLI on a real
lab host: a first run uploads each script it needs once, into the root-only scripts directory; an
unchanged run uploads nothing and runs no shipped script; a changed script is uploaded again under
its new hash and its old hash is pruned; --dry uploads nothing."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest

from bars_receiver.shipping import SCRIPTS_DIR
from lab.project import endpoint, fqdn

UPLOAD = re.compile(r"Attempting upload of .+? to " + re.escape(SCRIPTS_DIR) + r"/\.([0-9a-f]{64})\.tmp")


def uploads(output: str) -> list[str]:
    return UPLOAD.findall(output)


def listing(lab) -> dict[str, str]:
    """Every entry of the scripts directory: name -> "mode owner group" (temporary names too)."""
    out = lab.ssh(f"find {SCRIPTS_DIR} -mindepth 1 -printf '%f %m %u %g\\n'").stdout
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()}


def hash_of(project, name: str) -> str:
    """The hash the project copy ships for files/scripts/<name>.sh (with the lib.sh functions it
    needs), as the project copy's own code makes it from its own files."""
    code = f"from bars_receiver.scripts import script_text; print(script_text({name!r}), end='')"
    text = subprocess.run([sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True, check=True).stdout
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def first_run(project):
    project.write_inventory([endpoint("SHP01"), endpoint("SHP02")])
    return project.deploy("--debug")


def test_a_first_run_uploads_each_script_it_needs_once_root_only(first_run, project, lab):
    sent = uploads(first_run.output)
    assert len(sent) == len(set(sent)), sent
    needed = {hash_of(project, name) for name in ("prepare", "make_keys", "make_key")}  # each key with its CSR
    assert needed <= set(sent)
    entries = listing(lab)
    assert entries == {f"{digest}.sh": "600 root root" for digest in sent}  # nothing half-written left
    assert lab.ssh(f"stat -c '%a %U %G' {SCRIPTS_DIR}").stdout.split() == ["700", "root", "root"]
    for digest in sent:
        assert lab.ssh(f"sha256sum < {SCRIPTS_DIR}/{digest}.sh").stdout.split()[0] == digest
    # Operations run the shipped file; no script text travels on their command lines.
    assert f"sh {SCRIPTS_DIR}/{hash_of(project, 'make_keys')}.sh {SCRIPTS_DIR}/{hash_of(project, 'make_key')}.sh" \
        in first_run.output


def test_an_unchanged_run_uploads_nothing_and_changes_nothing(first_run, project, lab):
    before = listing(lab)
    run = project.deploy("--debug")
    assert run.changed == 0
    assert uploads(run.output) == [] and "Attempting upload of" not in run.output
    assert f"sh {SCRIPTS_DIR}/" not in run.output  # no operation ran a script
    assert listing(lab) == before


def test_dry_run_uploads_nothing(first_run, project, lab):
    before = listing(lab)
    script = project.root / "files" / "scripts" / "make_key.sh"
    original = script.read_text()
    project.write_inventory([endpoint("SHP01"), endpoint("SHP02"), endpoint("SHP03")])
    script.write_text(original + "# a dry run must not ship this\n")
    try:
        run = project.deploy("--dry", "--debug")
        assert "Attempting upload of" not in run.output
        assert listing(lab) == before
        assert lab.ssh(f"test -e /etc/bars-receiver/{fqdn('SHP03')}", check=False).returncode != 0
    finally:
        script.write_text(original)
        project.write_inventory([endpoint("SHP01"), endpoint("SHP02")])


def test_a_changed_script_is_uploaded_under_its_new_hash_and_the_old_one_pruned(first_run, project, lab):
    before = listing(lab)
    old = hash_of(project, "make_key")
    script = project.root / "files" / "scripts" / "make_key.sh"
    script.write_text(script.read_text() + "# changed: a new version of make_key.sh\n")
    new = hash_of(project, "make_key")
    project.write_inventory([endpoint("SHP01"), endpoint("SHP02"), endpoint("SHP03")])  # needs a new key
    run = project.deploy("--debug")
    assert uploads(run.output) == [new]
    after = listing(lab)
    assert f"{new}.sh" in after and f"{old}.sh" not in after
    assert set(after) == set(before) - {f"{old}.sh"} | {f"{new}.sh"}
    assert lab.ssh(f"stat -L -c '%a %U' /etc/bars-receiver/{fqdn('SHP03')}/key.pem").stdout.split() == ["600", "root"]
    again = project.deploy("--debug")
    assert again.changed == 0 and "Attempting upload of" not in again.output
