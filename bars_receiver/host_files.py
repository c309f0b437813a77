"""Files the deploy owns on a host, written so nobody ever sees them half done or too open.

``file_atomically`` uploads beside the destination and renames (pyinfra's files.put writes straight
over it when connected as root); ``private_directory`` creates a directory with its final mode
(``files.directory`` has a 0755 instant between mkdir and chmod); ``upload_secret`` puts a secret
into a file made 0600 first, as file contents, never as a command argument. Used by every concern
that writes a file of its own (keys, certificates, the hand-off, nginx, the firewall's unit).
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.facts.files import Directory, File, Sha256File

from bars_receiver.certificates.x509 import sha256_hex
from bars_receiver.diffs import log_diff
from bars_receiver.shell import script_command


def upload_secret(path: str, secret: str):
    """Commands that put ``secret`` into ``path`` without a readable file ever existing: the file
    (and its directory, if missing) is made 0600/0700 first, then the secret goes in over SFTP as
    file contents, never as a command argument."""
    yield script_command('umask 077; [ -d "${1%/*}" ] || mkdir -m 700 "${1%/*}"; rm -f "$1"; : > "$1"', path)
    yield FileUploadCommand(StringIO(secret), path)


def owned(meta: dict | None, mode: str, group: str) -> bool:
    """A File or Directory fact's value says: there, root-owned, group ``group``, mode ``mode``."""
    return bool(meta) and meta["mode"] == int(mode) and meta["user"] == "root" and meta["group"] == group


def file_settled(meta: dict | None, sha256: str | None, content: str, mode: str = "644") -> bool:
    """``file_atomically(path, content, mode)`` would do nothing, given the path's File and
    Sha256File facts (tasks skip declaring it: bars_receiver/snapshot.py)."""
    return sha256 == sha256_hex(content.encode()) and owned(meta, mode, "root")


@operation()
def file_atomically(path: str, content: str, mode: str = "644"):
    """
    Make ``path`` (root-owned) hold ``content``, replacing it by rename so nobody ever reads half.

    pyinfra's files.put writes straight over the destination when it connects as root; this op
    uploads beside it and renames, so an interrupted run leaves the old file whole.

    + path: the file to write
    + content: its whole text (not a secret: ``--diff`` shows it; use upload_secret for those)
    + mode: octal mode

    **Example:**

    .. code:: python

        file_atomically(name="Client CRLs", path="/etc/bars-receiver/client-crl.pem", content=pem)
    """
    meta = host.get_fact(File, path=path)
    if host.get_fact(Sha256File, path=path) == sha256_hex(content.encode()):
        if owned(meta, mode, "root"):
            host.noop(f"{path} is already up to date")
            return
        yield script_command('chown root:root "$1" && chmod "$2" "$1"', path, mode)
        return
    log_diff(path, content)
    staged = f"{path.rsplit('/', 1)[0]}/.{path.rsplit('/', 1)[1]}.new"
    yield FileUploadCommand(StringIO(content), staged)
    yield script_command('chown root:root "$1" && chmod "$2" "$1" && mv -f "$1" "$3"', staged, mode, path)


@operation()
def private_directory(path: str, mode: str = "700", group: str = "root"):
    """
    A root-owned directory created with its final mode: never a 0755 instant, as
    ``files.directory`` has between its mkdir and chmod.

    + path: the directory (its parents, if missing, are made as usual)
    + mode: octal mode, at most as open as 0750
    + group: its group

    **Example:**

    .. code:: python

        private_directory(name="Endpoint base directory (root only)", path="/etc/bars-receiver")
    """
    meta = host.get_fact(Directory, path=path)
    if owned(meta, mode, group):
        host.noop(f"{path} is already root:{group} {mode}")
        return
    yield script_command(
        'umask 077; [ -d "$1" ] || { mkdir -p "${1%/*}" && mkdir -m 700 "$1"; }; chown root:"$2" "$1"; chmod "$3" "$1"',
        path, group, mode,
    )
