"""Request packs on the controller: requests/<inventory>/<fqdn>.csr and .md.

When the host already holds the right CSR the pack is written now, from the fact; when this run
makes the CSR, a step after it reads the CSR back and writes the pack.
"""

from pyinfra import host, logger
from pyinfra.operations import python

from bars_receiver.facts import EndpointFiles
from bars_receiver.operations import csr_reason
from bars_receiver.request_pack import write_request_pack

receiver = host.data.receiver
endpoint_files = host.data.endpoint_files


def write_pack(endpoint, state):
    for path in write_request_pack(receiver, endpoint, host.name, state.csr_pem, state.key_public_pem):
        logger.info(f"{host.print_prefix}request pack written: {path.relative_to(receiver.project_dir)}")


def write_pack_from_host(endpoint):
    fresh = host.get_fact(EndpointFiles, base_dir=receiver.settings.base_dir)
    write_pack(endpoint, fresh[endpoint.fqdn])


for endpoint in receiver.endpoints:
    state = endpoint_files.get(endpoint.fqdn)
    if csr_reason(endpoint.fqdn, state) is None:
        write_pack(endpoint, state)
    else:
        python.call(
            name=f"Request pack for {endpoint.fqdn}",
            function=write_pack_from_host,
            endpoint=endpoint,
        )
