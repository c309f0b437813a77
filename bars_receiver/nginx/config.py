"""The nginx TLS-MA listener: render its configuration and put it live only once nginx accepts it.

The live file is replaced only after ``nginx -t`` has passed twice: once for our configuration
alone, then for the whole of nginx with it in place (if that fails the previous file is restored).
The running nginx keeps serving its loaded configuration throughout; reloading is the task's job.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from io import StringIO
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import Sha256File

import crossplane

from bars_receiver import templates
from bars_receiver.certificates.x509 import sha256_hex
from bars_receiver.diffs import log_diff
from bars_receiver.inventory import grammar
from bars_receiver.inventory.grammar import upstream_parts
from bars_receiver.inventory.settings import HostSettings
from bars_receiver.nginx import edge_errors as nginx_errors, escape as nginx_escape, verify as nginx_verify
from bars_receiver.nginx.edge_errors import EDGE_ERRORS, ERROR_PREFIX
from bars_receiver.nginx.escape import FILTERS, UnsafeValue, nginx_token
from bars_receiver.nginx.verify import NJS_IMPORT, NJS_SET, Expected, ExpectedSite, verify
from bars_receiver.render_cache import digest
from bars_receiver.scripts import run_script
from bars_receiver.shipping import host_script
from bars_receiver.templates import render

LIVE_CONFIG = "/etc/nginx/conf.d/bars-receiver.conf"
# Same directory as the live file, so the swap is a rename; ".new" keeps it out of conf.d/*.conf.
CANDIDATE_CONFIG = "/etc/nginx/conf.d/.bars-receiver.conf.new"
# The deploy's njs module (files/njs/): the client certificate's SHA-256 fingerprint.
NJS_MODULE = NJS_IMPORT[0]
NJS_DIR = NJS_MODULE.rsplit("/", 1)[0]
NJS_SOURCE = "files/njs/bars_fingerprint.js"
NJS_FUNCTION = NJS_SET[1]


@dataclass(frozen=True)
class Site:
    """One active endpoint as nginx serves it."""

    fqdn: str
    chain: str
    key: str
    key_password_file: str | None
    client_ca: str
    upstream: str
    receiver_path: str
    crl: str | None = None

    @property
    def upstream_scheme(self) -> str:
        return urlsplit(self.upstream).scheme

    @property
    def upstream_server(self) -> str:
        """host:port for nginx's upstream block (the validated URL, default port made explicit)."""
        _, hostname, port = upstream_parts(self.upstream)
        if not 1 <= port <= 65535 or not hostname:
            raise UnsafeValue(f"upstream {self.upstream!r} has no host or a port outside 1-65535")
        host = f"[{hostname}]" if ":" in hostname else hostname
        return nginx_token(f"{host}:{port}")

    @property
    def upstream_name(self) -> str:
        """One upstream block per application address, named from it (so names are stable): readable
        characters, then a short hash of the exact address, because 'app-1.x' and 'app.1.x' read alike."""
        address = f"{self.upstream_scheme}://{self.upstream_server}"
        safe = "".join(c if c.isalnum() else "_" for c in f"{self.upstream_scheme}_{self.upstream_server}")
        return f"bars_{safe}_{hashlib.sha256(address.encode()).hexdigest()[:8]}"


# Client-sent headers in the families the application might trust, removed before proxying.
REMOVED_HEADERS = (
    "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Ssl",
    "X-Forwarded-Scheme", "X-Forwarded-Client-Cert", "X-Client-DN", "X-Client-Cert-Chain", "X-Client-Certificate",
    "X-Client-Fingerprint", "X-Client-Verified", "X-Client-IP", "X-Client-Issuer",
    "X-Client-Subject", "X-SSL-Client-Cert", "X-SSL-Client-DN", "X-SSL-Client-Verify", "X-ARR-ClientCert",
    "X-Original-Forwarded-For", "X-Original-URL", "X-Rewrite-URL", "Client-IP", "True-Client-IP",
    "X-Original-Host", "X-Forwarded-Uri", "X-Host", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
    "X-Client-Cert-Sha256",
)


def expected_config(receiver: HostSettings, sites: list[Site]) -> Expected:
    """What the rendered file must hold, from the validated settings alone."""
    settings = receiver.settings
    return Expected(
        port=settings.listen_port,
        sites=tuple(ExpectedSite(site.fqdn, site.client_ca, site.upstream_scheme, site.upstream_server) for site in sites),
        allowlist=tuple(settings.client_dn_allowlist),
        proxy_addresses=tuple(str(address) for address in settings.proxy_addresses),
        error_statuses=tuple(sorted(status for error in EDGE_ERRORS for status in error.nginx_statuses)),
    )


