"""The per-endpoint status table printed at the end of each run.

It is printed by a pyinfra state callback after the last operation (or, when the CLI runs
operations without those callbacks, e.g. ``--serial``, at exit; or at exit of a ``--dry`` run, as
the run would leave it), to stderr: it is not an operation, so an unchanged run still reports
zero changes, and ``--json`` stdout stays parseable. The same rows are written as JSON for CI
(``status/<inventory>.json``), and an opt-in exit status says when a person is needed.

Why this module is long: the rows, the table, the JSON document, the attention exit status and the
pyinfra callback that prints them at the right moment (after the last operation; at exit under
``--serial`` or ``--dry``) are one report, read by one person at the end of a run; the offline audit
is apart (``audit``).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyinfra import logger
from pyinfra.api import DeployError
from pyinfra.api.state import BaseStateCallback
from pyinfra_cli.prints import print_meta

from bars_receiver.certificates.facts import CERT, InstalledCertificates
from bars_receiver.certificates.pem import utcnow
from bars_receiver.inventory.settings import HostSettings, file_stem
from bars_receiver.run_mode import cli_params


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
                    f"awaiting certificate: send requests/{receiver.inventory}/{file_stem(endpoint)}.csr")
            rows.append(Row(host_name, endpoint.fqdn, "requested", "-", "-", note))
            continue
        days = certificate.days_left(now)
        state = certificate.state(receiver.settings.renewal_days, now)
        # tasks/keys.py stages the next key and CSR in this same run; the .next pack is what to send.
        note = (f"next key staged: send requests/{receiver.inventory}/{file_stem(endpoint)}.next.csr"
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


def format_table(rows: list[Row], failed: set[str] = frozenset(), title: str = "BaRS receiver endpoints") -> str:
    """The table; rows of hosts in ``failed`` show ``error``."""
    header = ("HOST", "FQDN", "STATE", "EXPIRES", "DAYS LEFT", "NOTE")
    lines = [header]
    for row in sorted(rows, key=lambda r: (r.host, r.fqdn.lower())):
        if row.host in failed:
            row = failed_row(row)
        lines.append((row.host, row.fqdn, row.state, row.expires, row.days_left, row.note))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [f"--> {title}:"]
    for line in lines:
        text.append("    " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1])
    return "\n".join(cell.rstrip() for cell in text) + "\n"


# Opt-in exit status for scheduled jobs: see README "Status for CI".
FAIL_ON_ATTENTION = "BARS_FAIL_ON_ATTENTION"
ATTENTION_DAYS = "BARS_ATTENTION_DAYS"
STATUS_JSON = "BARS_STATUS_JSON"
ATTENTION_EXIT = 3


def attention(row: Row, within_days: int | None = None) -> str | None:
    """Why this endpoint needs a person, or None.

    ``error``, ``unreachable`` and ``refused`` rows, every ``renewing`` endpoint (its renewed
    certificate has not been committed yet: the .next request must be sent or chased), an expired
    certificate, and, with ``within_days``, any certificate expiring within that many days.
    """
    if row.state in ("error", "unreachable", "refused"):
        return row.note or row.state
    if row.days_left.lstrip("-").isdigit():
        days = int(row.days_left)
        if days < 0:
            return f"the certificate expired {-days} days ago"
        if within_days is not None and days < within_days:
            return f"the certificate expires in {days} days (fewer than {ATTENTION_DAYS}={within_days})"
    if row.state == "renewing":
        return "renewing: the renewed certificate has not been committed yet; send or chase the .next.csr request"
    return None


def status_document(rows: list[Row], inventory: str | None, environment: str | None, dry_run: bool,
                    within_days: int | None = None, now: datetime | None = None) -> dict:
    """The JSON status (schema in README "Status for CI"): the table's rows in its order, each
    with its attention reason."""
    endpoints = []
    for row in sorted(rows, key=lambda r: (r.host, r.fqdn.lower())):
        endpoints.append({
            "host": row.host,
            "fqdn": row.fqdn,
            "state": row.state,
            "expires": None if row.expires == "-" else row.expires,
            "days_left": int(row.days_left) if row.days_left.lstrip("-").isdigit() else None,
            "note": row.note,
            "attention": attention(row, within_days),
        })
    return {
        "schema": "bars-receiver-status/1",
        "inventory": inventory,
        "environment": environment,
        "generated_at": f"{(now or utcnow()):%Y-%m-%dT%H:%M:%SZ}",
        "dry_run": dry_run,
        "attention_days": within_days,
        "needs_attention": any(e["attention"] for e in endpoints),
        "endpoints": endpoints,
    }


def attention_days_from_env() -> int | None:
    value = os.environ.get(ATTENTION_DAYS, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{ATTENTION_DAYS}={value!r}: must be a whole number of days, e.g. 30")
    return int(value)


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
        params = cli_params()  # the CLI's context is gone by the time atexit runs
        self.dry = bool(params.get("dry"))
        self.plan_skipped = self.dry and bool(params.get("yes")) and not params.get("json_output")
        try:
            self.within_days = attention_days_from_env()
        except ValueError as error:
            raise DeployError(f"{error}; nothing was done") from None
        self.fail_on_attention = os.environ.get(FAIL_ON_ATTENTION, "") not in ("", "0")
        self.needs_attention = False
        atexit.register(self._at_exit)

    def operation_end(self, state, op_hash):  # pyinfra calls handlers as handler.method(state, ...)
        if self._last_op is None:
            order = state.get_op_order()
            self._last_op = order[-1] if order else ""
        if op_hash == self._last_op:
            self.print()

    def _at_exit(self):
        if self.dry:
            if self.plan_skipped:  # pyinfra prints no plan with -y; a dry run must show one
                sys.stderr.write("--> Detected changes (dry run):\n")
                sys.stderr.flush()
                print_meta(self.state)
            self.print()
        elif self.state.is_executing:
            self.print()
        if self.printed and self.fail_on_attention and self.needs_attention and not self.state.failed_hosts:
            sys.stderr.write(f"--> Endpoints need a person (see ATTENTION above); exit status {ATTENTION_EXIT} "
                             f"because {FAIL_ON_ATTENTION} is set\n")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(ATTENTION_EXIT)  # atexit cannot change the status sys.exit() already chose

    def _inventory(self) -> tuple[str | None, str | None, str | None]:
        """(inventory, environment, project_dir) of this run's hosts."""
        for host in self.state.inventory:
            receiver = host.data.get("receiver")
            if receiver is not None:
                return receiver.inventory, receiver.settings.environment, receiver.project_dir
        return None, None, None

    def status_path(self, inventory: str | None, project_dir: str | None) -> Path | None:
        override = os.environ.get(STATUS_JSON, "").strip()
        if override:
            return Path(override)
        if inventory is None or project_dir is None:
            return None
        return Path(project_dir) / "status" / f"{inventory}.json"

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
        rows = self.final_rows()
        inventory, environment, project_dir = self._inventory()
        document = status_document(rows, inventory, environment, self.dry, self.within_days)
        self.needs_attention = document["needs_attention"]
        title = "BaRS receiver endpoints, as this run would leave them (dry run)" if self.dry else "BaRS receiver endpoints"
        text = "\n" + format_table(rows, title=title)
        for entry in document["endpoints"]:
            if entry["attention"]:
                text += f"    ATTENTION {entry['host']} {entry['fqdn']}: {entry['attention']}\n"
        path = None if self.dry else self.status_path(inventory, project_dir)
        if path is not None:
            from bars_receiver.request_packs import write_atomically  # noqa: PLC0415  (request_packs imports pyinfra ops)
            write_atomically(path, json.dumps(document, indent=2) + "\n")
            text += f"    status written to {path}\n"
        sys.stderr.write(text)
        sys.stderr.flush()


