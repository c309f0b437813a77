"""Applications (app_unit) are restarted or reloaded after their endpoint's PFX or key changed,
then checked active; nothing happens on a run that changed neither."""

from pyinfra import host

from bars_receiver.application import application_told, units_to_tell

receiver = host.data.receiver
changes = host.data.get("application_changes") or []

for (unit, action), ops in units_to_tell(receiver.endpoints, changes).items():
    application_told(
        name=f"{action.capitalize()} {unit} (its certificate changed) and check it is active",
        unit=unit,
        action=action,
        _if=lambda ops=ops: any(op.did_change() for op in ops),
    )
