"""Private keys and CSRs, one root-only directory per endpoint FQDN.

First, whatever an interrupted run left is finished or rolled back (files/scripts/reconcile.sh),
so every later step starts from a consistent host. A key is made once on the host, in a
generation of its own (archive/<N>/), and never replaced; a CSR is re-made only when it no
longer matches the key or the CN. Inside the renewal window a next key and CSR are staged in a
new generation that next names, by the same operations and rules; live keeps serving.
"""

from pyinfra import host

from bars_receiver.certificate_operations import renewal_due
from bars_receiver.facts import NEXT
from bars_receiver.operations import (
    certificate_request, private_directory, private_key, reconciled_endpoints,
)

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files
certificate_files = host.data.certificate_files
refused = host.data.get("refused") or {}  # endpoints left as they are this run (deploy.py)

private_directory(name="Endpoint base directory (root only)", path=receiver.settings.base_dir)

repairs = {name: state.repairs for name, state in endpoint_files.items()}
repairs.update({f"{receiver.settings.app_dir}/{name}": ["a PKCS#12 build left staged secrets"]
                for name, installed in certificate_files.endpoints.items() if installed.handoff_staging})
reconciled_endpoints(
    name="Finish or roll back what an interrupted run left",
    base_dir=receiver.settings.base_dir,
    app_dir=receiver.settings.app_dir,
    repairs=repairs,
)

for endpoint in receiver.endpoints:
    if endpoint.fqdn in refused:
        continue
    directory = receiver.endpoint_dir(endpoint.fqdn)
    state = endpoint_files.get(endpoint.fqdn)
    private_key(
        name=f"Private key for {endpoint.fqdn}",
        directory=directory,
        state=state,
        key_size=receiver.settings.key_size,
        passphrase=receiver.key_passphrase,
    )
    certificate_request(
        name=f"CSR for {endpoint.fqdn}",
        directory=directory,
        fqdn=endpoint.fqdn,
        state=state,
    )
    if renewal_due(receiver.certificates.get(endpoint.fqdn), state, receiver.settings.renewal_days):
        next_state = state.next if state is not None else None
        private_key(
            name=f"Next private key for {endpoint.fqdn} (renewal)",
            directory=directory,
            role=NEXT,
            state=next_state,
            key_size=receiver.settings.key_size,
            passphrase=receiver.key_passphrase,
        )
        certificate_request(
            name=f"Next CSR for {endpoint.fqdn} (renewal)",
            directory=directory,
            role=NEXT,
            fqdn=endpoint.fqdn,
            state=next_state,
        )
