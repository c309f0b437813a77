"""Request packs on the controller: requests/<inventory>/<fqdn>.csr and .md, made to match the host.

Every run compares the packs with the host's CSRs and writes only what differs, when the
operations execute (so --dry writes nothing and lists them). When this run makes a CSR, the pack
is read back from the host once it exists. Inside the renewal window the next key's CSR gets its
own pack, <fqdn>.next.csr and .next.md; once the renewed certificate has swapped keys on the host,
the live pack is rewritten from the new live CSR and the .next pack removed, so <fqdn>.csr always
matches the live key. A .next pack left by a run interrupted after the swap is removed by the next.
"""

from pyinfra import host

from bars_receiver.certificates.renewal import key_role, renewal_due
from bars_receiver.request_packs import (
    HostReadback, no_renewal_pack, pack_current, promoted_request_pack, renewal_pack_present, request_pack,
)

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files
refused = host.data.get("refused") or {}  # endpoints left as they are this run (deploy.py)
# One read of the host after this run's keys, CSRs and swaps, for every pack that needs it.
readback = HostReadback(receiver.settings.base_dir)

for endpoint in receiver.endpoints:
    if endpoint.fqdn in refused:
        continue
    state = endpoint_files.get(endpoint.fqdn)
    certificate = receiver.certificates.get(endpoint.fqdn)
    if certificate is not None and key_role(certificate, state) == "next":
        promoted_request_pack(
            name=f"Request pack for {endpoint.fqdn}: the renewed key's CSR is now the live one",
            receiver=receiver,
            endpoint=endpoint,
            readback=readback,
        )
        continue
    # Operations only for packs that differ: an unchanged run declares none.
    if not pack_current(receiver, endpoint, state):
        request_pack(name=f"Request pack for {endpoint.fqdn}", receiver=receiver, endpoint=endpoint, state=state,
                     readback=readback)
    next_state = state.next if state is not None else None
    if renewal_due(certificate, state, receiver.settings.renewal_days):
        if pack_current(receiver, endpoint, next_state, renewal=True):
            continue
        request_pack(
            name=f"Renewal request pack for {endpoint.fqdn} (next key)",
            receiver=receiver,
            endpoint=endpoint,
            state=next_state,
            renewal=True,
            readback=readback,
        )
    elif (next_state is None or next_state.key_public_pem is None) and renewal_pack_present(receiver, endpoint):
        no_renewal_pack(name=f"No stale renewal request pack for {endpoint.fqdn}", receiver=receiver, endpoint=endpoint)
