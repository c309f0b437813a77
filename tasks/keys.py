"""Private keys and CSRs, one root-only directory per endpoint FQDN.

A key is made once on the host and never replaced; a CSR is re-made only when it no longer
matches the key or the CN. Inside the renewal window a next key and CSR are staged in next/
beside the live ones, by the same operations and rules; the live ones keep serving.
"""

from pyinfra import host
from pyinfra.operations import files

from bars_receiver.certificate_operations import renewal_due
from bars_receiver.facts import NEXT
from bars_receiver.operations import certificate_request, private_key

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files

files.directory(
    name="Endpoint base directory (root only)",
    path=receiver.settings.base_dir,
    user="root",
    group="root",
    mode="700",
)

for endpoint in receiver.endpoints:
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
            directory=f"{directory}/{NEXT}",
            state=next_state,
            key_size=receiver.settings.key_size,
            passphrase=receiver.key_passphrase,
        )
        certificate_request(
            name=f"Next CSR for {endpoint.fqdn} (renewal)",
            directory=f"{directory}/{NEXT}",
            fqdn=endpoint.fqdn,
            state=next_state,
        )
