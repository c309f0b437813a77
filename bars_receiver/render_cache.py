"""What a rendered file's inputs rendered to last time, kept on the controller, so an unchanged run
does not render (and check) it again: a 500-server nginx configuration is 8 MB of Jinja output,
500 request notes are 500 renders.

An entry is the SHA-256 of the text that a digest of every input rendered to: the values, the
template, and the source of the code that renders and checks it (so a changed template, renderer
or check never reuses an entry). It is only a shortcut to "the text would be the same": the caller
still compares that hash with the file as it is now (the host's live file, the note on disk), and
renders when the entry is missing or the file differs. Entries live in ``<project>/.cache/render/``
(ignored by git; deleting it only costs one full render); a dry run reads them but writes none.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path
from types import ModuleType

from bars_receiver.run_mode import is_dry

@functools.lru_cache(maxsize=None)
def _source(path: str) -> bytes:
    return Path(path).read_bytes()


def digest(project_dir: str, template: str, modules: tuple[ModuleType, ...], *values: object) -> str:
    """The inputs' digest: ``template`` (files/templates/), the source of the ``modules`` that
    render and check the text, and ``values`` (their ``repr``; each must be deterministic)."""
    hasher = hashlib.sha256()
    for path in (str(Path(project_dir) / "files" / "templates" / template),
                 *(str(module.__file__) for module in modules)):
        hasher.update(path.encode() + b"\0" + _source(path) + b"\0")
    for value in values:
        hasher.update(repr(value).encode() + b"\0")
    return hasher.hexdigest()


def _entry(project_dir: str, key: str) -> Path:
    return Path(project_dir) / ".cache" / "render" / key


def rendered_sha256(project_dir: str, key: str) -> str | None:
    """The SHA-256 of the text these inputs rendered to, if a run recorded it."""
    try:
        return _entry(project_dir, key).read_text().strip() or None
    except OSError:
        return None


def record(project_dir: str, key: str, text_sha256: str) -> None:
    """Remember that ``key``'s inputs render to ``text_sha256`` (not in a dry run; a cache that
    cannot be written is only slower)."""
    if is_dry():
        return
    entry = _entry(project_dir, key)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=entry.parent, prefix=".new.")
        with os.fdopen(fd, "w") as handle:
            handle.write(text_sha256 + "\n")
        os.replace(temp, entry)
    except OSError:
        pass
