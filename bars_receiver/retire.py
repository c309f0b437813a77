"""Retiring an endpoint on purpose, and noticing endpoints nobody manages any more.

An endpoint marked ``retired: true`` in the inventory is taken off nginx (it is not among the
host's served endpoints), then its key directory and its application hand-off directory are
moved, whole, into ``<base_dir>/.retired/<fqdn>/<UTC time>/`` with a record of when, which
certificate and which inventory (files/scripts/retire.sh). Nothing is deleted: a key that cost a
certificate request stays on its host, root-only, out of every service's way. The request pack
on the controller is marked retired, so nobody sends it again.

An endpoint directory found under ``base_dir`` that the inventory names neither as an endpoint
nor as retired is reported on every run (a warning and a status row) until it is put back or
retired: removing an endpoint from the inventory unpublishes it but leaves its key and PFX.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FactBase, FunctionCommand, StringCommand, operation

from .request_pack import write_atomically
from .scripts import run_script
from .settings import HostSettings, ResolvedEndpoint, file_stem

ARCHIVE = ".retired"
RETIRED_MARK = "> **RETIRED.**"


@dataclass
class EndpointDirectoryNames:
    endpoints: list[str] = field(default_factory=list)  # directories under base_dir
    handoffs: list[str] = field(default_factory=list)  # directories under app_dir
    retired: list[str] = field(default_factory=list)  # "<fqdn>/<UTC time>" with a RETIRED record

    def archived(self, fqdn: str) -> list[str]:
        return sorted(entry for entry in self.retired if entry.split("/", 1)[0] == fqdn)


class EndpointDirectories(FactBase):
    """
    Returns the names of the endpoint directories under ``base_dir``, of the hand-off directories
    under ``app_dir`` and of the retirement archives under ``base_dir/.retired/``.

    .. code:: python

        EndpointDirectoryNames(
            endpoints=["BaRS-INT-RX809.Acme.thirdparty.nhs.uk"],
            handoffs=["BaRS-INT-RX809.Acme.thirdparty.nhs.uk"],
            retired=["BaRS-INT-RX700.Acme.thirdparty.nhs.uk/20261130T201500Z"],
        )
    """

    default = EndpointDirectoryNames

    def command(self, base_dir: str, app_dir: str) -> StringCommand:
        return run_script("endpoint_dirs", base_dir, app_dir)

    def process(self, output: list[str]) -> EndpointDirectoryNames:
        names = EndpointDirectoryNames()
        lists = {"endpoint": names.endpoints, "handoff": names.handoffs, "retired": names.retired}
        for line in output:
            marker, _, rest = line.removeprefix("@@").partition(" ")
            if line.startswith("@@") and marker in lists and rest:
                lists[marker].append(rest)
        return names


@operation()
def retired_endpoint(base_dir: str, app_dir: str, fqdn: str, inventory: str, names: EndpointDirectoryNames):
    """
    Archive a retired endpoint's key directory and hand-off directory, with a record.

    + base_dir, app_dir: where the endpoint's directories are
    + fqdn: the endpoint
    + inventory: named in the record
    + names: the ``EndpointDirectories`` fact

    **Example:**

    .. code:: python

        retired_endpoint(name="Retire BaRS-INT-RX700...", base_dir="/etc/bars-receiver",
                         app_dir="/etc/bars-receiver-app", fqdn="BaRS-INT-RX700...", inventory="int",
                         names=names)
    """
    if fqdn not in names.endpoints and fqdn not in names.handoffs:
        archived = names.archived(fqdn)
        where = f"{base_dir}/{ARCHIVE}/{archived[-1]}" if archived else "nothing was on this host"
        host.noop(f"{fqdn} is already retired ({where})")
        return
    yield run_script("retire", base_dir, app_dir, fqdn, inventory)


def archive_dir(receiver: HostSettings, fqdn: str) -> str:
    return f"{receiver.settings.base_dir}/{ARCHIVE}/{fqdn}"


def retired_pack_files(receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str) -> dict[Path, str]:
    """``requests/<inventory>/<fqdn>.md`` (and ``.next.md``, if any) with a RETIRED notice at the
    top, stable from run to run: path -> the text it should hold. A missing note gets one of its own."""
    notice = (
        f"{RETIRED_MARK} `{endpoint.fqdn}` is retired (`retired: true` in "
        f"`inventories/{receiver.inventory}.yml`). Do not send this request. Its key directory and "
        f"application files are archived on `{host_name}` under `{archive_dir(receiver, endpoint.fqdn)}/`. "
        f"Ask {receiver.settings.bars_team_email} to remove the receiver URL "
        f"{endpoint.receiver_url(receiver.settings.listen_port)} from the Endpoint Catalogue.\n\n"
    )
    files = {}
    directory = Path(receiver.requests_dir)
    for name in (f"{file_stem(endpoint)}.md", f"{file_stem(endpoint)}.next.md"):
        path = directory / name
        if not path.exists() and name.endswith(".next.md"):
            continue
        text = path.read_text(encoding="utf-8") if path.exists() else f"# {endpoint.fqdn}\n"
        if text.startswith(RETIRED_MARK):
            text = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        files[path] = notice + text
    return files


def _write_files(files: dict[Path, str]) -> None:
    for path, text in files.items():
        if write_atomically(path, text):
            logger.info(f"{host.print_prefix}request pack marked retired: {path}")


@operation()
def retired_request_pack(receiver: HostSettings, endpoint: ResolvedEndpoint):
    """
    Mark a retired endpoint's request pack retired, on the controller, when the operation executes
    (so ``--dry`` writes nothing).

    + receiver: the host's settings
    + endpoint: the retired endpoint
    """
    files = retired_pack_files(receiver, endpoint, host.name)
    if all(path.exists() and path.read_text(encoding="utf-8") == text for path, text in files.items()):
        host.noop(f"request pack for {endpoint.fqdn} already says retired")
        return
    yield FunctionCommand(_write_files, (files,), {})


def unmanaged(receiver: HostSettings, names: EndpointDirectoryNames) -> list[str]:
    """Endpoint directories on the host that the inventory names neither as endpoint nor as retired."""
    known = {endpoint.fqdn.lower() for endpoint in (*receiver.endpoints, *receiver.retired)}
    return sorted(name for name in names.endpoints if name.lower() not in known)
