"""app_unit / app_action: the unit name's grammar, and one action per unit, only for changed endpoints."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bars_receiver.application import units_to_tell
from bars_receiver.settings import systemd_unit


@pytest.mark.parametrize("name", ["bars-app.service", "kestrel@RX809.service", "a:b_c.d-e.service",
                                  "bars-lab-pfx-app@BaRS-INT-APP01.ExampleSupplier.thirdparty.nhs.uk.service"])
def test_service_names_are_accepted(name):
    assert systemd_unit(name) == name


@pytest.mark.parametrize("name", ["-x.service", "app", "app.socket", "a b.service", "a;reboot.service",
                                  "$(x).service", "a\n.service", "x" * 250 + ".service"])
def test_anything_else_is_refused_with_an_example(name):
    with pytest.raises(ValueError, match="is not a systemd service name.*bars-app.service"):
        systemd_unit(name)


def op(name):
    return SimpleNamespace(name=name)


def test_one_action_per_unit_triggered_by_its_endpoints_operations():
    endpoints = [
        SimpleNamespace(fqdn="a", app_unit="app.service", app_action="restart"),
        SimpleNamespace(fqdn="b", app_unit="app.service", app_action="restart"),
        SimpleNamespace(fqdn="c", app_unit="other.service", app_action="none"),
        SimpleNamespace(fqdn="d", app_unit=None, app_action="restart"),
    ]
    changes = [("a", op("cert-a")), ("a", op("pfx-a")), ("b", op("pfx-b")), ("c", op("pfx-c")), ("d", op("pfx-d"))]
    units = units_to_tell(endpoints, changes)
    assert list(units) == [("app.service", "restart")]
    assert [o.name for o in units[("app.service", "restart")]] == ["cert-a", "pfx-a", "pfx-b"]
