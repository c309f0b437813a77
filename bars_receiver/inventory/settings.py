"""The validated settings one host is deployed from.

Inventory YAML and group data are parsed into these models once, on the controller, before
any host is touched (see ``inventory/loader.py``). Tasks read only these objects.
"""

from __future__ import annotations

import re

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator, SecretStr

from bars_receiver.certificates.ca_bundle import normalise_fingerprint
from bars_receiver.certificates.issued import IssuedCertificate
from bars_receiver.inventory import grammar
from bars_receiver.inventory.addresses import Network, check_union, parse_network
from bars_receiver.inventory.dn import normalise_dn
from bars_receiver.inventory.fqdn import check_fqdn, check_label, check_ods

Environment = Literal["int", "prod"]
Hosting = Literal["supplier", "provider"]
__all__ = ("Network", "parse_network")  # re-exported: firewall/nftables.py and older callers import them from here


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt setting must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictInput(Strict):
    """A model read from inventory YAML or group data: no type is coerced (strict mode), so
    YAML's ``"443"`` or ``true`` is refused where a number is needed, never converted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _grammar(check, *args):
    """An AfterValidator running ``check(value, *args)``, for Annotated fields."""
    return AfterValidator(lambda value: check(value, *args))


AppAction = Literal["restart", "reload", "none"]


def _whole_number(value: object) -> object:
    """pydantic matches a Literal of numbers by equality, so 4096.0 or true would pass as 4096 or 1."""
    if isinstance(value, (bool, float)):
        raise ValueError(f"{value!r} is not a whole number; write it without a decimal point, e.g. 2048")
    return value


def systemd_unit(value: str) -> str:
    """A systemd service unit name (systemd.unit(5)): what the deploy restarts or reloads."""
    if len(value) > 255 or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9:_.\\-]*(@[A-Za-z0-9:_.\\-]*)?\.service", value):
        raise ValueError(
            f"{value!r} is not a systemd service name; give the application's unit as systemctl shows it, "
            "e.g. 'bars-app.service' or 'kestrel@RX809.service'"
        )
    return value


Email = Annotated[str, _grammar(grammar.email)]
EnvName = Annotated[str, _grammar(grammar.env_name)]
DeployDir = Annotated[str, _grammar(grammar.deploy_dir)]


class Settings(StrictInput):
    """Per-environment settings: group_data/all.py, then group_data/<env>.py, then the
    inventory's ``settings:`` block, later ones winning.

    No field has a default here: every default lives in group_data/all.py, in one place.
    """

    environment: Environment
    fqdn_conventions: dict[Hosting, str]
    proxy_addresses: list[Annotated[Network, BeforeValidator(parse_network)]] = Field(min_length=1)
    base_dir: DeployDir
    listen_port: int = Field(ge=1, le=65535)
    key_size: Annotated[Literal[2048, 3072, 4096], BeforeValidator(_whole_number)]
    key_passphrase_env: EnvName | None
    bars_team_email: Email
    certificate_request_email: Email | None
    request_route: Literal["itoc", "dir"]
    tls_protocols: list[Literal["TLSv1.2", "TLSv1.3"]] = Field(min_length=1, max_length=2)
    tls_ciphers: Annotated[str, _grammar(grammar.cipher_list)]
    # Normalised to nginx's $ssl_client_s_dn form (inventory/dn.py); the loader notes any rewrite.
    client_dn_allowlist: list[Annotated[str, _grammar(normalise_dn)]] = Field(max_length=100)
    upstream_timeout: int = Field(ge=1, le=31)
    client_crl: Annotated[str, _grammar(grammar.repository_file, "files/crl/int.crl")] | None
    # Largest request body nginx accepts, in MB (README "TLS-MA listener" says why 50 by default).
    max_body_size: int = Field(ge=1, le=1024)
    # Disable Debian's default site (port 80) when it is the package's untouched file.
    disable_default_site: bool
    # Issued certificates and PKCS#12 (docs/certificates.md).
    ca_pins: dict[Annotated[str, _grammar(grammar.label_text, "pin label")],
                  Annotated[str, AfterValidator(normalise_fingerprint)]]
    renewal_days: int = Field(ge=1, le=365)
    pfx_profile: Literal["modern", "legacy"]
    pfx_password_env: EnvName | None
    app_group: str | None
    app_dir: DeployDir

    @field_validator("fqdn_conventions")
    @classmethod
    def _conventions(cls, value: dict[str, str]) -> dict[str, str]:
        for hosting, convention in value.items():
            grammar.fqdn_convention(convention, hosting)
        return value

    @field_validator("proxy_addresses")
    @classmethod
    def _breadth(cls, value: list[Network]) -> list[Network]:
        check_union(value)
        return value

    @field_validator("tls_protocols", "client_dn_allowlist")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        twice = sorted({item for item in value if value.count(item) > 1})
        if twice:
            raise ValueError(f"{twice[0]!r} is listed twice (after normalisation); list each once")
        return value

    @model_validator(mode="after")
    def _dir_needs_an_address(self) -> "Settings":
        if self.request_route == "dir" and not self.certificate_request_email:
            raise ValueError(
                "request_route 'dir' sends CSRs by e-mail: set certificate_request_email (dir@nhs.net for PROD)"
            )
        return self

    @field_validator("app_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and value == "root":
            raise ValueError("'root' is not a usable group name: it would make the application's files root's; give the application's group "
                             "such as 'barsapp', or leave app_group unset to keep everything root-only")
        return value if value is None else grammar.unix_name(value, "group name", "barsapp")


def _label(value: str) -> str:
    check_label(value, "name")
    return value


class Endpoint(StrictInput):
    """One receiver endpoint as written in the inventory. ``fqdn`` is resolved later against the
    environment's convention, because that needs the settings."""

    ods: Annotated[str, _grammar(check_ods)]
    supplier: Annotated[str, _grammar(_label)] | None = None
    provider: Annotated[str, _grammar(_label)] | None = None
    hosting: Hosting = "supplier"
    fqdn: Annotated[str, _grammar(check_fqdn)] | None = None
    # Parsed and rebuilt as scheme://host[:port] (grammar.upstream): nginx gets the rebuilt form.
    upstream: Annotated[str, _grammar(grammar.upstream)]
    receiver_path: Annotated[str, _grammar(grammar.receiver_path)] = "/"
    # Retired on purpose: unpublished, its key directory and hand-off archived on the host (retire.py).
    retired: bool = False
    # The application's systemd unit, told after this endpoint's PFX or key changed (application/unit.py).
    app_unit: Annotated[str, _grammar(systemd_unit)] | None = None
    app_action: AppAction = "restart"
    # Served by several hosts behind a TCP load balancer: each host its own key, CSR and certificate
    # (docs/ha.md). Every host listing the FQDN must say so.
    load_balanced: bool = False


