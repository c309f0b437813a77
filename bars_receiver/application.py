"""The application behind an endpoint is told when its certificate changed.

Kestrel and friends read the PKCS#12 file once, when they start: after a PFX rebuild or a renewal
key swap they keep presenting the old certificate until restarted. An endpoint's ``app_unit``
names the application's systemd unit and ``app_action`` what to do (``restart``, ``reload`` or
``none``); the deploy does it after that endpoint's certificate or PFX operation changed
something, and then checks the unit is active (files/scripts/app_reload.sh), like certbot's deploy
hooks or an Ansible handler.
"""

from __future__ import annotations

from pyinfra.api import operation

from .scripts import run_script


@operation(is_idempotent=False)
def application_told(unit: str, action: str):
    """
    Restart or reload a systemd unit, then fail unless it is active.

    + unit: the application's systemd service (checked grammar: settings.systemd_unit)
    + action: ``restart`` or ``reload``

    Called with ``_if=`` the operations that changed its endpoint's PFX or key.

    **Example:**

    .. code:: python

        application_told(name="Restart bars-app.service", unit="bars-app.service", action="restart",
                         _if=lambda: pfx.did_change())
    """
    yield run_script("app_reload", unit, action)


def units_to_tell(endpoints, changes) -> dict[tuple[str, str], list]:
    """(unit, action) -> the operations whose change should trigger it; one entry per unit, so an
    application serving several endpoints is restarted once."""
    by_fqdn: dict[str, list] = {}
    for fqdn, op in changes:
        by_fqdn.setdefault(fqdn, []).append(op)
    units: dict[tuple[str, str], list] = {}
    for endpoint in endpoints:
        if endpoint.app_unit and endpoint.app_action != "none" and endpoint.fqdn in by_fqdn:
            units.setdefault((endpoint.app_unit, endpoint.app_action), []).extend(by_fqdn[endpoint.fqdn])
    return units
