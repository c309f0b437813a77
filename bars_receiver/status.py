"""The per-endpoint status table printed at the end of each run.

It is printed by a pyinfra state callback after the last operation (or, when the CLI runs
operations without those callbacks, e.g. ``--serial``, at exit), to stderr: it is not an
operation, so an unchanged run still reports zero changes, and ``--json`` stdout stays parseable.
"""

from __future__ import annotations

import atexit
import sys
from dataclasses import dataclass
from datetime import datetime

from pyinfra import logger
from pyinfra.api.state import BaseStateCallback

from .certificate_facts import CERT, InstalledCertificates
from .certificates import utcnow
from .settings import HostSettings


@dataclass(frozen=True)
class Row:
    host: str
    fqdn: str
    state: str
    expires: str
    days_left: str
    note: str


UNREACHABLE_NOTE = "could not connect to this host (see above); nothing was changed on it"
ERROR_NOTE = "the run failed on this host (see above)"


def _expiry(receiver: HostSettings, fqdn: str, now: datetime) -> tuple[str, str]:
    certificate = receiver.certificates.get(fqdn)
    if certificate is None:
        return "-", "-"
    return f"{certificate.not_after:%Y-%m-%d}", str(certificate.days_left(now))


def endpoint_rows(host_name: str, receiver: HostSettings, installed: InstalledCertificates,
                  now: datetime | None = None, refused: dict[str, str] | None = None) -> list[Row]:
    """One row per endpoint: requested (no certificate yet), active, renewing (inside renewal_days),
    or refused (its certificate was refused: the endpoint was left as it is on the host).

    A renewed certificate (for the next key) is fresh, so the run that swaps keys shows ``active``.
    """
    now = now or utcnow()
    refused = refused or {}
    rows = []
    for endpoint in receiver.endpoints:
        certificate = receiver.certificates.get(endpoint.fqdn)
        if endpoint.fqdn in refused:
            rows.append(Row(host_name, endpoint.fqdn, "refused", *_expiry(receiver, endpoint.fqdn, now),
                            f"left as it is: {refused[endpoint.fqdn]}"))
            continue
        if certificate is None:
            held = CERT in installed.get(endpoint.fqdn).files
            note = ("no .cer in files/certs, but the host still holds an older cert.pem" if held else
                    f"awaiting certificate: send requests/{receiver.inventory}/{endpoint.fqdn}.csr")
            rows.append(Row(host_name, endpoint.fqdn, "requested", "-", "-", note))
            continue
        days = certificate.days_left(now)
        state = certificate.state(receiver.settings.renewal_days, now)
        # tasks/keys.py stages the next key and CSR in this same run; the .next pack is what to send.
        note = (f"next key staged: send requests/{receiver.inventory}/{endpoint.fqdn}.next.csr"
                if state == "renewing" else "")
        rows.append(Row(host_name, endpoint.fqdn, state, f"{certificate.not_after:%Y-%m-%d}", str(days), note))
    return rows


def host_rows(host_name: str, receiver: HostSettings, state: str, note: str,
              now: datetime | None = None) -> list[Row]:
    """Rows for a host the run could not read (``unreachable``) or that failed (``error``): what the
    controller knows of each endpoint, with that state and note."""
    now = now or utcnow()
    return [Row(host_name, endpoint.fqdn, state, *_expiry(receiver, endpoint.fqdn, now), note)
            for endpoint in receiver.endpoints]


def failed_row(row: Row) -> Row:
    return Row(row.host, row.fqdn, "error", row.expires, row.days_left, ERROR_NOTE)


def format_table(rows: list[Row], failed: set[str] = frozenset()) -> str:
    """The table; rows of hosts in ``failed`` show ``error``."""
    header = ("HOST", "FQDN", "STATE", "EXPIRES", "DAYS LEFT", "NOTE")
    lines = [header]
    for row in sorted(rows, key=lambda r: (r.host, r.fqdn.lower())):
        if row.host in failed:
            row = failed_row(row)
        lines.append((row.host, row.fqdn, row.state, row.expires, row.days_left, row.note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = ["--> BaRS receiver endpoints:"]
    for line in lines:
        text.append("    " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    return "\n".join(cell.rstrip() for cell in text) + "\n"


class StatusReport(BaseStateCallback):
    """Collects rows while hosts prepare; prints them once, after the last operation."""

    def __init__(self, state):
        self.state = state
        self.rows: dict[str, list[Row]] = {}
        self.printed = False
        self._last_op: str | None = None
        # Made while the first host prepares its operations: the hosts that have failed by then
        # are the ones pyinfra could not connect to.
        self.unreachable = {host.name for host in state.failed_hosts}
        # Hosts whose only failure is the last operation, tasks/refusals.py: they ran everything else.
        self.refusal_hosts: set[str] = set()
        atexit.register(self._at_exit)

    def operation_end(self, state, op_hash):  # pyinfra calls handlers as handler.method(state, ...)
        if self._last_op is None:
            order = state.get_op_order()
            self._last_op = order[-1] if order else ""
        if op_hash == self._last_op:
            self.print()

    def _at_exit(self):
        if self.state.is_executing:
            self.print()

    def final_rows(self) -> list[Row]:
        """Every endpoint of every host in this run (``--limit`` respected): the rows its host
        recorded, ``error`` for a host that failed, ``unreachable`` for one never reached."""
        failed = {host.name for host in self.state.failed_hosts} - self.refusal_hosts
        rows: list[Row] = []
        for host in self.state.inventory:
            if not self.state.is_host_in_limit(host):
                continue
            recorded = self.rows.get(host.name)
            receiver = host.data.get("receiver")
            if recorded is not None:
                rows += [failed_row(row) for row in recorded] if host.name in failed else recorded
            elif receiver is not None and host.name in self.unreachable:
                rows += host_rows(host.name, receiver, "unreachable", UNREACHABLE_NOTE)
            elif receiver is not None and host.name in failed:
                rows += host_rows(host.name, receiver, "error", ERROR_NOTE)
        return rows

    def print(self):
        if self.printed or not self.rows:
            return
        self.printed = True
        sys.stderr.write("\n" + format_table(self.final_rows()))
        sys.stderr.flush()


_reports: dict[int, StatusReport] = {}


def record_status(state, host_name: str, rows: list[Row]) -> None:
    """Remember this host's rows; the table is printed at the end of the run."""
    report = _reports.get(id(state))
    if report is None:
        report = _reports[id(state)] = StatusReport(state)
        state.add_callback_handler(report)
    report.rows[host_name] = rows


def refusal_failure(state, host, refused: dict[str, str]) -> bool:
    """python.call function of tasks/refusals.py: name each endpoint left as it is, and fail.

    Why a failing last operation: the run must exit non-zero for CI, but only after everything
    else on this host has been done; the status table then shows these endpoints as ``refused``
    and the host's others as they are, not ``error``.
    """
    report = _reports.get(id(state))
    if report is not None:
        report.refusal_hosts.add(host.name)
    for reason in refused.values():
        host.log_styled(f"left as it is: {reason}", fg="red", log_func=logger.error)
    return False
