"""The application behind an endpoint is told when its certificate changed.

Kestrel and friends read the PKCS#12 file once, when they start: after a PFX rebuild or a renewal
key swap they keep presenting the old certificate until restarted. An endpoint's ``app_unit``
names the application's systemd unit and ``app_action`` what to do (``restart``, ``reload`` or
``none``); the deploy does it after that endpoint's certificate or PFX operation changed
something, and then checks the unit is active (files/scripts/app_reload.sh), like certbot's deploy
hooks or an Ansible handler.
"""

from __future__ import annotations

from pyinfra.api import FactBase, StringCommand, operation

from bars_receiver.scripts import run_script
from bars_receiver.shipping import host_script

RECORDS = ".app-told"  # under base_dir: root-only, one file per unit


class ApplicationsTold(FactBase):
    """
    Returns, per unit, what it was last told and what its endpoints' hand-offs are now.

    .. code:: python

        {"bars-app.service": ("BaRS-INT-RX809...=archive/2", "BaRS-INT-RX809...=archive/3")}
    """

    def command(self, record_dir: str, app_dir: str, units: tuple[tuple[str, str], ...]) -> StringCommand:
        return run_script("app_state", record_dir, app_dir, *(part for pair in units for part in pair))

    def process(self, output: list[str]) -> dict[str, tuple[str, str]]:
        told = {}
        for line in output:
            unit, recorded, current = (line.split("\t") + ["", ""])[:3]
            told[unit] = (recorded, current)
        return told


def stale(told: dict[str, tuple[str, str]], unit: str) -> bool:
    """The unit's endpoints have a PFX it was never told about: an earlier run changed it and then
    died, or failed, before telling it."""
    recorded, current = told.get(unit, ("", ""))
    return bool(current) and recorded != current


@operation(is_idempotent=False)
def application_told(unit: str, action: str, record_dir: str, app_dir: str, fqdns: str):
    """
    Restart or reload a systemd unit, fail unless it is active, then record what it was told.

    + unit: the application's systemd service (checked grammar: settings.systemd_unit)
    + action: ``restart`` or ``reload``
    + record_dir: root-only directory of the records (``<base_dir>/.app-told``)
    + app_dir: the hand-off directory
    + fqdns: the unit's endpoints, separated by ``,``

    Called with ``_if=`` the operations that changed its endpoint's PFX or key, or a stale record.

    **Example:**

    .. code:: python

        application_told(name="Restart bars-app.service", unit="bars-app.service", action="restart",
                         record_dir="/etc/bars-receiver/.app-told", app_dir="/etc/bars-receiver-app",
                         fqdns="BaRS-INT-RX809.Acme.thirdparty.nhs.uk", _if=lambda: pfx.did_change())
    """
    yield from host_script("app_reload", unit, action, record_dir, app_dir, fqdns)


def units_to_tell(endpoints, changes) -> dict[tuple[str, str], list]:
    """(unit, action) -> the operations whose change should trigger it; one entry per unit, so an
    application serving several endpoints is restarted once. Every unit with an action is listed,
    also with no operation this run (a stale record from an earlier run may still tell it)."""
    by_fqdn: dict[str, list] = {}
    for fqdn, op in changes:
        by_fqdn.setdefault(fqdn, []).append(op)
    units: dict[tuple[str, str], list] = {}
    for endpoint in endpoints:
        if endpoint.app_unit and endpoint.app_action != "none":
            units.setdefault((endpoint.app_unit, endpoint.app_action), []).extend(by_fqdn.get(endpoint.fqdn, []))
    return units


def unit_endpoints(endpoints) -> dict[str, str]:
    """unit -> its endpoints' FQDNs, sorted, joined by ',' (the form the host scripts take)."""
    fqdns: dict[str, set[str]] = {}
    for endpoint in endpoints:
        if endpoint.app_unit and endpoint.app_action != "none":
            fqdns.setdefault(endpoint.app_unit, set()).add(endpoint.fqdn)
    return {unit: ",".join(sorted(names)) for unit, names in fqdns.items()}
