"""The host-level state of a host, read in one round trip at the start of a run.

Each host-level operation (a directory, a file, a service, the firewall table, Debian's default
site) reads one or two pyinfra facts when it executes, and a few tasks read one while they are
collected: about 50 ms each over SSH, most of an unchanged run beyond pyinfra's start-up.
deploy.py reads those same facts once, in one command (each fact's own command, each output
through the fact's own ``process``). A task then takes a collected-time fact from the snapshot
(nothing has executed yet, so it is what ``host.get_fact`` would return), and declares a
host-level operation only when the snapshot says it has something to do, or when an operation
declared earlier in the run may change what it reads. A declared operation reads its facts again
when it executes: what it does never rests on the snapshot, only whether it is declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha256File
from pyinfra.facts.server import LinuxDistribution
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

from bars_receiver.firewall.nftables import FAMILY, RULES_PATH, TABLE, UNIT, UNIT_PATH, NftablesTable
from bars_receiver.nginx.config import LIVE_CONFIG, NJS_DIR, NJS_MODULE, NginxLoaded
from bars_receiver.nginx.default_site import DefaultSite
from bars_receiver.shipping import HostRecords

SNAPSHOT = "snapshot"  # host.data key: deploy.py's read, shared by the tasks
MARK = "@@bars-snapshot"
SERVICES = ("nginx.service", UNIT)
# One command is one argument to the remote shell: Linux refuses one over 128 KiB.
MAX_COMMAND_BYTES = 96 * 1024


@dataclass(frozen=True)
class Read:
    """One fact read: its class and arguments (hashable: lists become tuples)."""

    fact: type[FactBase]
    args: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)


def read(fact: type[FactBase], **kwargs: Any) -> Read:
    return Read(fact, tuple(sorted((name, tuple(value) if isinstance(value, list) else value)
                                   for name, value in kwargs.items())))


def file_reads(path: str) -> tuple[Read, Read]:
    """What ``file_atomically`` reads of ``path``."""
    return read(File, path=path), read(Sha256File, path=path)


def firewall_reads() -> tuple[Read, Read]:
    """What ``listener_firewall`` reads: the live table and the kept rules file's hash."""
    return read(NftablesTable, family=FAMILY, table=TABLE), read(Sha256File, path=RULES_PATH)


def service_reads() -> tuple[Read, Read]:
    """What ``systemd.service`` reads of the services the deploy keeps running."""
    return read(SystemdStatus, services=list(SERVICES)), read(SystemdEnabled, services=list(SERVICES))


def host_reads(base_dir: str, app_dir: str, client_crl: str | None = None) -> tuple[Read, ...]:
    """Every fact the snapshot holds: deploy.py's read of the deploy's own records on the host
    (who manages it, which host scripts it holds), the packages task's, the host-level
    operations', and the nginx task's reads of the live configuration."""
    return (
        read(HostRecords, base_dir=base_dir),
        read(LinuxDistribution),
        read(DebPackages),
        read(Directory, path=base_dir),
        read(Directory, path=app_dir),
        read(Directory, path=NJS_DIR),
        *file_reads(NJS_MODULE),
        *file_reads(UNIT_PATH),
        *(file_reads(client_crl) if client_crl else ()),
        *firewall_reads(),
        *service_reads(),
        read(DefaultSite),
        read(Sha256File, path=LIVE_CONFIG),
        read(NginxLoaded, live=LIVE_CONFIG, marker=f"{base_dir}/nginx-loaded"),
    )


def _attribute(fact: FactBase, name: str, kwargs: dict) -> Any:
    value = getattr(fact, name, None)
    return value(**kwargs) if callable(value) else value


