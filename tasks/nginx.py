"""The TLS-MA listener: nginx serves every active endpoint; requested ones are not published.

nginx reads certificates and CRLs only when it (re)loads, so a reload follows a changed
configuration, a newly installed certificate, a new CRL or njs module, or a reload that did not take; and
nothing else.
"""

from pathlib import Path

from pyinfra import host
from pyinfra.api import DeployError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, Sha256File
from pyinfra.operations import files, systemd

from bars_receiver.certificates.facts import INSTALLED_FILES
from bars_receiver.certificates.renewal import serving_state
from bars_receiver.nginx.config import (
    LIVE_CONFIG, NJS_DIR, NJS_MODULE, NJS_SOURCE, NginxLoaded, Site, checked_config, config_key, reload, render_config,
)
from bars_receiver.certificates.x509 import sha256_hex
from bars_receiver.host_files import file_atomically, file_settled, owned
from bars_receiver.nginx.default_site import DefaultSite, default_site_disabled, default_site_settled
from bars_receiver.nginx.escape import UnsafeValue
from bars_receiver.nginx.verify import ConfigRefused
from bars_receiver.render_cache import record, rendered_sha256
from bars_receiver.snapshot import client_crl_path, file_reads, read, service_reads, service_settled, snapshot

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files
certificate_changes = host.data.certificate_changes
installed = host.data.get("certificate_files")
refused = host.data.get("refused") or {}  # endpoints left as they are this run (deploy.py)


def still_installed(fqdn: str) -> bool:
    """A refused endpoint keeps serving what the host already holds, if it holds a whole set."""
    state = endpoint_files.get(fqdn)
    held = installed.get(fqdn).files if installed is not None else {}
    return state is not None and state.key_public_pem is not None and all(f in held for f in INSTALLED_FILES)


now = snapshot()  # host-level operations are declared only when the host differs
crl_path = client_crl_path(receiver.settings.base_dir) if receiver.client_crl_pem else None
reload_after = list(certificate_changes)
if crl_path and not now.settled(lambda meta, sha256: file_settled(meta, sha256, receiver.client_crl_pem),
                                *file_reads(crl_path)):
    reload_after.append(file_atomically(
        name="Client CRLs for nginx (client_crl)",
        path=crl_path,
        content=receiver.client_crl_pem,
    ))

sites = []
for endpoint in receiver.endpoints:
    if endpoint.fqdn in refused:
        if not still_installed(endpoint.fqdn):
            continue
        serving = endpoint_files[endpoint.fqdn]
    elif endpoint.fqdn not in receiver.certificates:
        continue
    else:
        # After a renewal's key swap, the key that serves is the one that was in next/.
        serving = serving_state(receiver.certificates[endpoint.fqdn], endpoint_files[endpoint.fqdn])
    directory = receiver.endpoint_dir(endpoint.fqdn)
    has_passphrase = serving.key_pass is not None
    sites.append(Site(
        fqdn=endpoint.fqdn,
        # Through live/: one rename switches the key, its passphrase and certificates together.
        chain=f"{directory}/live/chain.pem",
        key=f"{directory}/live/key.pem",
        key_password_file=f"{directory}/live/key.pass" if has_passphrase else None,
        client_ca=f"{directory}/live/ca.pem",
        upstream=endpoint.upstream,
        receiver_path=endpoint.receiver_path,
        crl=crl_path,
    ))

# Read once: render_config skips its structural check when the text is the live file's, and
# checked_config uploads (after nginx -t) only when it is not.
live_sha256 = now.fact(Sha256File, path=LIVE_CONFIG) or ""  # "": no live file, nothing to skip
# Not even rendered when an earlier run recorded that these exact inputs render to the live file.
key = config_key(receiver, sites)
text = None
if not live_sha256 or rendered_sha256(receiver.project_dir, key) != live_sha256:
    try:
        text = render_config(receiver, sites, live_sha256=live_sha256)
    except (UnsafeValue, ConfigRefused) as refused:
        raise DeployError(
            f"{host.name}: the rendered nginx configuration was refused before upload ({refused}); "
            "nothing was changed on the host and nginx keeps serving"
        ) from None
    record(receiver.project_dir, key, sha256_hex(text.encode()))

# Before the configuration that imports it: nginx -t loads the module.
if not now.settled(lambda meta: owned(meta, "755", "root"), read(Directory, path=NJS_DIR)):
    files.directory(name=f"{NJS_DIR} for the deploy's njs module", path=NJS_DIR, user="root", group="root", mode="755")
njs = Path(receiver.project_dir, NJS_SOURCE).read_text()
if not now.settled(lambda meta, sha256: file_settled(meta, sha256, njs), *file_reads(NJS_MODULE)):
    reload_after.append(file_atomically(
        name="njs module for the client certificate's SHA-256 fingerprint",
        path=NJS_MODULE,
        content=njs,
    ))

config = checked_config(
    name="nginx TLS-MA configuration (parsed and checked on the controller, then with nginx -t)",
    config=text,
    scratch_dir=receiver.settings.base_dir,
    live_sha256=live_sha256,
)
# Also while nginx is being installed this run: its package enables the default site.
nginx_installed = "nginx" in (now.fact(DebPackages) or {})
if receiver.settings.disable_default_site and not (nginx_installed and now.settled(default_site_settled,
                                                                                   read(DefaultSite))):
    site = default_site_disabled(
        name="Debian's default site (port 80) disabled when untouched (its link kept in base_dir)",
        archive_path=f"{receiver.settings.base_dir}/nginx-default-site.disabled",
    )
    reload_after.append(site)

if not now.settled(lambda running, enabled: service_settled(running, enabled, "nginx.service"), *service_reads()):
    systemd.service(name="nginx running and enabled", service="nginx", running=True, enabled=True)

# Also when an earlier reload did not take (or never happened): nginx must serve what is on disk.
marker = f"{receiver.settings.base_dir}/nginx-loaded"
loaded = now.fact(NginxLoaded, live=LIVE_CONFIG, marker=marker)
reload(
    name="Reload nginx (and check it took the new configuration)",
    marker=marker,
    _if=lambda: not loaded or any(op.did_change() for op in (config, *reload_after)),
)
