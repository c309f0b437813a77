"""Host scripts shipped to the host by content hash, so an unchanged script costs no upload.

An operation runs ``sh /var/lib/bars-receiver/scripts/<sha256>.sh ARGS...`` (``host_script``):
the file holds the script with lib.sh spliced in (``scripts.script_text``), named for the SHA-256
of exactly that text, so a changed script (or lib.sh) is a new name and an old name never holds
new text. Which hashes the host holds is read by ``HostRecords``, the fact deploy.py reads first
anyway for the managed-by check, so an unchanged run costs no extra round trip and uploads nothing.

A script is uploaded only by an operation that runs it, only when the host lacks its hash, and
only at execution time: pyinfra 3 runs an operation's generator again while executing and runs
each command as soon as it is yielded, so the record of what the host holds (``ShippedScripts``,
one per host in ``host.data``) is updated only after the upload and install have really run. A
``--dry`` run (or pyinfra's change check before ``-y``) stops each generator at its first command
and executes nothing, so it uploads nothing. The upload goes to ``.<sha256>.tmp`` in the root-only
directory and is renamed to ``<sha256>.sh`` only after the host has checked its hash, so a crash
never leaves a half-written script under its hash name.

Facts still run their scripts inline (``scripts.run_script``: ``sh -c <text>``): they run while
operations are being collected, before any operation could have uploaded anything, and a fact
must not change the host (a ``--dry`` run reads facts too). So does ship_script.sh, which is what
ships the others.

Old hashes are pruned when a new script is installed: every ``*.sh`` the fact listed that is not
one of this checkout's scripts is removed in the same command. An unchanged run prunes nothing.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, QuoteString, StringCommand
from pyinfra.api.command import PyinfraCommand

from bars_receiver.ownership import ManagedBy, record_path
from bars_receiver.scripts import SCRIPTS, run_script, script_text

SCRIPTS_DIR = "/var/lib/bars-receiver/scripts"  # root:root 0700; files root:root 0600
SHIPPED = "bars_shipped_scripts"  # host.data key of the host's ShippedScripts (deploy.py sets it)


def script_hash(name: str) -> str:
    """SHA-256 (hex) of the text shipped for script ``name``: its file name on the host."""
    return hashlib.sha256(script_text(name).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def current_hashes() -> frozenset[str]:
    """The hashes of every script in this checkout's files/scripts/ (lib.sh is inside each; a
    file that does not source it is never shipped, so it has none)."""
    hashes = set()
    for path in SCRIPTS.glob("*.sh"):
        try:
            hashes.add(script_hash(path.stem))
        except ValueError:
            continue
    return frozenset(hashes)


@dataclass
class ShippedScripts:
    """What one host's scripts directory holds, as far as this run knows: the hashes the
    ``HostRecords`` fact found (each checked on the host against its file's content), plus what
    this run's operations have installed since. Shared by every task of the host through
    ``host.data`` (a copy of it would be a copy of the record, so ``__copy__`` hands out itself)."""

    directory: str = SCRIPTS_DIR
    directory_ready: bool = False  # exists, root:root 0700
    present: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)  # *.sh names no script of this checkout has

    def __copy__(self) -> ShippedScripts:
        return self


class HostRecords(FactBase):
    """
    What the deploy keeps on the host about itself, read in one round trip: the ``managed-by``
    record (as ``ManagedBy`` reads it) and the host scripts shipped so far.

    .. code:: python

        HostRecords(managed_by={"inventory": "int", "environment": "int"},
                    scripts=ShippedScripts(directory_ready=True, present={"3f2a...", ...}, stale=set()))
    """

    def command(self, base_dir: str, scripts_dir: str = SCRIPTS_DIR) -> StringCommand:
        return run_script("host_records", record_path(base_dir), scripts_dir)

    def process(self, output: list[str]) -> HostRecordsValue:
        scripts = ShippedScripts()
        record_at = output.index("@@record") if "@@record" in output else len(output)
        current = current_hashes()
        for line in output[:record_at]:
            if line.startswith("@@scripts"):
                scripts.directory_ready = line.split()[1:] == ["700", "0", "0"]
                continue
            digest, _, file_name = line.partition("  ")
            if not file_name.endswith(".sh"):
                continue
            if file_name == f"{digest}.sh" and digest in current:
                scripts.present.add(digest)
            else:
                scripts.stale.add(file_name)
        if not scripts.directory_ready:
            scripts.present.clear()  # not root-only: nothing in it is trusted; all are shipped again
        return HostRecordsValue(ManagedBy().process(output[record_at:]), scripts)


@dataclass
class HostRecordsValue:
    managed_by: dict[str, str] | None
    scripts: ShippedScripts


def _upload(name: str, digest: str, shipped: ShippedScripts) -> Iterator[PyinfraCommand]:
    directory = shipped.directory
    if not shipped.directory_ready:
        yield run_script("ship_script", "prepare", directory)
    staged = f"{directory}/.{digest}.tmp"
    yield FileUploadCommand(StringIO(script_text(name)), staged)
    # Never the name being installed: a damaged file under it is replaced by the rename itself.
    stale = sorted(f"{directory}/{file_name}" for file_name in shipped.stale if file_name != f"{digest}.sh")
    yield run_script("ship_script", "install", directory, staged, digest, *stale)


def shipped(name: str) -> Iterator[PyinfraCommand]:
    """Commands that put script ``name`` on the host if it lacks it (none when it holds it);
    returns (as a generator's value) its path there. Used inside an operation's generator:
    ``path = yield from shipped("make_key")``. Without deploy.py's record (an operation called
    ad hoc) the script is uploaded every time."""
    record = host.data.get(SHIPPED)
    record = record if isinstance(record, ShippedScripts) else ShippedScripts()
    digest = script_hash(name)
    if digest not in record.present:
        yield from _upload(name, digest, record)
        # Reached only once the commands above have run (pyinfra runs each as it is yielded).
        record.directory_ready = True
        record.present.add(digest)
        record.stale.clear()
    return f"{record.directory}/{digest}.sh"


def host_script(name: str, *args: object) -> Iterator[PyinfraCommand]:
    """``sh <scripts dir>/<sha256>.sh ARGS...`` for files/scripts/<name>.sh, shipping it first if
    the host lacks it. Every argument is quoted, never pasted into the script; secrets never go
    here (they travel as uploaded files)."""
    path = yield from shipped(name)
    yield StringCommand("sh", QuoteString(path), *(QuoteString(str(arg)) for arg in args))
