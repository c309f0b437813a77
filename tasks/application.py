"""Applications (app_unit) are restarted or reloaded after their endpoint's PFX or key changed,
then checked active, and what each was told is recorded on the host. A run that changed neither
does nothing to it, unless the record shows an earlier run changed the PFX but died or failed
before telling the application: then this run tells it."""

from pyinfra import host

from bars_receiver.application.unit import RECORDS, ApplicationsTold, application_told, stale, unit_endpoints, units_to_tell

receiver = host.data.receiver
changes = host.data.get("application_changes") or []
settings = receiver.settings
record_dir = f"{settings.base_dir}/{RECORDS}"
fqdns = unit_endpoints(receiver.endpoints)
told = host.get_fact(ApplicationsTold, record_dir=record_dir, app_dir=settings.app_dir,
                     units=tuple(sorted(fqdns.items()))) if fqdns else {}

for (unit, action), ops in units_to_tell(receiver.endpoints, changes).items():
    behind = stale(told, unit)
    if not ops and not behind:
        continue
    application_told(
        name=f"{action.capitalize()} {unit} (its certificate changed) and check it is active",
        unit=unit,
        action=action,
        record_dir=record_dir,
        app_dir=settings.app_dir,
        fqdns=fqdns[unit],
        _if=lambda ops=ops, behind=behind: behind or any(op.did_change() for op in ops),
    )
