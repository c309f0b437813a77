"""How pyinfra was invoked (``--dry``, ``-y``, ``--limit``...), read from the CLI's own arguments.

pyinfra keeps ``--dry`` to itself; the deploy needs it to print the status table of a dry run and
to show the plan that ``--dry -y`` would otherwise skip. Outside the CLI (the pyinfra API) these
are all unset.
"""

from __future__ import annotations

import fnmatch
import functools
import sys
from types import MappingProxyType
from typing import Any

import click
import pyinfra
from pyinfra.api.exceptions import PyinfraError


def cli_params() -> dict[str, Any]:
    """The pyinfra CLI's parsed options. Deploy files run in greenlets, where click's context is not
    visible, so the command line is parsed again (without running anything)."""
    context = click.get_current_context(silent=True)
    if context is not None:
        return dict(context.params)
    return dict(_parse(tuple(sys.argv[1:]), pyinfra.is_cli))


@functools.cache
def _parse(argv: tuple[str, ...], is_cli: bool) -> MappingProxyType:
    """The options of one command line, parsed once: a function of its arguments, not state."""
    if not is_cli:
        return MappingProxyType({})
    from pyinfra_cli.cli import cli  # noqa: PLC0415  (only under the CLI)

    try:
        return MappingProxyType(dict(cli.make_context("pyinfra", list(argv), resilient_parsing=True).params))
    except click.ClickException:
        return MappingProxyType({})


def is_dry() -> bool:
    return bool(cli_params().get("dry"))


class LimitError(PyinfraError):
    """``--limit`` named no host of the inventory: pyinfra would warn and succeed doing nothing."""


def check_limit(hosts: list[tuple[str, dict]], groups: tuple[str, ...] = ("receivers",)) -> list[tuple[str, dict]]:
    """Return ``hosts``; raise when a ``--limit`` pattern matches no host (nor group) of them.

    Called by the inventory files, before any host is contacted.
    """
    names = [name for name, _ in hosts]
    # pyinfra also groups the hosts by the inventory file's name (int, prod...)
    groups = (*groups, *{data["receiver"].inventory for _, data in hosts if "receiver" in data})
    unmatched = [pattern for pattern in cli_params().get("limit") or ()
                 if pattern not in groups and not fnmatch.filter(names, pattern)]
    if unmatched:
        raise LimitError(
            f"--limit {' '.join(unmatched)} matches no host of this inventory, so the run would do nothing; "
            f"its hosts are: {', '.join(names)}"
        )
    return hosts
