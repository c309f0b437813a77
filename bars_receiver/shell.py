"""Shell scripts as pyinfra commands: the script and every argument quoted, never pasted together."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand


def script_command(script: str, *args: object, name: str = "bars") -> StringCommand:
    """``sh -c SCRIPT NAME ARGS...``: the script reads its arguments as $1, $2...; NAME is $0, which
    sh puts in front of its own error messages."""
    return StringCommand("sh", "-c", QuoteString(script), name, *(QuoteString(str(arg)) for arg in args))