def _report(state, create: bool = True) -> StatusReport | None:
    """This run's report: it lives on the run's own pyinfra State, as one of its callback handlers
    (which is how it prints at the end), so no module-level state outlives or spans runs."""
    for handler in state.callback_handlers:
        if isinstance(handler, StatusReport):
            return handler
    if not create:
        return None
    report = StatusReport(state)
    state.add_callback_handler(report)
    return report


def record_status(state, host_name: str, rows: list[Row]) -> None:
    """Remember this host's rows; the table is printed at the end of the run."""
    _report(state).rows[host_name] = rows


def add_status(state, host_name: str, rows: list[Row]) -> None:
    """Add rows to this host's (retired and unmanaged endpoints: tasks/retire.py)."""
    if rows:
        _report(state).rows.setdefault(host_name, []).extend(rows)


def refusal_failure(state, host, refused: dict[str, str]) -> bool:
    """python.call function of tasks/refusals.py: name each endpoint left as it is, and fail.

    Why a failing last operation: the run must exit non-zero for CI, but only after everything
    else on this host has been done; the status table then shows these endpoints as ``refused``
    and the host's others as they are, not ``error``.
    """
    report = _report(state, create=False)
    if report is not None:
        report.refusal_hosts.add(host.name)
    for reason in refused.values():
        host.log_styled(f"left as it is: {reason}", fg="red", log_func=logger.error)
    return False
