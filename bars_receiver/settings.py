"""The validated settings one host is deployed from.

Inventory YAML and group data are parsed into these models once, on the controller, before
any host is touched (see ``inventory.py``). Tasks read only these objects.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator, SecretStr

from .certificates import IssuedCertificate, normalise_fingerprint
from .fqdn import check_ods

Environment = Literal["int", "prod"]
Hosting = Literal["supplier", "provider"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt setting must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_network(value: object) -> Network:
    """An address or CIDR; host bits set in a CIDR are refused, as they usually mean a typo."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an address; write it as a string such as '192.0.2.10' or '192.0.2.0/28'")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            widened = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4/IPv6 address or CIDR (e.g. '35.197.254.55' or '2001:db8::/64')"
            ) from None
        raise ValueError(f"{value!r} has host bits set; did you mean {str(widened)!r}?") from None
    if network.prefixlen == 0:
        raise ValueError(
            f"{value!r} is every address: the listener would be open to the whole internet; "
            "list the BaRS proxy egress addresses instead"
        )
    return network


class Settings(Strict):
    """Per-environment settings: group_data/all.py, then group_data/<env>.py, then the
    inventory's ``settings:`` block, later ones winning.

    No field has a default here: every default lives in group_data/all.py, in one place.
    """

    environment: Environment
    fqdn_conventions: dict[Hosting, str]
    proxy_addresses: list[Annotated[Network, BeforeValidator(parse_network)]] = Field(min_length=1)
    base_dir: str
    listen_port: int = Field(ge=1, le=65535)
    key_size: Literal[2048, 3072, 4096]
    key_passphrase_env: str | None
    bars_team_email: str
    certificate_request_email: str | None
    request_route: Literal["itoc", "dir"]
    tls_protocols: list[Literal["TLSv1.2", "TLSv1.3"]] = Field(min_length=1)
    tls_ciphers: str
    client_dn_allowlist: list[str]
    upstream_timeout: int = Field(ge=1, le=31)
    client_crl: str | None

    @field_validator("client_crl")
    @classmethod
    def _crl_path(cls, value: str | None) -> str | None:
        if value is not None:
            path = PurePosixPath(value)
            if path.is_absolute() or ".." in path.parts or not path.name:
                raise ValueError(
                    f"{value!r} must be a file in this repository, relative to its top, e.g. 'files/crl/int.crl'"
                )
        return value
    # Issued certificates and PKCS#12 (docs/certificates.md).
    ca_pins: dict[str, Annotated[str, AfterValidator(normalise_fingerprint)]]
    renewal_days: int = Field(ge=1, le=365)
    pfx_profile: Literal["modern", "legacy"]
    pfx_password_env: str | None
    app_group: str | None
    app_dir: str

    @model_validator(mode="after")
    def _dir_needs_an_address(self) -> "Settings":
        if self.request_route == "dir" and not self.certificate_request_email:
            raise ValueError(
                "request_route 'dir' sends CSRs by e-mail: set certificate_request_email (dir@nhs.net for PROD)"
            )
        return self

    @field_validator("tls_ciphers")
    @classmethod
    def _ciphers(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_+!@=.-]+(:[A-Za-z0-9_+!@=.-]+)*", value):
            raise ValueError(
                f"{value!r} is not an OpenSSL cipher list; separate suite names with ':' "
                "(e.g. 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256')"
            )
        return value

    @field_validator("client_dn_allowlist")
    @classmethod
    def _dns(cls, value: list[str]) -> list[str]:
        for dn in value:
            if "=" not in dn or any(c in dn for c in "\"\n\r"):
                raise ValueError(
                    f"{dn!r} is not a subject DN as nginx shows it (RFC 2253, e.g. "
                    "'CN=bars-proxy.int.api.service.nhs.uk,OU=Devices,O=nhs'); no quotes or newlines"
                )
        return value

    @field_validator("app_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and (value == "root" or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value)):
            raise ValueError(
                f"{value!r} is not a usable group name; give the application's group such as 'barsapp' "
                "(lower case, digits, '_' or '-'), or leave app_group unset to keep everything root-only"
            )
        return value

    @field_validator("app_dir")
    @classmethod
    def _plain_dir(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
            raise ValueError(f"{value!r} must be a plain absolute path (letters, digits, '.', '_', '-', '/')")
        return value

    @field_validator("base_dir", "app_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts or str(path) == "/":
            raise ValueError(f"{value!r} must be an absolute directory below / such as '/etc/bars-receiver'")
        return str(path)

    @field_validator("key_passphrase_env", "pfx_password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
            raise ValueError(
                f"{value!r} is not an environment variable name; use capitals, digits and "
                "underscores such as 'BARS_INT_KEY_PASSPHRASE'"
            )
        return value


class Endpoint(Strict):
    """One receiver endpoint as written in the inventory. ``fqdn`` is resolved later against the
    environment's convention, because that needs the settings."""

    ods: str
    supplier: str | None = None
    provider: str | None = None
    hosting: Hosting = "supplier"
    fqdn: str | None = None
    upstream: str
    receiver_path: str = "/"

    @field_validator("ods")
    @classmethod
    def _ods(cls, value: str) -> str:
        return check_ods(value)

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{value!r} is not an http(s) URL of the application; write e.g. 'http://127.0.0.1:5000'"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(
                f"{value!r} has a path, query or user; give scheme://host:port only, because the "
                "request path is passed to the application unchanged (e.g. 'http://127.0.0.1:5000')"
            )
        return value.rstrip("/")

    @field_validator("receiver_path")
    @classmethod
    def _path(cls, value: str) -> str:
        # nginx matches the path as a prefix: without the closing "/", '/bars' would also take '/barsX'.
        if (not value.startswith("/") or not value.endswith("/") or "//" in value
                or any(c.isspace() or c in "?#;{}'\"" for c in value)):
            raise ValueError(f"{value!r} must be a URL path that starts and ends with '/', e.g. '/' or '/bars/'")
        return value


SSHKey = Annotated[str, Field(min_length=1)]


class HostEntry(Strict):
    """A host in the inventory: pyinfra connection data and the endpoints it serves."""

    ssh_hostname: str | None = None
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_user: str = "root"
    ssh_key: SSHKey | None = None
    ssh_known_hosts_file: str | None = None
    ssh_strict_host_key_checking: Literal["yes", "no", "accept-new", "off"] = "yes"
    endpoints: list[Endpoint] = Field(min_length=1)

    def connection_data(self) -> dict[str, object]:
        data = self.model_dump(exclude={"endpoints"}, exclude_none=True)
        return data


class ResolvedEndpoint(Strict):
    """An endpoint with its FQDN checked against the convention."""

    fqdn: str
    ods: str
    hosting: Hosting
    organisation: str
    upstream: str
    receiver_path: str

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
    pfx_password: SecretStr | None = None
    # The checked client CRLs (PEM) when client_crl is set.
    client_crl_pem: str | None = None

    def endpoint_dir(self, fqdn: str) -> str:
        return f"{self.settings.base_dir}/{fqdn}"

    @property
    def requests_dir(self) -> str:
        return f"{self.project_dir}/requests/{self.inventory}"
