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

from bars_receiver.inventory.settings import HostSettings, ResolvedEndpoint, file_stem
from bars_receiver.request_packs import write_atomically
from bars_receiver.scripts import run_script
from bars_receiver.shipping import host_script

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
def retired_endpoint(base_dir: str, app_dir: str, fqdn: str, inventory: str, on_host: bool = True,
                     archived: list[str] | None = None):
    """
    Archive a retired endpoint's key directory and hand-off directory, with a record.

    + base_dir: where the endpoint's key directory is
    + app_dir: where its hand-off directory is
    + fqdn: the endpoint
    + inventory: named in the record
    + on_host: whether the host still holds either directory (the ``EndpointDirectories`` fact);
      False: nothing to do
    + archived: its archives already under ``base_dir/.retired/`` (``<fqdn>/<UTC time>``), named
      when there is nothing to do

    **Example:**

    .. code:: python

        retired_endpoint(name="Retire BaRS-INT-RX700...", base_dir="/etc/bars-receiver",
                         app_dir="/etc/bars-receiver-app", fqdn="BaRS-INT-RX700.Acme.thirdparty.nhs.uk",
                         inventory="int", on_host=True)
    """
    if not on_host:
        where = f"{base_dir}/{ARCHIVE}/{sorted(archived)[-1]}" if archived else "nothing was on this host"
        host.noop(f"{fqdn} is already retired ({where})")
        return
    yield from host_script("retire", base_dir, app_dir, fqdn, inventory)


def archive_dir(receiver: HostSettings, fqdn: str) -> str:
    return f"{receiver.settings.base_dir}/{ARCHIVE}/{fqdn}"


def retirement_notice(receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str) -> str:
    """The RETIRED notice put at the top of a retired endpoint's request notes."""
    return (
        f"{RETIRED_MARK} `{endpoint.fqdn}` is retired (`retired: true` in "
        f"`inventories/{receiver.inventory}.yml`). Do not send this request. Its key directory and "
        f"application files are archived on `{host_name}` under `{archive_dir(receiver, endpoint.fqdn)}/`. "
        f"Ask {receiver.settings.bars_team_email} to remove the receiver URL "
        f"{endpoint.receiver_url(receiver.settings.listen_port)} from the Endpoint Catalogue.\n\n"
    )


def retired_note_paths(receiver: HostSettings, endpoint: ResolvedEndpoint) -> list[str]:
    """The endpoint's request note and, after it, its renewal note (marked only if it exists)."""
    directory = Path(receiver.requests_dir)
    return [str(directory / f"{file_stem(endpoint)}.md"), str(directory / f"{file_stem(endpoint)}.next.md")]


def retired_notes(fqdn: str, notice: str, paths: list[str]) -> dict[Path, str]:
    """Each note of ``paths`` with ``notice`` at the top, stable from run to run: path -> the text
    it should hold. A missing first note gets one of its own; a missing later one is left out."""
    files = {}
    for index, name in enumerate(paths):
        path = Path(name)
        if not path.exists() and index > 0:
            continue
        text = path.read_text(encoding="utf-8") if path.exists() else f"# {fqdn}\n"
        if text.startswith(RETIRED_MARK):
            text = text.split("\n\n", 1)[1] if "\n\n" in text else ""
        files[path] = notice + text
    return files


def retired_pack_files(receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str) -> dict[Path, str]:
    """``requests/<inventory>/<fqdn>.md`` (and ``.next.md``, if any) with a RETIRED notice at the
    top, stable from run to run: path -> the text it should hold. A missing note gets one of its own."""
    return retired_notes(endpoint.fqdn, retirement_notice(receiver, endpoint, host_name),
                         retired_note_paths(receiver, endpoint))


def _write_files(files: dict[Path, str]) -> None:
    for path, text in files.items():
        if write_atomically(path, text):
            logger.info(f"{host.print_prefix}request pack marked retired: {path}")


@operation()
def retired_request_pack(fqdn: str, notice: str, paths: list[str]):
    """
    Mark a retired endpoint's request pack retired, on the controller, when the operation executes
    (so ``--dry`` writes nothing).

    + fqdn: the retired endpoint
    + notice: the RETIRED notice put at the top of each note (``retirement_notice``)
    + paths: the controller's request note (made if missing), then its renewal note (marked only
      if it exists)

    **Example:**

    .. code:: python

        retired_request_pack(name="Request pack for BaRS-INT-RX700...: marked retired",
                             fqdn="BaRS-INT-RX700.Acme.thirdparty.nhs.uk", notice="> **RETIRED.** ...",
                             paths=["requests/int/BaRS-INT-RX700.Acme.thirdparty.nhs.uk.md",
                                    "requests/int/BaRS-INT-RX700.Acme.thirdparty.nhs.uk.next.md"])
    """
    files = retired_notes(fqdn, notice, paths)
    if all(path.exists() and path.read_text(encoding="utf-8") == text for path, text in files.items()):
        host.noop(f"request pack for {fqdn} already says retired")
        return
    yield FunctionCommand(_write_files, (files,), {})


def unmanaged(receiver: HostSettings, names: EndpointDirectoryNames) -> list[str]:
    """Endpoint directories on the host that the inventory names neither as endpoint nor as retired."""
    known = {endpoint.fqdn.lower() for endpoint in (*receiver.endpoints, *receiver.retired)}
    return sorted(name for name in names.endpoints if name.lower() not in known)
