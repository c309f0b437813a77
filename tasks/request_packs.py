"""Request packs on the controller: requests/<inventory>/<fqdn>.csr and .md.

When the host already holds the right CSR the pack is written now, from the fact; when this run
makes the CSR, a step after it reads the CSR back and writes the pack. Inside the renewal window
the next key's CSR gets its own pack, <fqdn>.next.csr and .next.md; once the renewed certificate
has swapped keys on the host, the live pack is rewritten from the new live CSR and the .next pack
removed, so <fqdn>.csr always matches the live key.
"""

from pyinfra import host, logger
from pyinfra.operations import python

from bars_receiver.certificate_operations import key_role, renewal_due
from bars_receiver.facts import EndpointFiles
from bars_receiver.operations import csr_reason
from bars_receiver.request_pack import remove_renewal_pack, write_request_pack

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files
refused = host.data.get("refused") or {}  # endpoints left as they are this run (deploy.py)


def write_pack(endpoint, state, renewal=False):
    for path in write_request_pack(receiver, endpoint, host.name, state.csr_pem, state.key_public_pem, renewal):
        logger.info(f"{host.print_prefix}request pack written: {path.relative_to(receiver.project_dir)}")


def write_pack_from_host(endpoint, renewal=False):
    fresh = host.get_fact(EndpointFiles, base_dir=receiver.settings.base_dir)[endpoint.fqdn]
    write_pack(endpoint, fresh.next if renewal else fresh, renewal)


def promote_renewal_pack(endpoint):
    """After the key swap: the live pack from the host's new live CSR; the .next pack goes."""
    write_pack_from_host(endpoint)
    for path in remove_renewal_pack(receiver, endpoint):
        logger.info(f"{host.print_prefix}renewal request pack removed (now live): "
                    f"{path.relative_to(receiver.project_dir)}")


for endpoint in receiver.endpoints:
    if endpoint.fqdn in refused:
        continue
    state = endpoint_files.get(endpoint.fqdn)
    certificate = receiver.certificates.get(endpoint.fqdn)
    if certificate is not None and key_role(certificate, state) == "next":
        python.call(
            name=f"Request pack for {endpoint.fqdn}: the renewed key's CSR is now the live one",
            function=promote_renewal_pack,
            endpoint=endpoint,
        )
        continue
    if csr_reason(endpoint.fqdn, state) is None:
        write_pack(endpoint, state)
    else:
        python.call(
            name=f"Request pack for {endpoint.fqdn}",
            function=write_pack_from_host,
            endpoint=endpoint,
        )
    if renewal_due(certificate, state, receiver.settings.renewal_days):
        if csr_reason(endpoint.fqdn, state.next) is None:
            write_pack(endpoint, state.next, renewal=True)
        else:
            python.call(
                name=f"Renewal request pack for {endpoint.fqdn} (next key)",
                function=write_pack_from_host,
                endpoint=endpoint,
                renewal=True,
            )
