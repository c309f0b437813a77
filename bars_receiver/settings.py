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

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

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
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            widened = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4/IPv6 address or CIDR (e.g. '35.197.254.55' or '2001:db8::/64')"
            ) from None
        raise ValueError(f"{value!r} has host bits set; did you mean {str(widened)!r}?") from None


class Settings(Strict):
    """Per-environment settings: group_data/all.py, then group_data/<env>.py, then the
    inventory's ``settings:`` block, later ones winning."""

    environment: Environment
    fqdn_conventions: dict[Hosting, str]
    proxy_addresses: list[Annotated[Network, BeforeValidator(parse_network)]] = Field(min_length=1)
    base_dir: str = "/etc/bars-receiver"
    listen_port: int = Field(default=443, ge=1, le=65535)
    key_size: Literal[2048, 3072, 4096] = 2048
    key_passphrase_env: str | None = None
    bars_team_email: str
    certificate_request_email: str | None = None
    request_route: str

    @field_validator("base_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts or str(path) == "/":
            raise ValueError(f"{value!r} must be an absolute directory below / such as '/etc/bars-receiver'")
        return str(path)

    @field_validator("key_passphrase_env")
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
        return value

    @field_validator("receiver_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value) or "?" in value or "#" in value:
            raise ValueError(f"{value!r} must be a URL path starting with '/', e.g. '/' or '/bars'")
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

    def endpoint_dir(self, fqdn: str) -> str:
        return f"{self.settings.base_dir}/{fqdn}"

    @property
    def requests_dir(self) -> str:
        return f"{self.project_dir}/requests/{self.inventory}"
