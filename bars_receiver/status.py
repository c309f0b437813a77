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


def endpoint_rows(host_name: str, receiver: HostSettings, installed: InstalledCertificates,
                  now: datetime | None = None) -> list[Row]:
    """One row per endpoint: requested (no certificate yet), active, or renewing (inside renewal_days).

    A renewed certificate (for the next key) is fresh, so the run that swaps keys shows ``active``.
    """
    now = now or utcnow()
    rows = []
    for endpoint in receiver.endpoints:
        certificate = receiver.certificates.get(endpoint.fqdn)
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


def format_table(rows: list[Row], failed: set[str] = frozenset()) -> str:
    header = ("HOST", "FQDN", "STATE", "EXPIRES", "DAYS LEFT", "NOTE")
    lines = [header]
    for row in sorted(rows, key=lambda r: (r.host, r.fqdn.lower())):
        if row.host in failed:
            lines.append((row.host, row.fqdn, "error", row.expires, row.days_left, "the run failed on this host (see above)"))
        else:
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

    def print(self):
        if self.printed or not self.rows:
            return
        self.printed = True
        failed = {host.name for host in self.state.failed_hosts}
        rows = [row for rows in self.rows.values() for row in rows]
        sys.stderr.write("\n" + format_table(rows, failed))
        sys.stderr.flush()


_reports: dict[int, StatusReport] = {}


def record_status(state, host_name: str, rows: list[Row]) -> None:
    """Remember this host's rows; the table is printed at the end of the run."""
    report = _reports.get(id(state))
    if report is None:
        report = _reports[id(state)] = StatusReport(state)
        state.add_callback_handler(report)
    report.rows[host_name] = rows
