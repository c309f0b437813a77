"""The nginx TLS-MA listener: render its configuration and put it live only once nginx accepts it.

The live file is replaced only after ``nginx -t`` has passed twice: once for our configuration
alone, then for the whole of nginx with it in place (if that fails the previous file is restored).
The running nginx keeps serving its loaded configuration throughout; reloading is the task's job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import StringIO
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import Sha256File

from .diffs import log_diff
from .grammar import upstream_parts
from .nginx_errors import EDGE_ERRORS, ERROR_PREFIX
from .nginx_escape import FILTERS, UnsafeValue, nginx_token
from .nginx_verify import NJS_IMPORT, NJS_SET, Expected, ExpectedSite, verify
from .settings import HostSettings
from .shell import script_command
from .templates import render
from .x509 import sha256_hex

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


def render_config(receiver: HostSettings, sites: list[Site]) -> str:
    """The listener's configuration, verified structurally (nginx_verify) before it is returned."""
    settings = receiver.settings
    upstreams = {site.upstream_name: site.upstream_server for site in sites}
    text = render(
        receiver.project_dir,
        "nginx-receiver.conf.j2",
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
    verify(text, expected_config(receiver, sites))
    return text


# $1 candidate, $2 live file, $3 scratch directory for the stand-alone test configuration.
_CHECK_AND_SWAP = """
set -e
candidate=$1 live=$2 scratch=$3
umask 077
# Debian's nginx.conf loads dynamic modules (njs) this way; the stand-alone test must too.
printf 'pid %s/nginx-test.pid;\\ninclude /etc/nginx/modules-enabled/*.conf;\\nevents {}\\nhttp {\\n    include %s;\\n}\\n' "$scratch" "$candidate" > "$scratch/nginx-test.conf"
if ! nginx -q -t -c "$scratch/nginx-test.conf"; then
  rm -f "$candidate"
  echo "the new nginx configuration was refused; nothing was changed and nginx keeps serving" >&2
  exit 1
fi
rm -f "$scratch/previous.conf"
if [ -f "$live" ]; then cp -p "$live" "$scratch/previous.conf"; fi
chmod 0644 "$candidate"
mv -f "$candidate" "$live"
if ! nginx -q -t; then
  if [ -f "$scratch/previous.conf" ]; then
    mv -f "$scratch/previous.conf" "$live"
    echo "nginx as a whole refused the new configuration; the previous one was restored" >&2
  else
    rm -f "$live"
    echo "nginx as a whole refused the new configuration; it was removed again (there was none before)" >&2
  fi
  exit 1
fi
rm -f "$scratch/previous.conf"
"""


@operation()
def checked_config(config: str, scratch_dir: str, live: str = LIVE_CONFIG, candidate: str = CANDIDATE_CONFIG):
    """
    Put the receiver's nginx configuration live, only after nginx has accepted it.

    + config: the full text of the configuration
    + scratch_dir: a root-only directory for the stand-alone test configuration
    + live: the file nginx includes
    + candidate: where the new text waits while it is checked

    **Example:**

    .. code:: python

        checked_config(name="nginx TLS-MA configuration", config=text, scratch_dir="/etc/bars-receiver")
    """
    if host.get_fact(Sha256File, path=live) == sha256_hex(config.encode()):
        host.noop(f"{live} is already up to date")
        return
    log_diff(live, config)
    yield FileUploadCommand(StringIO(config), candidate)
    yield script_command(_CHECK_AND_SWAP, candidate, live, scratch_dir)


# A digest of everything nginx serves from: the live file and every file it names with an ssl_*
# directive (certificates, keys, CA bundle, CRL, password files). Only the digest is printed.
_SERVED_DIGEST = """
served_digest() {
  { cat "$1"
    for f in $(sed -n 's/^[[:space:]]*\\(ssl_[a-z_]*\\|js_import\\)[[:space:]]\\(\\/[^;]*\\);$/\\2/p' "$1" | sort -u); do cat "$f"; done
  } 2>/dev/null | sha256sum | cut -c1-64
}
"""


class NginxLoaded(FactBase):
    """
    Whether nginx last reloaded from exactly what is on disk now: ``True`` when the digest recorded
    after the last successful reload matches the live configuration and the files it names.

    .. code:: python

        True
    """

    def command(self, live: str, marker: str) -> StringCommand:
        script = _SERVED_DIGEST + '[ -f "$2" ] && [ "$(cat "$2")" = "$(served_digest "$1")" ] && echo current || echo stale'
        return script_command(script, live, marker, name="nginx-loaded")

    def process(self, output: list[str]) -> bool:
        return output == ["current"]


# systemctl reload only signals nginx: a configuration that passed nginx -t can still fail to load
# (a port taken by another process). New worker processes show it did load; only then is the
# digest recorded, so a reload that did not take is tried again, and reported, on the next run.
_RELOAD = _SERVED_DIGEST + """
set -e
umask 077
live=$1 marker=$2
workers() { ps --ppid "$(systemctl show -p MainPID --value nginx)" -o pid= | tr -d ' ' | sort; }
before=$(workers)
systemctl reload nginx
i=0
while [ "$i" -lt 50 ]; do
  for pid in $(workers); do
    if ! printf '%s\\n' "$before" | grep -qx "$pid"; then
      served_digest "$live" > "$marker.new" && mv -f "$marker.new" "$marker"
      exit 0
    fi
  done
  sleep 0.1
  i=$((i + 1))
done
echo "nginx did not take the new configuration (no new worker processes within 5 s); it keeps serving the previous one. nginx's log:" >&2
tail -n 5 /var/log/nginx/error.log >&2
exit 1
"""


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
    yield script_command(_RELOAD, live, marker, name="nginx-reload")
