"""Issued certificates: install each beside its key, build the PKCS#12 and hand it to the application.

Certificates were checked on the controller as the inventory loaded (bars_receiver/certificates/issued.py).
Endpoints without one stay "requested". A certificate for the key staged in next/ (a renewal)
swaps keys on the host. What each endpoint needs is decided here from the facts deploy.py read;
the endpoints of a host that need an install, or a PKCS#12, share one operation of each kind
(one command on every core), and a kind nothing needs is not declared at all. A status table of
every endpoint is printed when the run ends.
"""

from pyinfra import host
from pyinfra.api import DeployError
from pyinfra.facts.files import Directory

from bars_receiver.application.handoff import handoff_actions, pkcs12_bundles
from bars_receiver.certificates.operations import certificates_installed, install_action
from bars_receiver.certificates.renewal import host_problems, key_role, serving_state
from bars_receiver.host_files import owned, private_directory
from bars_receiver.keys.facts import NEXT
from bars_receiver.keys.operations import batch_name
from bars_receiver.snapshot import read, snapshot
from bars_receiver.status.report import endpoint_rows, record_status

receiver = host.data.receiver
settings = receiver.settings
endpoint_files = host.data.endpoint_files
installed = host.data.certificate_files
# Filled here with the operations that install certificates, for later tasks (nginx reloads on them).
certificate_changes = host.data.get("certificate_changes")
if certificate_changes is None:
    certificate_changes = []
application_changes = host.data.get("application_changes")
if application_changes is None:
    application_changes = []

refused = host.data.get("refused") or {}  # endpoints left as they are this run (deploy.py)

# Checked before any operation of this run executes, so a refusal leaves the host untouched.
problems = host_problems(receiver, installed)
if problems:
    raise DeployError(f"{host.name}: certificates refused; nothing was done:\n" + "\n".join(f"  - {p}" for p in problems))

record_status(host.state, host.name, endpoint_rows(host.name, receiver, installed, refused=refused))

active = [endpoint for endpoint in receiver.endpoints
          if endpoint.fqdn in receiver.certificates and endpoint.fqdn not in refused]
app_group, app_mode = settings.app_group or "root", "750" if settings.app_group else "700"
app_dir_meta = read(Directory, path=settings.app_dir)
if active and not snapshot().settled(lambda meta: owned(meta, app_mode, app_group), app_dir_meta):
    private_directory(name="Application hand-off directory", path=settings.app_dir, group=app_group, mode=app_mode)

installs, loose, install_fqdns, swapped = [], [], [], []
handoffs, handoff_fqdns = [], []
for endpoint in active:
    certificate = receiver.certificates[endpoint.fqdn]
    key_dir = receiver.endpoint_dir(endpoint.fqdn)
    state = endpoint_files.get(endpoint.fqdn)
    current = installed.get(endpoint.fqdn)
    action = install_action(certificate, current, swap_keys=key_role(certificate, state) == NEXT)
    if action == "modes":
        loose.append(key_dir)
    elif action is not None:
        installs.append((key_dir, action, certificate.leaf_pem, certificate.chain_pem, certificate.ca_pem))
        swapped += [endpoint.fqdn] if action == NEXT else []
    if action is not None:
        install_fqdns.append(endpoint.fqdn)
    steps = handoff_actions(certificate, serving_state(certificate, state).key_public_pem, current,
                            settings.pfx_profile, receiver.pfx_password, settings.app_group, installed.group_gid)
    handoffs += [(key_dir, f"{settings.app_dir}/{endpoint.fqdn}", endpoint.fqdn, step) for step in steps]
    handoff_fqdns += [endpoint.fqdn] if steps else []

# tasks/application.py tells an endpoint's application (app_unit) when an operation covering it
# changed; nginx reloads when the certificates did.
if install_fqdns:
    if swapped == install_fqdns:
        suffix = " (renewal key swap)"
    else:
        suffix = f" (renewal key swap: {', '.join(swapped)})" if swapped else ""
    certificates = certificates_installed(
        name=batch_name("Certificate", install_fqdns) + suffix,
        base_dir=settings.base_dir,
        installs=installs,
        loose=loose,
    )
    certificate_changes.append(certificates)
    application_changes.extend((fqdn, certificates) for fqdn in install_fqdns)
if handoffs:
    pfx = pkcs12_bundles(
        name=batch_name("PKCS#12 and application hand-off", handoff_fqdns) + f" ({settings.pfx_profile})",
        handoffs=handoffs,
        profile=settings.pfx_profile,
        password=receiver.pfx_password,
        app_group=settings.app_group,
        group_gid=installed.group_gid,
    )
    application_changes.extend((fqdn, pfx) for fqdn in handoff_fqdns)
