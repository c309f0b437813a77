"""The host-side fact output cache (files/scripts/cached_fact.sh): an unchanged directory is
answered from the kept output without running the fact script; any change in the directories
under it (a new file, a mode, content with its mtime put back, a rename), to the script or to its
arguments runs the script again, and a change to the root's own files (which no fact reads) does
not; a --dry run (cache_write no) writes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bars_receiver.fact_cache import FACT_CACHE, FRAME, cached_fact, unframed
from bars_receiver.scripts import script_text

# A stand-in fact: lists the files of the endpoint directory "e" with their content (as the real
# facts read only the directories under a root), and counts its own runs in a file outside the
# root (so counting does not change what it reads).
FACT = """
echo "run" >> "$2"
for f in "$1"/e/*; do [ -f "$f" ] && printf '%s %s\\n' "${f##*/}" "$(cat "$f")"; done
exit 0
"""


@pytest.fixture
def place(tmp_path):
    root = tmp_path / "base"
    (root / "e").mkdir(parents=True)
    (root / "e" / "a").write_text("one")
    return root, tmp_path / "cache" / "fact", tmp_path / "runs"


def read(place, script: str = FACT, write: str = "yes", extra: str = "") -> str:
    root, cache, runs = place
    result = subprocess.run(["sh", "-c", script_text("cached_fact"), "bars", str(cache), write, str(root), "",
                             script, str(root), str(runs), *([extra] if extra else [])],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith(FRAME)  # one line, whatever the size
    return "".join(line + "\n" for line in unframed(result.stdout.splitlines()))


def runs(place) -> int:
    return len(place[2].read_text().splitlines()) if place[2].exists() else 0


def test_unchanged_directory_is_answered_from_the_cache(place):
    assert read(place) == "a one\n" and runs(place) == 1
    assert read(place) == "a one\n" and runs(place) == 1
    assert oct(place[1].stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("change", [
    lambda root: (root / "e" / "b").write_text("two"),
    lambda root: (root / "e" / "a").chmod(0o600),
    lambda root: os.rename(root / "e" / "a", root / "e" / "c"),
    lambda root: (root / "f").mkdir(),
    lambda root: (root / "f").symlink_to("e"),
])
def test_any_change_under_the_directory_runs_the_script(place, change):
    read(place)
    change(place[0])
    first = read(place)
    assert runs(place) == 2
    assert read(place) == first and runs(place) == 2


def test_content_changed_with_mtime_and_size_put_back_is_seen(place):
    root = place[0]
    read(place)
    before = (root / "e" / "a").stat()
    (root / "e" / "a").write_text("ONE")
    os.utime(root / "e" / "a", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert read(place) == "a ONE\n" and runs(place) == 2


def test_the_roots_own_files_are_not_read_and_do_not_empty_the_cache(place):
    """base_dir's nginx-loaded and managed-by records: rewritten by rename on runs that change
    no endpoint (the root's own mtime moves too); no fact reads them."""
    root = place[0]
    read(place)
    (root / "nginx-loaded.new").write_text("a digest\n")
    os.rename(root / "nginx-loaded.new", root / "nginx-loaded")
    assert read(place) == "a one\n" and runs(place) == 1


def test_other_script_or_arguments_run_the_script(place):
    read(place)
    read(place, script=FACT + "\n")
    assert runs(place) == 2
    read(place, extra="x")
    assert runs(place) == 3


def test_dry_run_reads_but_never_writes_the_cache(place):
    assert read(place, write="no") == "a one\n" and not place[1].exists()
    read(place)
    assert read(place, write="no") == "a one\n" and runs(place) == 2  # the kept output was read


def test_facts_run_through_the_cache_with_the_real_scripts():
    from bars_receiver.certificates.facts import CertificateFiles
    from bars_receiver.keys.facts import EndpointFiles

    endpoint = str(EndpointFiles().command("/etc/bars-receiver", "/var/cache/x", cache_write=False))
    certificates = str(CertificateFiles().command("/etc/bars-receiver", "/etc/bars-receiver-app"))
    assert f"{FACT_CACHE}/endpoint_files" in endpoint and " no " in endpoint
    assert f"{FACT_CACHE}/certificate_files" in certificates
    assert "BARS_SCRIPT=endpoint_files" in endpoint and "BARS_SCRIPT=certificate_files" in certificates
    assert str(cached_fact("endpoint_files", ("/b",), "/b")).count("BARS_SCRIPT=") == 2  # wrapper and fact
    assert Path(FACT_CACHE).is_absolute()
