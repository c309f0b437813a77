"""Private keys and CSRs, one root-only directory per endpoint FQDN.

First, whatever an interrupted run left is finished or rolled back (files/scripts/reconcile.sh),
so every later step starts from a consistent host. A key is made once on the host, in a
generation of its own (archive/<N>/), and never replaced; a CSR is re-made only when it no
longer matches the key or the CN. Inside the renewal window a next key and CSR are staged in a
new generation that next names, by the same operations and rules; live keeps serving.
Missing keys (each made with its CSR), and CSRs to (re)make for existing keys, are batched: one
command per role for the whole host, on every core, so a first run's round trips do not grow with
endpoints.
"""

from pyinfra import host
from pyinfra.facts.files import Directory

from bars_receiver.certificates.renewal import renewal_due
from bars_receiver.host_files import owned, private_directory
from bars_receiver.keys.facts import LIVE, NEXT
from bars_receiver.keys.operations import (
    batch_name, certificate_requests, csr_reason, key_arguments, key_needs_care, private_key, private_keys,
    reconciled_endpoints,
)
from bars_receiver.snapshot import read, snapshot

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files
certificate_files = host.data.certificate_files
refused = host.data.get("refused") or {}  # endpoints left as they are this run (deploy.py)

base_dir_meta = read(Directory, path=receiver.settings.base_dir)
if not snapshot().settled(lambda meta: owned(meta, "700", "root"), base_dir_meta):
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

# Missing keys are made with their CSRs, and CSRs to (re)make for existing keys, in one batched
# command each (every core of the host); an existing key gets an operation of its own only when
# it needs care (modes, unreadable).
KEY_NAMES = {LIVE: "Private key", NEXT: "Next private key"}
NEW_KEY_NAMES = {LIVE: ("Private key and CSR", "Private keys and CSRs"),
                 NEXT: ("Next private key and CSR", "Next private keys and CSRs")}
CSR_NAMES = {LIVE: "CSR", NEXT: "Next CSR"}
SUFFIX = {LIVE: "", NEXT: " (renewal)"}
new_keys: dict[str, list[tuple[str, str]]] = {LIVE: [], NEXT: []}  # role -> (fqdn, directory): key and CSR
new_csrs: dict[str, list[tuple[str, str]]] = {LIVE: [], NEXT: []}
for endpoint in receiver.endpoints:
    if endpoint.fqdn in refused:
        continue
    directory = receiver.endpoint_dir(endpoint.fqdn)
    state = endpoint_files.get(endpoint.fqdn)
    parts = [(LIVE, state)]
    if renewal_due(receiver.certificates.get(endpoint.fqdn), state, receiver.settings.renewal_days):
        parts.append((NEXT, state.next if state is not None else None))
    for role, part in parts:
        if part is not None and part.key is not None:
            if key_needs_care(part):  # an existing root-only key: nothing declared
                private_key(
                    name=batch_name(KEY_NAMES[role], [endpoint.fqdn]) + SUFFIX[role],
                    directory=directory,
                    role=role,
                    **key_arguments(directory, role, part),
                    key_size=receiver.settings.key_size,
                    passphrase=receiver.key_passphrase,
                )
            if csr_reason(endpoint.fqdn, part) is not None:
                new_csrs[role].append((endpoint.fqdn, directory))
        else:
            if role == LIVE and part is not None and part.dir is not None and not part.dir.root_only:
                private_directory(name=f"Endpoint directory for {endpoint.fqdn} (root only)", path=directory)
            new_keys[role].append((endpoint.fqdn, directory))

for role in (LIVE, NEXT):
    if new_keys[role]:
        private_keys(
            name=batch_name(NEW_KEY_NAMES[role][0], [fqdn for fqdn, _ in new_keys[role]],
                            plural=NEW_KEY_NAMES[role][1]) + SUFFIX[role],
            requests=[(directory, fqdn) for fqdn, directory in new_keys[role]],
            role=role,
            key_size=receiver.settings.key_size,
            passphrase=receiver.key_passphrase,
        )
    if new_csrs[role]:
        certificate_requests(
            name=batch_name(CSR_NAMES[role], [fqdn for fqdn, _ in new_csrs[role]]) + SUFFIX[role],
            requests=[(directory, fqdn) for fqdn, directory in new_csrs[role]],
            role=role,
        )
