"""Record on the host which inventory manages it (checked by deploy.py before every run)."""

from pyinfra import host

from bars_receiver.operations import file_atomically
from bars_receiver.ownership import record_path, record_text

receiver = host.data.receiver

file_atomically(
    name=f"Host managed by inventory {receiver.inventory} ({receiver.settings.environment})",
    path=record_path(receiver.settings.base_dir),
    content=record_text(receiver.inventory, receiver.settings.environment),
    mode="600",
)
