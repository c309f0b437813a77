"""Retired endpoints (retired: true): archived on the host once nginx no longer serves them, and
their request packs marked retired; endpoint directories the inventory no longer names are
reported. Runs after tasks/nginx.py, so nginx has let go of the files before they move."""

from pyinfra import host, logger

from bars_receiver.retire import (
    EndpointDirectories, archive_dir, retired_endpoint, retired_note_paths, retired_request_pack, retirement_notice,
    unmanaged,
)
from bars_receiver.status.report import Row, add_status

receiver = host.data.receiver
settings = receiver.settings
names = host.get_fact(EndpointDirectories, base_dir=settings.base_dir, app_dir=settings.app_dir)

rows = []
for endpoint in receiver.retired:
    retired_endpoint(
        name=f"Retire {endpoint.fqdn}: archive its key and hand-off directories",
        base_dir=settings.base_dir,
        app_dir=settings.app_dir,
        fqdn=endpoint.fqdn,
        inventory=receiver.inventory,
        on_host=endpoint.fqdn in names.endpoints or endpoint.fqdn in names.handoffs,
        archived=names.archived(endpoint.fqdn),
    )
    retired_request_pack(
        name=f"Request pack for {endpoint.fqdn}: marked retired",
        fqdn=endpoint.fqdn,
        notice=retirement_notice(receiver, endpoint, host.name),
        paths=retired_note_paths(receiver, endpoint),
    )
    rows.append(Row(host.name, endpoint.fqdn, "retired", "-", "-", f"archived in {archive_dir(receiver, endpoint.fqdn)}/"))

for name in unmanaged(receiver, names):
    note = (f"on the host but not in inventories/{receiver.inventory}.yml: put it back, or list it with "
            "retired: true to archive it")
    logger.warning(f"{host.print_prefix}{settings.base_dir}/{name}: {note}")
    rows.append(Row(host.name, name, "unmanaged", "-", "-", note))

add_status(host.state, host.name, rows)