# A file on the controller that ssh reads (never rendered on a host): plain path characters.
ControllerPath = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[A-Za-z0-9._/~+-]+$")]


MAX_ENDPOINTS_PER_HOST = 500


class HostEntry(StrictInput):
    """A host in the inventory: pyinfra connection data and the endpoints it serves."""

    ssh_hostname: Annotated[str, _grammar(grammar.host, "ssh_hostname")] | None = None
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_user: Annotated[str, _grammar(grammar.unix_name, "user name", "root")] = "root"
    ssh_key: ControllerPath | None = None
    ssh_known_hosts_file: ControllerPath | None = None
    # "no" and "off" would let anyone on the path answer as the host and receive the deploy's
    # secrets; "accept-new" trusts a host's first answer, for a host never reached before.
    ssh_strict_host_key_checking: Literal["yes", "accept-new"] = "yes"
    # 500: the largest count measured on one host (bench/scale.py: no-op, first run, nginx -t with
    # 500 servers); past it nothing here says a run, nginx's server-name hash or the host keep up.
    endpoints: list[Endpoint] = Field(min_length=1, max_length=MAX_ENDPOINTS_PER_HOST)

    def connection_data(self) -> dict[str, object]:
        data = self.model_dump(exclude={"endpoints"}, exclude_none=True)
        return data


def file_stem(endpoint) -> str:
    """An endpoint's request pack and certificate file name without suffix: its FQDN, or
    ``<fqdn>@<host>`` for a load-balanced one (``ResolvedEndpoint.pack_name``)."""
    return getattr(endpoint, "pack_name", None) or endpoint.fqdn


class ResolvedEndpoint(Strict):
    """An endpoint with its FQDN checked against the convention."""

    fqdn: str
    ods: str
    hosting: Hosting
    organisation: str
    upstream: str
    receiver_path: str
    app_unit: str | None = None
    app_action: AppAction = "restart"
    # For a load-balanced endpoint, "<fqdn>@<host>": the name of this host's request pack and
    # certificate file (requests/<inventory>/<fqdn>@<host>.csr, files/certs/<inventory>/<fqdn>@<host>.cer).
    pack_name: str | None = None

    def stem(self) -> str:
        """The request pack's and certificate file's name without suffix: the FQDN, or <fqdn>@<host>."""
        return self.pack_name or self.fqdn

    def receiver_url(self, port: int) -> str:
        netloc = self.fqdn if port == 443 else f"{self.fqdn}:{port}"
        return f"https://{netloc}{self.receiver_path}"


class HostSettings(Strict):
    """Everything the tasks need for one host."""

    inventory: str
    project_dir: str
    settings: Settings
    endpoints: tuple[ResolvedEndpoint, ...]
    key_passphrase: SecretStr | None = None
    # Checked certificates by FQDN; an endpoint without one is still "requested".
    certificates: dict[str, IssuedCertificate] = {}
    # FQDN -> why its certificate file was refused: that endpoint alone is left as it is.
    refused: dict[str, str] = {}
    # Endpoints marked retired: true; not in ``endpoints``, so no task but the retirement sees them.
    retired: tuple[ResolvedEndpoint, ...] = ()
    pfx_password: SecretStr | None = None
    # The checked client CRLs (PEM) when client_crl is set.
    client_crl_pem: str | None = None

    def endpoint_dir(self, fqdn: str) -> str:
        return f"{self.settings.base_dir}/{fqdn}"

    @property
    def local_upstream_ports(self) -> list[int]:
        """Ports of the applications this host serves on its own loopback: the firewall lets only
        the host itself reach them, so an application bound wider than loopback is not reached
        around the TLS-MA listener."""
        ports = (grammar.upstream_local_port(endpoint.upstream) for endpoint in self.endpoints)
        return sorted({port for port in ports if port is not None})

    @property
    def requests_dir(self) -> str:
        return f"{self.project_dir}/requests/{self.inventory}"

    def to_json(self) -> dict:
        """What ``pyinfra INVENTORY debug-inventory`` prints: secrets masked, certificates summarised."""
        data = self.model_dump(mode="json", exclude={"certificates", "client_crl_pem"})
        data["certificates"] = {
            fqdn: {"serial": c.serial, "issuer": c.issuer, "not_after": c.not_after.isoformat(), "source": c.source}
            for fqdn, c in self.certificates.items()
        }
        data["client_crl_pem"] = "(set)" if self.client_crl_pem else None
        return data