TEMPLATE = "nginx-receiver.conf.j2"


def config_key(receiver: HostSettings, sites: list[Site]) -> str:
    """The digest of everything ``render_config``'s text follows from (bars_receiver/render_cache.py):
    the settings, the sites, the template, and the code that renders and checks it."""
    return digest(receiver.project_dir, TEMPLATE,
                  (sys.modules[__name__], grammar, nginx_errors, nginx_escape, nginx_verify, templates),
                  receiver.inventory, receiver.settings.model_dump_json(), sites, crossplane.__version__)


def render_config(receiver: HostSettings, sites: list[Site], live_sha256: str | None = None) -> str:
    """The listener's configuration, verified structurally (nginx/verify.py) before it is returned.

    ``live_sha256``: the SHA-256 of the file nginx has live now (``Sha256File``). When the rendered
    text is byte for byte that file, nothing will be uploaded and nothing can go live, so the
    structural check (linear in endpoints, most of an unchanged run's controller time at 500) is
    skipped; any other text is checked before it can reach the host."""
    settings = receiver.settings
    upstreams = {site.upstream_name: site.upstream_server for site in sites}
    text = render(
        receiver.project_dir,
        TEMPLATE,
        filters=FILTERS,
        inventory=receiver.inventory,
        port=settings.listen_port,
        sites=sites,
        upstreams=[{"name": name, "server": server} for name, server in sorted(upstreams.items())],
        protocols=settings.tls_protocols,
        ciphers=settings.tls_ciphers,
        allowlist=settings.client_dn_allowlist,
        proxy_addresses=[str(address) for address in settings.proxy_addresses],
        timeout=settings.upstream_timeout,
        max_body_size=settings.max_body_size,
        edge_errors=EDGE_ERRORS,
        error_prefix=ERROR_PREFIX,
        dot_segments=next(error for error in EDGE_ERRORS if error.name == "dot_segments"),
        removed_headers=REMOVED_HEADERS,
        njs_module=NJS_MODULE,
        njs_function=NJS_FUNCTION,
    )
    if live_sha256 is None or sha256_hex(text.encode()) != live_sha256:
        verify(text, expected_config(receiver, sites))
    return text


@operation()
def checked_config(config: str | None, scratch_dir: str, live: str = LIVE_CONFIG, candidate: str = CANDIDATE_CONFIG,
                   live_sha256: str | None = None):
    """
    Put the receiver's nginx configuration live, only after nginx has accepted it.

    + config: the full text of the configuration (already verified by ``render_config`` unless it
      is the live file's text); None: the live file is what this run's inputs render to (the task
      knows it from bars_receiver/render_cache.py), nothing to do
    + scratch_dir: a root-only directory for the stand-alone test configuration
    + live: the file nginx includes
    + candidate: where the new text waits while it is checked
    + live_sha256: the live file's SHA-256 as the task already read it (``Sha256File``, read while
      operations are collected; nothing before this operation writes the file); read here if None

    **Example:**

    .. code:: python

        checked_config(name="nginx TLS-MA configuration", config=text, scratch_dir="/etc/bars-receiver")
    """
    if config is None:
        host.noop(f"{live} is already up to date (what these settings render to)")
        return
    if live_sha256 is None:
        live_sha256 = host.get_fact(Sha256File, path=live)
    if live_sha256 == sha256_hex(config.encode()):
        host.noop(f"{live} is already up to date")
        return
    log_diff(live, config)
    yield FileUploadCommand(StringIO(config), candidate)
    yield from host_script("nginx_swap", candidate, live, scratch_dir)


class NginxLoaded(FactBase):
    """
    Whether nginx last reloaded from exactly what is on disk now: ``True`` when the digest recorded
    after the last successful reload matches the live configuration and the files it names.

    .. code:: python

        True
    """

    def command(self, live: str, marker: str) -> StringCommand:
        return run_script("nginx_loaded", live, marker)

    def process(self, output: list[str]) -> bool:
        return output == ["current"]


@operation(is_idempotent=False)
def reload(marker: str, live: str = LIVE_CONFIG):
    """
    Reload nginx and fail unless it really took the configuration; record what it loaded.

    + marker: where the digest of what nginx loaded is kept (root-only directory)
    + live: the receiver's configuration file

    **Example:**

    .. code:: python

        reload(name="Reload nginx", marker="/etc/bars-receiver/nginx-loaded", _if=config.did_change)
    """
    yield from host_script("nginx_reload", live, marker)
