"""Unified diffs for ``--diff``, for the files the deploy owns and writes with its own operations.

pyinfra's files.put and files.template log a diff when ``--diff`` is given; our operations upload
by rename (file_atomically, checked_config, listener_firewall) and call ``log_diff`` to do the same.
Only for public text (configuration, rules, units): never call it for a secret.
"""

from __future__ import annotations

import difflib

from pyinfra import host, logger, state
from pyinfra.facts.files import FileContents


def unified_diff(path: str, current: str | None, desired: str) -> list[str]:
    """The lines of a unified diff from ``current`` (None: the file is missing) to ``desired``."""
    before = [] if current is None else current.splitlines(keepends=True)
    after = desired.splitlines(keepends=True)
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(before, after, fromfile="/dev/null" if current is None else f"a{path}",
                                         tofile=f"b{path}", n=3)
    ]


def _diff_wanted() -> bool:
    try:
        return bool(state.config.DIFF)
    except AttributeError:  # no pyinfra state: an operation called directly, e.g. in a unit test
        return False


def log_diff(path: str, desired: str) -> None:
    """With ``--diff``, log how ``path`` on the host will change (read from the host as it is now)."""
    if not _diff_wanted():
        return
    lines = host.get_fact(FileContents, path=path)
    current = None if lines is None else "".join(line + "\n" for line in lines)
    if current == desired:
        return
    host.log(f"Will {'create' if current is None else 'modify'} {path}:", logger.info)
    for line in unified_diff(path, current, desired):
        logger.info(f"    {line}")
