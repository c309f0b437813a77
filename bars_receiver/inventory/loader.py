"""Turn an inventory YAML file and the group data into pyinfra hosts with validated settings.

Called from ``inventories/<name>.py`` while pyinfra loads the inventory: an error here stops the
run before any host is contacted.

Why this module is long: it is the one pass that collects every problem of an inventory before it
stops (YAML, layering over group data, settings, hosts, ports and machines, secrets, then
certificates and the client CRL), so the operator fixes them all at once; each method of ``_Loader``
is one check, in the order ``load_hosts`` runs them. The wording of pydantic's errors (``messages``)
and each endpoint's FQDN (``endpoints``) live apart.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import runpy
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import SecretStr, ValidationError

from pyinfra import logger

from bars_receiver.certificates.ca_bundle import CABundle, load_ca_bundle
from bars_receiver.certificates.crl import check_client_crl
from bars_receiver.certificates.issued import IssuedCertificate, check_inventory_certificates
from bars_receiver.inventory import endpoints, grammar
from bars_receiver.inventory.dn import notes as dn_notes
from bars_receiver.inventory.errors import InventoryError, Problem
from bars_receiver.inventory.messages import TOP_LEVEL_KEYS, problems_from
from bars_receiver.inventory.settings import HostEntry, HostSettings, ResolvedEndpoint, Settings
from bars_receiver.inventory.yaml12 import YamlProblem, load_file

ENVIRONMENTS = ("int", "prod")
MIN_PASSPHRASE = 4  # openssl refuses shorter PEM passphrases
MIN_PFX_PASSWORD = 8
# Settings an inventory may override although group_data/<environment>.py sets them: NHS England
# publishes new proxy addresses from time to time (and the lab needs its own).
ENVIRONMENT_OVERRIDABLE = frozenset({"proxy_addresses"})


class GroupDataError(Exception):
    """A group data file that does not run."""


def _group_data(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        values = runpy.run_path(str(path))
    except Exception as error:  # noqa: BLE001 - any failure of the file becomes a message naming it
        raise GroupDataError(f"does not run as Python: {type(error).__name__}: {error}") from None
    return {
        key: value
        for key, value in values.items()
        if not key.startswith("_") and not isinstance(value, ModuleType) and not callable(value)
    }


_INVENTORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


def _shown(key: object) -> str:
    """A key from the YAML as it may appear in a message: printable, short."""
    text = str(key)
    return text if len(text) <= 60 and text.isprintable() else repr(text)[:60]


def _machine(address: str) -> str:
    """One spelling per machine: IPv4-mapped IPv6 is its IPv4 address, and every loopback name or
    address (localhost, 127.0.0.1, ::1) is the controller's own machine."""
    name = address.lower().rstrip(".")
    if name in ("localhost", "localhost.localdomain"):
        return "loopback"
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return name
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return "loopback" if ip.is_loopback else str(ip)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _Loader:
    """Collects every problem in one pass so the operator fixes them all at once."""

    def __init__(self, yaml_path: Path, project_dir: Path):
        self.yaml_path = yaml_path
        self.project_dir = project_dir
        self.file = _relative(yaml_path, project_dir)
        self.problems: list[Problem] = []
        self.sources: dict[str, str] = {}  # setting name -> file that supplied it
        self.ca_bundle: CABundle | None = None  # files/ca/<inventory>/ as the certificate check read it
        self.refused: dict[str, str] = {}  # FQDN -> why its certificate file was refused
        self.retired: set[str] = set()  # FQDNs of endpoints marked retired: true

    def fail(self, field: str, message: str, file: str | None = None) -> None:
        self.problems.append(Problem(file or self.file, field, message))

    def read_yaml(self) -> dict[str, Any]:
        # The name becomes requests/<name>/, files/ca/<name>/ and the host's managed-by record.
        if not _INVENTORY_NAME.fullmatch(self.yaml_path.stem):
            self.fail("", f"the inventory's name {self.yaml_path.stem!r} (its file name) names directories and is "
                      "recorded on each host: use 1-64 letters, digits, '-' and '_', e.g. 'int' or 'lab-fleet'")
            return {}
        try:
            document = load_file(self.yaml_path)
        except FileNotFoundError:
            self.fail("", "file not found; each inventories/<name>.py reads inventories/<name>.yml beside it")
            return {}
        except YamlProblem as error:
            self.fail("", str(error))
            return {}
        except OSError as error:
            self.fail("", f"cannot be read: {error.strerror}")
            return {}
        if not isinstance(document, dict):
            self.fail("", "must be a mapping with keys: environment, settings, hosts")
            return {}
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(TOP_LEVEL_KEYS)}"
                self.fail(_shown(key), f"unknown top-level key{hint}")
        return document

    def settings(self, document: dict[str, Any]) -> Settings | None:
        environment = document.get("environment")
        if environment not in ENVIRONMENTS:
            self.fail("environment", f"is {environment!r}; it must be one of: {', '.join(ENVIRONMENTS)}")
            return None
        overrides = document.get("settings") or {}
        if not isinstance(overrides, dict):
            self.fail("settings", "must be a mapping of setting names to values")
            return None
        layers = []
        for path in (self.project_dir / "group_data" / "all.py", self.project_dir / "group_data" / f"{environment}.py"):
            try:
                layers.append((path, _group_data(path)))
            except GroupDataError as error:
                self.fail("", str(error), _relative(path, self.project_dir))
                return None
        merged: dict[str, Any] = {}
        source: dict[str, str] = {}
        for path, values in layers:
            for key, value in values.items():
                if key in Settings.model_fields:
                    merged[key] = value
                    source[key] = _relative(path, self.project_dir)
        environment_file = _relative(layers[1][0], self.project_dir)
        for key, value in overrides.items():
            if key in layers[1][1] and key not in ENVIRONMENT_OVERRIDABLE:
                self.fail(
                    f"settings.{_shown(key)}",
                    f"is a fact of the {environment.upper()} environment, set in {environment_file} for every "
                    f"{environment} inventory; an inventory cannot override it. Remove it here; if the fact itself "
                    f"changed, change {environment_file} (reviewed like any change)",
                )
                continue
            merged[key] = value
            source[key] = self.file
        merged["environment"] = environment
        source["environment"] = self.file
        self.sources = source
        try:
            settings = Settings.model_validate(merged)
        except ValidationError as error:
            def where(loc: tuple) -> tuple[str, tuple]:
                file = source.get(str(loc[0]) if loc else "", self.file)
                return file, ("settings",) if file == self.file else ()

            self.problems += problems_from(error, where)
            return None
        self.note_rewrites(merged, settings)
        self.directories(settings)
        return settings

    def note_rewrites(self, merged: dict[str, Any], settings: Settings) -> None:
        """Say so when an allow-list DN was rewritten into the form nginx compares."""
        file, field = self.setting_field("client_dn_allowlist")
        for index, (written, normalised) in enumerate(zip(merged.get("client_dn_allowlist", []),
                                                         settings.client_dn_allowlist)):
            note = dn_notes(written, normalised)
            if note:
                logger.warning(f"{file}: {field}[{index}]: {note}")

    def directories(self, settings: Settings) -> None:
        """base_dir stays root-only and app_dir is group-readable: neither may hold the other."""
        if grammar.overlaps(settings.base_dir, settings.app_dir):
            file, field = self.setting_field("app_dir")
            self.fail(field, f"{settings.app_dir!r} overlaps base_dir {settings.base_dir!r} (compared after "
                      "normalising both); the application's directory must be outside the root-only key "
                      "directory, e.g. '/etc/bars-receiver-app'", file)

    def passphrase(self, settings: Settings) -> SecretStr | None:
        name = settings.key_passphrase_env
        if name is None:
            return None
        value = os.environ.get(name)
        if not value:
            self.fail(
                "settings.key_passphrase_env",
                f"environment variable {name} is not set or empty; export it from your CI secret store, "
                "or remove key_passphrase_env to make unencrypted keys",
            )
            return None
        if len(value) < MIN_PASSPHRASE or "\n" in value or "\r" in value:
            self.fail(
                "settings.key_passphrase_env",
                f"the value of {name} must be at least {MIN_PASSPHRASE} characters on one line "
                "(openssl refuses shorter PEM passphrases)",
            )
            return None
        return SecretStr(value)

    def setting_field(self, name: str) -> tuple[str, str]:
        """(file, field) naming where a setting's value came from, for messages."""
        file = self.sources.get(name, self.file)
        return file, f"settings.{name}" if file == self.file else name

    def pfx_password(self, settings: Settings) -> SecretStr | None:
        """The PKCS#12 password from the CI secret named by pfx_password_env; None = generate on host."""
        name = settings.pfx_password_env
        if name is None:
            return None
        file, field = self.setting_field("pfx_password_env")
        value = os.environ.get(name)
        if not value:
            self.fail(field, f"environment variable {name} is not set or empty; export it from your CI secret "
                      "store, or remove pfx_password_env to have each host generate its own PFX password", file)
            return None
        # ASCII only: PKCS#12 password encoding of other characters differs between OpenSSL and Windows.
        if len(value) < MIN_PFX_PASSWORD or not (value.isascii() and value.isprintable()):
            self.fail(field, f"the value of {name} must be at least {MIN_PFX_PASSWORD} printable ASCII characters "
                      "on one line (other characters are encoded differently by OpenSSL and Windows)", file)
            return None
        return SecretStr(value)

    def certificates(self, settings: Settings, resolved: dict[str, list[ResolvedEndpoint]]) -> dict[str, IssuedCertificate]:
        """Check files/certs/<inventory>/*.cer against CSRs and files/ca/<inventory>/ (certificates/issued.py)."""
        check = check_inventory_certificates(
            self.project_dir,
            self.yaml_path.stem,
            [endpoint.stem() for endpoints in resolved.values() for endpoint in endpoints
             if endpoint.stem() not in self.retired],
            retired=sorted(self.retired),
            ca_pins=settings.ca_pins,
            renewal_days=settings.renewal_days,
            pins_file=self.sources.get("ca_pins", "group_data/all.py"),
        )
        self.problems += check.problems
        for warning in check.warnings:
            logger.warning(warning)
        # A refused certificate stops only its own endpoint (reported again in the status table).
        self.refused = check.refused
        for reason in check.refused.values():
            logger.warning(f"{reason}; this endpoint is left as it is on its host, the others go ahead")
        self.ca_bundle = check.bundle
        return check.certificates

    def client_crl(self, settings: Settings) -> str | None:
        """Check the client_crl file against files/ca/<inventory>/ (certificates/crl.py); its PEM, or None."""
        if settings.client_crl is None:
            return None
        inventory = self.yaml_path.stem
        bundle = self.ca_bundle or load_ca_bundle(self.project_dir / "files" / "ca" / inventory, f"files/ca/{inventory}/")
        check = check_client_crl(self.project_dir / settings.client_crl, bundle)
        file, field = self.setting_field("client_crl")
        for message in check.problems:
            self.fail("", f"{message} (named by {field} in {file})", settings.client_crl)
        for warning in check.warnings:
            logger.warning(f"{settings.client_crl}: {warning}")
        return check.pem

    def hosts(self, document: dict[str, Any]) -> dict[str, HostEntry]:
        raw = document.get("hosts")
        if not isinstance(raw, dict) or not raw:
            self.fail("hosts", "must map at least one host name to its connection data and endpoints")
            return {}
        entries = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not _HOST_NAME.fullmatch(name):
                self.fail(f"hosts.{_shown(name)}", "is not a usable host name: letters, digits, '.', '_' and '-', "
                          "starting with a letter or digit, at most 253 characters, e.g. 'bars-int-1.example.internal'")
                continue
            if not isinstance(value, dict):
                self.fail(f"hosts.{name}", "must be a mapping with ssh_* connection data and endpoints")
                continue
            try:
                entries[str(name)] = HostEntry.model_validate(value)
            except ValidationError as error:
                self.problems += problems_from(error, lambda loc, name=str(name): (self.file, ("hosts", name)))
        return entries

    def machines(self, entries: dict[str, HostEntry]) -> None:
        """One machine once: two host entries reaching the same address and SSH port would race each
        other on the same files. Compared as written after normalising (case, a closing dot, IP
        spelling, 'localhost'); no DNS lookup is made."""
        seen: dict[tuple[str, int], str] = {}
        for name, entry in entries.items():
            key = (_machine(entry.ssh_hostname or name), entry.ssh_port)
            if key in seen:
                self.fail(f"hosts.{name}", f"reaches the same machine as hosts.{seen[key]} ({key[0]} port {key[1]}); "
                          "list each machine once, with all its endpoints under one host")
                continue
            seen[key] = name

    def ports(self, settings: Settings, entries: dict[str, HostEntry]) -> None:
        """The firewall drops the listener port for all but the proxy: on the SSH port that would
        cut the deploy's own connection half way through the run. It also keeps an application on
        the host's loopback to the host itself, so that port may be neither SSH nor the listener."""
        for name, entry in entries.items():
            if entry.ssh_port == settings.listen_port:
                self.fail(
                    "settings.listen_port",
                    f"{settings.listen_port} is also the SSH port of hosts.{name}; the firewall would lock "
                    "the deploy out. Use another listen_port (443 is the usual one)",
                )
            for index, endpoint in enumerate(entry.endpoints):
                port = grammar.upstream_local_port(endpoint.upstream)
                if port == entry.ssh_port:
                    self.fail(
                        f"hosts.{name}.endpoints[{index}].upstream",
                        f"{endpoint.upstream} is on this host's SSH port {port}; the firewall keeps a loopback "
                        "application's port to the host itself and would lock the deploy out. Give the "
                        "application's own port, e.g. 'http://127.0.0.1:5000'",
                    )
                elif port == settings.listen_port:
                    self.fail(
                        f"hosts.{name}.endpoints[{index}].upstream",
                        f"{endpoint.upstream} is the listener's own port {port}: nginx would call itself. Give "
                        "the application's own port, e.g. 'http://127.0.0.1:5000'",
                    )

    def resolve(self, settings: Settings, entries: dict[str, HostEntry]) -> dict[str, list[ResolvedEndpoint]]:
        """Every endpoint's FQDN (endpoints.py); notes the retired ones."""
        return endpoints.resolve(settings, entries, self.fail, self.retired)


