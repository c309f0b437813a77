"""app_unit / app_action: the unit name's grammar, and one action per unit, only for changed endpoints."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bars_receiver.application.unit import units_to_tell
from bars_receiver.inventory.settings import systemd_unit


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


def test_a_unit_with_no_operation_this_run_is_still_listed():
    """A stale record from an earlier run may tell it (tasks/application.py decides)."""
    endpoints = [SimpleNamespace(fqdn="a", app_unit="app.service", app_action="restart")]
    assert units_to_tell(endpoints, []) == {("app.service", "restart"): []}


def test_a_unit_is_behind_when_its_hand_off_moved_since_it_was_told():
    from bars_receiver.application.unit import stale

    assert not stale({}, "app.service")  # no PFX yet: nothing to tell
    assert not stale({"app.service": ("", "")}, "app.service")
    assert stale({"app.service": ("", "a=archive/1")}, "app.service")  # never told
    assert stale({"app.service": ("a=archive/1", "a=archive/2")}, "app.service")  # died before telling
    assert not stale({"app.service": ("a=archive/2", "a=archive/2")}, "app.service")


def test_the_host_state_script_reports_record_and_hand_off(tmp_path):
    import subprocess

    from bars_receiver.application.unit import ApplicationsTold
    from bars_receiver.scripts import script_text

    records, app_dir = tmp_path / "told", tmp_path / "app"
    (app_dir / "a.nhs.uk" / "archive" / "3").mkdir(parents=True)
    (app_dir / "a.nhs.uk" / "live").symlink_to("archive/3")
    (app_dir / "b.nhs.uk").mkdir()  # no PFX yet
    records.mkdir()
    (records / "app.service").write_text("a.nhs.uk=archive/2")

    def fact():
        result = subprocess.run(["sh", "-c", script_text("app_state"), "bars", str(records), str(app_dir),
                                 "app.service", "a.nhs.uk,b.nhs.uk", "new.service", "b.nhs.uk"],
                                capture_output=True, text=True, check=True)
        return ApplicationsTold().process(result.stdout.splitlines())

    assert fact() == {"app.service": ("a.nhs.uk=archive/2", "a.nhs.uk=archive/3"), "new.service": ("", "")}
    (records / "app.service").write_text("a.nhs.uk=archive/3")
    assert fact()["app.service"] == ("a.nhs.uk=archive/3", "a.nhs.uk=archive/3")