class Snapshot(FactBase):
    """
    Returns each read's output lines, by position, from one command: None for a read whose
    command failed or whose tool (a fact's ``requires_command``) is not installed.

    .. code:: python

        {0: ["ID=debian", ...], 1: ["ii openssl 3.0.15-1"], 2: None, ...}
    """

    def command(self, reads: tuple[Read, ...]) -> StringCommand:
        """Each read is a shell function; all run at once, each writing its marked output to a
        file of its own in a root-only temporary directory, then the files are printed in order by
        one ``cat``. At hundreds of endpoints the endpoint directories' two reads are most of the
        command, and each can use a core. Without a temporary directory they run in turn."""
        bits: list[Any] = []
        for index, one in enumerate(reads):
            fact = one.fact()
            command = _attribute(fact, "command", one.kwargs)
            requires = _attribute(fact, "requires_command", one.kwargs)
            bits += [f"bars_read_{index}()", "{", "echo", QuoteString(f"{MARK} {index}"), ";"]
            if requires:
                bits += ["if", "command", "-v", QuoteString(str(requires)), ">/dev/null", "2>&1;", "then"]
            bits += ["(", command, ")", ";", "echo", QuoteString(f"{MARK}-status"), "$?", ";"]
            if requires:
                bits += ["else", "echo", QuoteString(f"{MARK}-status missing"), ";", "fi", ";"]
            bits += ["};"]
        files = [f'"$bars_snap/{index}"' for index in range(len(reads))]
        bits += ["if", "bars_snap=$(umask 077", "&&", "mktemp", "-d);", "then",
                 # Removed however the command ends: it holds what the reads printed.
                 "trap", QuoteString('rm -rf "$bars_snap"'), "EXIT;", "trap", QuoteString("exit 1"), "HUP", "INT", "TERM;"]
        for index, file in enumerate(files):
            bits += [f"bars_read_{index}", ">", file, "</dev/null", "&"]
        bits += ["wait;", "cat", *files, ";", "else"]
        for index in range(len(reads)):
            bits += [f"bars_read_{index};"]
        return StringCommand(*bits, "fi;", "true")

    def process(self, output: list[str]) -> dict[int, list[str] | None]:
        outputs: dict[int, list[str] | None] = {}
        index, lines = None, []
        for line in output:
            if line.startswith(f"{MARK}-status"):
                if index is not None:
                    outputs[index] = lines if line.split()[-1] == "0" else None
                index, lines = None, []
            elif line.startswith(f"{MARK} "):
                index, lines = int(line.split()[1]), []
            elif index is not None:
                lines.append(line)
        return outputs


class HostSnapshot:
    """The values of the facts one ``Snapshot`` read, looked up by ``Read``."""

    def __init__(self, values: dict[Read, Any]):
        self.values = values

    @classmethod
    def of(cls, reads: tuple[Read, ...], outputs: dict[int, list[str] | None]) -> HostSnapshot:
        values = {}
        for index, one in enumerate(reads):
            lines = outputs.get(index)
            if lines is None:
                continue  # unknown: whoever needs it reads it
            fact = one.fact()
            _attribute(fact, "command", one.kwargs)  # as get_fact does: some facts keep their arguments
            try:
                values[one] = fact.process(lines) if lines else fact.default()
            except (FactProcessError, ValueError, KeyError, IndexError, TypeError):
                continue
        return cls(values)

    def fact(self, fact: type[FactBase], **kwargs: Any) -> Any:
        """What ``host.get_fact(fact, **kwargs)`` returns while operations are collected: from the
        snapshot when it holds it, else read now."""
        one = read(fact, **kwargs)
        return self.values[one] if one in self.values else host.get_fact(fact, **kwargs)

    def settled(self, check: Callable[..., bool], *reads: Read) -> bool:
        """Whether ``check`` holds for these reads' values; False when any is unknown, so the
        operation is declared and decides for itself."""
        if any(one not in self.values for one in reads):
            return False
        return bool(check(*(self.values[one] for one in reads)))


def client_crl_path(base_dir: str) -> str:
    """Where the client CRLs nginx checks are kept (tasks/nginx.py)."""
    return f"{base_dir}/client-crl.pem"


def read_together(reads: tuple[Read, ...]) -> HostSnapshot:
    """These reads' values, from one command that runs them at once."""
    return HostSnapshot.of(reads, host.get_fact(Snapshot, reads=reads))


def read_snapshot(base_dir: str, app_dir: str, client_crl: str | None = None) -> HostSnapshot:
    return read_together(host_reads(base_dir, app_dir, client_crl))


def snapshot() -> HostSnapshot:
    """deploy.py's snapshot of this host, or an empty one (every fact read when asked)."""
    value = host.data.get(SNAPSHOT)
    return value if isinstance(value, HostSnapshot) else HostSnapshot({})


def service_settled(running: dict[str, bool], enabled: dict[str, bool], service: str) -> bool:
    """``systemd.service(running=True, enabled=True)`` would do nothing: the unit is active and
    enabled, as that operation reads them (SystemdStatus, SystemdEnabled)."""
    return running.get(service) is True and enabled.get(service) is True


