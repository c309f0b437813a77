"""Issued certificates: install each beside its key, build the PKCS#12 and hand it to the application.

Certificates were checked on the controller as the inventory loaded (bars_receiver/certificates.py).
Endpoints without one stay "requested". A certificate for the key staged in next/ (a renewal)
swaps keys on the host. A status table of every endpoint is printed when the run ends.
"""

from pyinfra import host
from pyinfra.api import DeployError

from bars_receiver.certificate_operations import (
    endpoint_certificate, host_problems, key_role, pkcs12_bundle, serving_state,
)
from bars_receiver.operations import private_directory
from bars_receiver.status import endpoint_rows, record_status

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
if active:
    private_directory(
        name="Application hand-off directory",
        path=settings.app_dir,
        group=settings.app_group or "root",
        mode="750" if settings.app_group else "700",
    )

for endpoint in active:
    certificate = receiver.certificates[endpoint.fqdn]
    key_dir = receiver.endpoint_dir(endpoint.fqdn)
    swap = key_role(certificate, endpoint_files.get(endpoint.fqdn)) == "next"
    installed_certificate = endpoint_certificate(
        name=f"{'Renewed certificate (key swap)' if swap else 'Certificate'} for {endpoint.fqdn}",
        directory=key_dir,
        certificate=certificate,
        installed=installed.get(endpoint.fqdn),
        swap_keys=swap,
    )
    certificate_changes.append(installed_certificate)
    pfx = pkcs12_bundle(
        name=f"PKCS#12 ({settings.pfx_profile}) and application hand-off for {endpoint.fqdn}",
        key_dir=key_dir,
        handoff_dir=f"{settings.app_dir}/{endpoint.fqdn}",
        fqdn=endpoint.fqdn,
        certificate=certificate,
        key_public_pem=serving_state(certificate, endpoint_files[endpoint.fqdn]).key_public_pem,
        installed=installed.get(endpoint.fqdn),
        profile=settings.pfx_profile,
        password=receiver.pfx_password,
        app_group=settings.app_group,
        group_gid=installed.group_gid,
    )
    # tasks/application.py tells the endpoint's application (app_unit) when either changed.
    application_changes.extend((endpoint.fqdn, op) for op in (installed_certificate, pfx))
