"""The host scripts in files/scripts/, as pyinfra commands.

The shell lives in files (POSIX sh, shellcheck-clean, testable in a temporary directory); Python
only decides which script runs with which arguments. Each script sources lib.sh through the
line ``. "${BARS_LIB:-./lib.sh}"``; here that line is replaced by lib.sh itself. Operations run
that text shipped to the host by its content hash (shipping.py); facts run it inline, as one
``sh -c`` (``run_script``), because they run before any operation could have shipped anything.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pyinfra.api import StringCommand

from bars_receiver.shell import script_command

SCRIPTS = Path(__file__).resolve().parent.parent / "files" / "scripts"
SOURCE_LIB = '. "${BARS_LIB:-./lib.sh}"'


@functools.lru_cache(maxsize=None)
def _source(name: str) -> str:
    return (SCRIPTS / f"{name}.sh").read_text()


@functools.lru_cache(maxsize=None)
def script_text(name: str) -> str:
    """Script ``name`` (files/scripts/<name>.sh) with lib.sh in place of the line sourcing it.
    ``BARS_SCRIPT`` names it for the test-only stop hook (lib.sh's ``step``)."""
    text = _source(name)
    if SOURCE_LIB not in text:
        raise ValueError(f"files/scripts/{name}.sh does not source lib.sh")
    return text.replace(SOURCE_LIB, f"BARS_SCRIPT={name}\n{_source('lib')}", 1)


def run_script(name: str, *args: object) -> StringCommand:
    """``sh -c <script> bars-<name> ARGS...``: every argument quoted, never pasted into the script.
    A script that does not source lib.sh (ship_script.sh, which ships the others) goes as it is."""
    text = _source(name)
    return script_command(script_text(name) if SOURCE_LIB in text else text, *args, name=f"bars-{name}")
