"""Which inventory manages a host: recorded on the host, checked before every run changes anything.

A host belongs to one inventory. A second inventory naming it (or an inventory renamed or split)
would otherwise render nginx from its own endpoints alone and take the first one's off the air.
The record is ``<base_dir>/managed-by`` (root-only): ``inventory=<name>`` and ``environment=<env>``.
Handing a host over is deliberate: ``--data bars_take_over=<the recorded inventory>``.
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation

from bars_receiver.diffs import log_diff
from bars_receiver.shell import script_command

RECORD = "managed-by"
TAKE_OVER = "bars_take_over"  # pyinfra --data bars_take_over=<old inventory>


def record_path(base_dir: str) -> str:
    return f"{base_dir}/{RECORD}"


def record_text(inventory: str, environment: str) -> str:
    return f"inventory={inventory}\nenvironment={environment}\n"


class ManagedBy(FactBase):
    """
    The host's record of the inventory that manages it: ``{"inventory": ..., "environment": ...}``,
    or None when no run has recorded one yet.
    """

    def command(self, base_dir: str) -> StringCommand:
        return script_command('if [ -f "$1" ]; then echo "@@record"; cat "$1"; fi; exit 0', record_path(base_dir))

    def process(self, output: list[str]) -> dict[str, str] | None:
        if not output or output[0] != "@@record":
            return None
        record = {}
        for line in output[1:]:
            key, _, value = line.partition("=")
            record[key.strip()] = value.strip()
        return record


def ownership_problem(host_name: str, record: dict[str, str] | None, inventory: str, environment: str,
                      base_dir: str, take_over: str | None) -> str | None:
    """Why this run may not touch the host, or None. Says how to rename, split or hand over."""
    if record is None:
        return None
    owner, owner_environment = record.get("inventory", "?"), record.get("environment", "?")
    if owner == inventory and owner_environment == environment:
        return None
    if take_over is not None and take_over == owner:
        return None
    taken = (f" (--data {TAKE_OVER}={take_over} was given, but the host records {owner!r})"
             if take_over is not None else "")
    return (
        f"{host_name} is managed by inventory {owner!r} (environment {owner_environment}), as recorded in "
        f"{record_path(base_dir)}; this run is from inventory {inventory!r} (environment {environment}){taken}. "
        "Nothing was changed on any host.\n"
        "  A host belongs to one inventory: a run from another would serve only its own endpoints and take "
        f"the others off nginx.\n"
        f"  - Two inventories naming this host by mistake: remove it from inventories/{inventory}.yml.\n"
        f"  - Renamed or split {owner}.yml (e.g. into {owner}-a.yml and {owner}-b.yml): put every endpoint this "
        f"host serves into inventories/{inventory}.yml, move their files from requests/{owner}/, "
        f"files/certs/{owner}/ and files/ca/{owner}/ to the same paths under {inventory}/, then hand the host "
        f"over once: pyinfra -y --data {TAKE_OVER}={owner} inventories/{inventory}.py deploy.py"
    )


@operation()
def managed_by(base_dir: str, inventory: str, environment: str, record: dict[str, str] | None):
    """
    Write ``<base_dir>/managed-by`` (root-only) naming this inventory, unless it already does.
    Reuses the ``ManagedBy`` fact deploy.py read for its check, so an unchanged run reads nothing more.

    + base_dir: the deploy's root-only directory (exists: tasks/keys.py makes it)
    + inventory: the inventory's name
    + environment: int or prod
    + record: what ``ManagedBy`` read, or None

    **Example:**

    .. code:: python

        managed_by(name="Record the managing inventory", base_dir="/etc/bars-receiver", inventory="int",
                   environment="int", record=None)
    """
    if record == {"inventory": inventory, "environment": environment}:
        host.noop(f"{record_path(base_dir)} already names inventory {inventory}")
        return
    text = record_text(inventory, environment)
    log_diff(record_path(base_dir), text)
    staged = f"{base_dir}/.{RECORD}.new"
    yield FileUploadCommand(StringIO(text), staged)
    yield script_command('chown root:root "$1" && chmod 600 "$1" && mv -f "$1" "$2"', staged, record_path(base_dir))
