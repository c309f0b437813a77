"""The audit: every endpoint, its certificate and its request pack, from the repository alone.

``bin/audit [INVENTORY...] [--json] [--fail-within DAYS] [--crl-within DAYS]`` (or
``python -m bars_receiver.status.audit``). It reads inventories/<name>.yml, group_data/, files/certs/,
files/ca/, requests/ and git's index; it never contacts a host and needs no secret. Unlike a
deploy, it reports an expired or otherwise refused certificate instead of stopping, so the
scheduled job that should notice it can. The JSON schema is in README "Audit".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from bars_receiver.certificates.ca_bundle import load_ca_bundle
from bars_receiver.certificates.issued import check_certificate
from bars_receiver.certificates.pem import CertificateProblem, parse_certificates, utcnow
from bars_receiver.certificates.crl import _parse as parse_crls
from bars_receiver.certificates.x509 import fingerprint, spki_der
from bars_receiver.inventory.errors import InventoryError
from bars_receiver.inventory.loader import _Loader

SCHEMA = "bars-receiver-audit/1"
PROJECT = Path(__file__).resolve().parents[2]


class AuditError(Exception):
    """An inventory cannot be read: the message says which file and what to fix."""


@dataclass
class Git:
    """Which files git has committed as they are in the checkout (no git or no repository: none)."""

    root: Path

    def __post_init__(self):
        self.tracked: set[str] = set()
        self.changed: set[str] = set()
        self.available = False
        try:
            top = subprocess.run(["git", "-C", str(self.root), "rev-parse", "--show-toplevel"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            listed = subprocess.run(["git", "-C", top, "ls-files", "-z"], capture_output=True, text=True, check=True)
            status = subprocess.run(["git", "-C", top, "status", "--porcelain", "-z", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return
        self.available = True
        self.top = Path(top).resolve()
        self.tracked = {entry for entry in listed.stdout.split("\0") if entry}
        self.changed = {entry[3:] for entry in status.stdout.split("\0") if len(entry) > 3}

    def committed(self, path: Path) -> bool:
        """Tracked and unchanged since the last commit."""
        if not self.available or not path.exists():
            return False
        relative = str(path.resolve().relative_to(self.top))
        return relative in self.tracked and relative not in self.changed


def _csr_key_sha256(path: Path) -> str | None:
    try:
        csr = x509.load_pem_x509_csr(path.read_bytes())
    except (OSError, ValueError):
        return None
    return fingerprint(spki_der(csr.public_key()))


def _leaf(data: bytes, fqdn: str) -> x509.Certificate:
    certs = parse_certificates(data)
    for cert in certs:
        names = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
        if any(str(name).lower() == fqdn.lower() for name in names):
            return cert
    return certs[0]


def audit_inventory(project: Path, name: str, git: Git, now: datetime, crl_within: int) -> dict:
    yaml_path = project / "inventories" / f"{name}.yml"
    loader = _Loader(yaml_path.resolve(), project.resolve())
    document = loader.read_yaml()
    settings = loader.settings(document) if document else None
    entries = loader.hosts(document) if document else {}
    resolved = loader.resolve(settings, entries) if settings else {}
    if loader.problems or settings is None:
        raise AuditError(str(InventoryError(loader.problems)).replace("nothing was done on any host", "cannot audit it"))

    bundle = load_ca_bundle(project / "files" / "ca" / name, f"files/ca/{name}/", settings.ca_pins)
    ca_root = project / "files" / "ca"
    others = [load_ca_bundle(path, f"files/ca/{path.name}/") for path in sorted(ca_root.iterdir())
              if path.is_dir() and path.name != name] if ca_root.is_dir() else []
    endpoints = []
    for host_name, host_endpoints in resolved.items():
        for endpoint in host_endpoints:
            entry = _endpoint(project, name, host_name, endpoint.fqdn, settings.renewal_days,
                              bundle, others, git, now, stem=endpoint.stem())
            if endpoint.stem() in loader.retired:  # retired: true (bars_receiver/retire.py)
                entry["state"] = "retired"
            endpoints.append(entry)
    endpoints.sort(key=lambda e: (e["host"], e["fqdn"].lower()))
    return {
        "inventory": name,
        "environment": settings.environment,
        "listen_port": settings.listen_port,
        "proxy_addresses": [str(address) for address in settings.proxy_addresses],
        "client_dn_allowlist": list(settings.client_dn_allowlist or []),
        "renewal_days": settings.renewal_days,
        "client_crl": _crl(project, settings.client_crl, bundle, now, crl_within),
        "endpoints": endpoints,
    }


def _endpoint(project, inventory, host_name, fqdn, renewal_days, bundle, others, git, now, stem=None) -> dict:
    # stem: the files' name, "<fqdn>@<host>" for a load-balanced endpoint (docs/ha.md)
    stem = stem or fqdn
    requests = project / "requests" / inventory
    csr, next_csr = requests / f"{stem}.csr", requests / f"{stem}.next.csr"
    cert_path = project / "files" / "certs" / inventory / f"{stem}.cer"
    entry = {
        "host": host_name, "fqdn": fqdn, "state": "requested",
        "serial": None, "issuer": None, "not_after": None, "days_left": None, "public_key_sha256": None,
        "certificate": f"files/certs/{inventory}/{stem}.cer" if cert_path.exists() else None,
        "certificate_committed": git.committed(cert_path),
        "csr": f"requests/{inventory}/{stem}.csr" if csr.exists() else None,
        "csr_committed": git.committed(csr) and git.committed(csr.with_suffix(".md")),
        "next_csr": f"requests/{inventory}/{stem}.next.csr" if next_csr.exists() else None,
        "next_csr_committed": git.committed(next_csr) if next_csr.exists() else None,
        "certificate_matches": None,
        "problem": None,
    }
    if not cert_path.exists():
        if csr.exists() and _csr_key_sha256(csr) is None:
            entry["problem"] = f"requests/{inventory}/{stem}.csr does not parse as a CSR"
        return entry
    try:
        leaf = _leaf(cert_path.read_bytes(), fqdn)
    except CertificateProblem as problem:
        entry.update(state="invalid", problem=f"files/certs/{inventory}/{stem}.cer: {problem}")
        return entry
    key = fingerprint(spki_der(leaf.public_key()))
    days = (leaf.not_valid_after_utc - now).days
    matches = key in (_csr_key_sha256(csr), _csr_key_sha256(next_csr))
    state = "expired" if leaf.not_valid_after_utc <= now else ("renewing" if days < renewal_days else "active")
    entry.update(
        state=state, serial=f"{leaf.serial_number:X}", issuer=leaf.issuer.rfc4514_string(),
        not_after=f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}", days_left=days, public_key_sha256=key,
        certificate_matches=matches,
    )
    try:
        # Every deploy-time check; for an expired certificate the last one to run says so.
        check_certificate(cert_path.read_bytes(), fqdn, csr_path=csr, csr_label=entry["csr"] or str(csr.name),
                          bundle=bundle, others=others, source=entry["certificate"], now=now,
                          next_csr_path=next_csr, next_csr_label=entry["next_csr"] or "")
    except CertificateProblem as problem:
        entry["problem"] = str(problem)
        if state != "expired":
            entry["state"] = "invalid"
    return entry


def _crl(project: Path, client_crl: str | None, bundle, now: datetime, crl_within: int) -> dict | None:
    if client_crl is None:
        return None
    path = project / client_crl
    result = {"path": client_crl, "next_update": None, "days_left": None, "stale": True, "problem": None}
    try:
        crls = parse_crls(path.read_bytes())
    except FileNotFoundError:
        result["problem"] = "does not exist"
        return result
    except ValueError as error:
        result["problem"] = f"is not a PEM or DER CRL ({error})"
        return result
    updates = [crl.next_update_utc for crl in crls if crl.next_update_utc is not None]
    if not updates:
        result["problem"] = "has no next update"
        return result
    soonest = min(updates)
    result["next_update"] = f"{soonest:%Y-%m-%dT%H:%M:%SZ}"
    result["days_left"] = (soonest - now).days
    result["stale"] = soonest - now < timedelta(days=crl_within)
    if soonest <= now:
        result["problem"] = f"expired on {soonest:%Y-%m-%d %H:%M} UTC: nginx refuses every client"
    elif result["stale"]:
        result["problem"] = f"next update {soonest:%Y-%m-%d %H:%M} UTC is less than {crl_within} days away"
    return result


def due(report: dict, within: int) -> list[str]:
    """What ``--fail-within`` fails on: certificates expiring within ``within`` days (or expired, or
    refused) and stale client CRLs."""
    reasons = []
    for inventory in report["inventories"]:
        for e in inventory["endpoints"]:
            if e["state"] == "invalid":
                reasons.append(f"{inventory['inventory']}: {e['fqdn']}: {e['problem']}")
            elif e["days_left"] is not None and e["days_left"] < within:
                reasons.append(f"{inventory['inventory']}: {e['fqdn']}: certificate "
                               + (f"expired {-e['days_left']} days ago" if e["state"] == "expired"
                                  else f"expires in {e['days_left']} days"))
        crl = inventory["client_crl"]
        if crl is not None and crl["stale"]:
            reasons.append(f"{inventory['inventory']}: client CRL {crl['path']}: {crl['problem']}")
    return reasons


def format_report(report: dict) -> str:
    lines = []
    header = ("HOST", "FQDN", "STATE", "SERIAL", "NOT AFTER", "DAYS", "KEY SHA-256", "CSR", "CERT", "MATCH")
    for inventory in report["inventories"]:
        lines.append(f"--> inventory {inventory['inventory']} ({inventory['environment']}): listen_port "
                     f"{inventory['listen_port']}, proxy_addresses {', '.join(inventory['proxy_addresses'])}, "
                     f"client_dn_allowlist {', '.join(inventory['client_dn_allowlist']) or '(any)'}")
        crl = inventory["client_crl"]
        if crl is not None:
            lines.append(f"    client CRL {crl['path']}: next update {crl['next_update'] or '-'}"
                         + (f" ({crl['problem']})" if crl["problem"] else ""))
        rows = [header]
        for e in inventory["endpoints"]:
            rows.append((
                e["host"], e["fqdn"], e["state"], e["serial"] or "-", (e["not_after"] or "-")[:10],
                "-" if e["days_left"] is None else str(e["days_left"]),
                (e["public_key_sha256"] or "-")[:23],
                ("committed" if e["csr_committed"] else "uncommitted") if e["csr"] else "missing",
                ("committed" if e["certificate_committed"] else "uncommitted") if e["certificate"] else "-",
                "-" if e["certificate_matches"] is None else ("yes" if e["certificate_matches"] else "NO"),
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            lines.append(("    " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths))).rstrip())
        for e in inventory["endpoints"]:
            if e["issuer"]:
                lines.append(f"    {e['fqdn']}: issuer {e['issuer']}")
            if e["problem"]:
                lines.append(f"    {e['fqdn']}: PROBLEM {e['problem']}")
    return "\n".join(lines) + "\n"


def run_audit(project: Path, names: list[str], now: datetime | None = None, crl_within: int = 2) -> dict:
    now = now or utcnow()
    git = Git(project)
    available = sorted(path.stem for path in (project / "inventories").glob("*.yml"))
    for name in names:
        if name not in available:
            raise AuditError(f"no inventory {name!r}: inventories/{name}.yml does not exist "
                             f"(there are: {', '.join(available)})")
    return {
        "schema": SCHEMA,
        "generated_at": f"{now:%Y-%m-%dT%H:%M:%SZ}",
        "git": git.available,
        "inventories": [audit_inventory(project, name, git, now, crl_within) for name in (names or available)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/audit", description="Every endpoint, certificate and request pack, from the repository alone.")
    parser.add_argument("inventories", nargs="*", metavar="INVENTORY",
                        help="inventory names (inventories/<name>.yml); default: all")
    parser.add_argument("--json", action="store_true", help="print the JSON report (schema: README 'Audit')")
    parser.add_argument("--fail-within", type=int, metavar="DAYS",
                        help="exit 1 if a certificate expires within DAYS days (or has expired, or is refused), "
                             "or a client CRL is stale")
    parser.add_argument("--crl-within", type=int, default=2, metavar="DAYS",
                        help="a client CRL is stale when its next update is fewer than DAYS days away (default 2)")
    parser.add_argument("--project", type=Path, default=PROJECT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        report = run_audit(args.project, args.inventories, crl_within=args.crl_within)
    except AuditError as error:
        print(f"audit: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(format_report(report))
    if args.fail_within is not None:
        reasons = due(report, args.fail_within)
        for reason in reasons:
            print(f"audit: DUE {reason}", file=sys.stderr)
        if reasons:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