def load_hosts(yaml_path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Read ``yaml_path`` and return pyinfra hosts ``(name, data)``, or raise ``InventoryError``.

    Any other exception is a defect in the checks, not in the input; it is still reported as a
    message naming the file (never a traceback), so the operator knows which input set it off.
    """
    try:
        return _load_hosts(Path(yaml_path))
    except InventoryError:
        raise
    except Exception as error:  # noqa: BLE001 - the boundary: every input ends as a message
        path = Path(yaml_path).resolve()
        file = _relative(path, path.parent.parent)
        raise InventoryError([Problem(file, "", f"could not be checked ({type(error).__name__}: {error}); this is "
                                      "a defect in the deploy's input checks: report it with this file")]) from None


def _load_hosts(yaml_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """load_hosts without the last-resort guard.

    Each host's data holds its connection settings and ``receiver``: a ``HostSettings``.
    """
    yaml_path = Path(yaml_path).resolve()
    project_dir = yaml_path.parent.parent
    loader = _Loader(yaml_path, project_dir)
    document = loader.read_yaml()
    settings = loader.settings(document) if document else None
    passphrase = loader.passphrase(settings) if settings else None
    entries = loader.hosts(document) if document else {}
    resolved = loader.resolve(settings, entries) if settings else {}
    if settings:
        loader.ports(settings, entries)
    loader.machines(entries)
    pfx_password = loader.pfx_password(settings) if settings else None
    certificates = loader.certificates(settings, resolved) if settings and not loader.problems else {}
    client_crl_pem = loader.client_crl(settings) if settings and not loader.problems else None
    if loader.problems:
        raise InventoryError(loader.problems)
    hosts = []
    for name, entry in entries.items():
        receiver = HostSettings(
            inventory=yaml_path.stem,
            project_dir=str(project_dir),
            settings=settings,
            endpoints=tuple(e for e in resolved[name] if e.stem() not in loader.retired),
            retired=tuple(e for e in resolved[name] if e.stem() in loader.retired),
            key_passphrase=passphrase,
            certificates={e.fqdn: certificates[e.stem()] for e in resolved[name] if e.stem() in certificates},
            refused={e.fqdn: loader.refused[e.stem()] for e in resolved[name] if e.stem() in loader.refused},
            pfx_password=pfx_password,
            client_crl_pem=client_crl_pem,
        )
        hosts.append((name, {**entry.connection_data(), "receiver": receiver}))
    return hosts
