"""Record on the host which inventory manages it (checked by deploy.py before every run)."""

from pyinfra import host

from bars_receiver.ownership import managed_by

receiver = host.data.receiver

managed_by(
    name=f"Host managed by inventory {receiver.inventory} ({receiver.settings.environment})",
    base_dir=receiver.settings.base_dir,
    inventory=receiver.inventory,
    environment=receiver.settings.environment,
    record=host.data.managed_by,
)
