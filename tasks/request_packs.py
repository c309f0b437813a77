"""Request packs on the controller: requests/<inventory>/<fqdn>.csr and .md, made to match the host.

Every run compares the packs with the host's CSRs and writes only what differs, in one operation per
host when it executes (so --dry writes nothing and lists them). When this run makes a CSR, the
pack is read back from the host once it exists, in one read for all of the host's packs. Inside the renewal window the next key's CSR gets its
own pack, <fqdn>.next.csr and .next.md; once the renewed certificate has swapped keys on the host,
the live pack is rewritten from the new live CSR and the .next pack removed, so <fqdn>.csr always
matches the live key. A .next pack left by a run interrupted after the swap is removed by the next.
"""

from pyinfra import host

from bars_receiver.certificates.renewal import key_role, renewal_due
from bars_receiver.request_packs import (
    note_template, pack_current, pack_plan, packs_name, renewal_pack_present, request_packs,
)

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files
refused = host.data.get("refused") or {}  # endpoints left as they are this run (deploy.py)

# Only packs that differ are planned: an unchanged run declares no operation.
packs = []
for endpoint in receiver.endpoints:
    if endpoint.fqdn in refused:
        continue
    state = endpoint_files.get(endpoint.fqdn)
    certificate = receiver.certificates.get(endpoint.fqdn)
    planned = []
    if certificate is not None and key_role(certificate, state) == "next":
        # The renewed key is live after this run's swap: its CSR becomes the live pack.
        planned.append(pack_plan(receiver, endpoint, host.name, "promote"))
    else:
        if not pack_current(receiver, endpoint, state):
            planned.append(pack_plan(receiver, endpoint, host.name, state=state))
        next_state = state.next if state is not None else None
        if renewal_due(certificate, state, receiver.settings.renewal_days):
            if not pack_current(receiver, endpoint, next_state, renewal=True):
                planned.append(pack_plan(receiver, endpoint, host.name, state=next_state, renewal=True))
        elif (next_state is None or next_state.key_public_pem is None) and renewal_pack_present(receiver, endpoint):
            # A run interrupted after the host swapped keys, before the pack was promoted.
            planned.append(pack_plan(receiver, endpoint, host.name, "remove_next", renewal=True))
    packs += [(endpoint.fqdn, pack) for pack in planned]


if packs:
    request_packs(
        name=packs_name(packs),
        project_dir=receiver.project_dir,
        requests_dir=receiver.requests_dir,
        template=note_template(receiver),
        base_dir=receiver.settings.base_dir,
        packs=[pack for _, pack in packs],
    )
