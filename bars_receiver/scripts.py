"""The host scripts in files/scripts/, as pyinfra commands.

The shell lives in files (POSIX sh, shellcheck-clean, testable in a temporary directory); Python
only decides which script runs with which arguments. Each script sources lib.sh through the
line ``. "${BARS_LIB:-./lib.sh}"``; here that line is replaced by lib.sh's top-level lines and
the functions the script calls, directly or through each other (not all of them: a per-endpoint
script starts once per endpoint, and sh reads every function it is given each time). Operations
run that text shipped to the host by its content hash (shipping.py); facts run it inline, as one
``sh -c`` (``run_script``), because they run before any operation could have shipped anything.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pyinfra.api import StringCommand

from bars_receiver.shell import script_command

SCRIPTS = Path(__file__).resolve().parent.parent / "files" / "scripts"
SOURCE_LIB = '. "${BARS_LIB:-./lib.sh}"'


@functools.lru_cache(maxsize=None)
def _source(name: str) -> str:
    return (SCRIPTS / f"{name}.sh").read_text()


# A lib.sh function with the comment lines above it: "name() {" to the first line that is "}".
FUNCTION = re.compile(r"((?:^#[^\n]*\n)*)^([a-z_][a-z0-9_]*)\(\) \{\n.*?^\}\n", re.M | re.S)
WORD = re.compile(r"[a-z_][a-z0-9_]*")
COMMENT = re.compile(r"^\s*#.*$", re.M)


@functools.lru_cache(maxsize=None)
def lib_parts() -> tuple[str, dict[str, str]]:
    """lib.sh as its top-level lines (variables, the header) and its functions by name."""
    text = _source("lib")
    functions = {match.group(2): match.group(0) for match in FUNCTION.finditer(text)}
    return FUNCTION.sub("", text), functions


def lib_for(text: str) -> str:
    """lib.sh's top-level lines and every function ``text`` calls, directly or through another,
    in lib.sh's order. A name is taken as called wherever it appears as a word outside a comment
    line (in a trap string too): a function is never left out, at worst one too many is kept."""
    preamble, functions = lib_parts()
    wanted: set[str] = set()
    pending = [text, preamble]
    while pending:
        for word in set(WORD.findall(COMMENT.sub("", pending.pop()))):
            if word in functions and word not in wanted:
                wanted.add(word)
                pending.append(functions[word])
    return preamble + "".join(body for name, body in functions.items() if name in wanted)


@functools.lru_cache(maxsize=None)
def script_text(name: str) -> str:
    """Script ``name`` (files/scripts/<name>.sh) with lib.sh (``lib_for``) in place of the line
    sourcing it. ``BARS_SCRIPT`` names it for the test-only stop hook (lib.sh's ``step``)."""
    text = _source(name)
    if SOURCE_LIB not in text:
        raise ValueError(f"files/scripts/{name}.sh does not source lib.sh")
    return text.replace(SOURCE_LIB, f"BARS_SCRIPT={name}\n{lib_for(text)}", 1)


def run_script(name: str, *args: object) -> StringCommand:
    """``sh -c <script> bars-<name> ARGS...``: every argument quoted, never pasted into the script.
    A script that does not source lib.sh (ship_script.sh, which ships the others) goes as it is."""
    text = _source(name)
    return script_command(script_text(name) if SOURCE_LIB in text else text, *args, name=f"bars-{name}")
