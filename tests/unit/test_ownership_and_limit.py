"""One inventory per host (the managed-by record), and --limit that must match."""

from __future__ import annotations

import pytest

from bars_receiver import run_mode
from bars_receiver.ownership import ManagedBy, ownership_problem, record_text
from bars_receiver.run_mode import LimitError, check_limit


def test_the_record_round_trips():
    text = record_text("int-a", "int")
    assert ManagedBy().process(["@@record", *text.splitlines()]) == {"inventory": "int-a", "environment": "int"}
    assert ManagedBy().process([]) is None


def test_a_host_without_record_or_with_its_own_inventory_is_fine():
    assert ownership_problem("h", None, "int", "int", "/etc/bars-receiver", None) is None
    assert ownership_problem("h", {"inventory": "int", "environment": "int"}, "int", "int", "/b", None) is None


def test_another_inventory_is_refused_with_the_way_out():
    problem = ownership_problem("h", {"inventory": "int", "environment": "int"}, "int-a", "int", "/b", None)
    assert problem.startswith("h is managed by inventory 'int' (environment int), as recorded in /b/managed-by")
    assert "Nothing was changed on any host" in problem
    assert "int-a.yml" in problem and "--data bars_take_over=int" in problem


def test_the_hand_over_must_name_the_recorded_inventory():
    record = {"inventory": "int", "environment": "int"}
    assert ownership_problem("h", record, "int-a", "int", "/b", "int") is None
    assert "the host records 'int'" in ownership_problem("h", record, "int-a", "int", "/b", "prod")


def test_the_same_name_in_another_environment_is_refused():
    assert ownership_problem("h", {"inventory": "x", "environment": "int"}, "x", "prod", "/b", None)


@pytest.fixture
def limit(monkeypatch):
    def set_limit(*patterns):
        monkeypatch.setattr(run_mode, "cli_params", lambda: {"limit": patterns})
    return set_limit


HOSTS = [("bars-int-1", {}), ("bars-int-2", {})]


def test_limit_matching_hosts_or_the_group_passes(limit):
    for patterns in (("bars-int-1",), ("bars-int-*",), ("receivers",), ()):
        limit(*patterns)
        assert check_limit(HOSTS) == HOSTS


def test_limit_matching_nothing_is_an_error(limit):
    limit("bars-int-1", "bars-prod-*")
    with pytest.raises(LimitError, match=r"--limit bars-prod-\* matches no host of this inventory.*bars-int-1, bars-int-2"):
        check_limit(HOSTS)


class FakeHost:
    def __init__(self):
        self.noops = []

    def noop(self, description):
        self.noops.append(description)


def run_managed_by(record):
    from pyinfra.context import ctx_host

    from bars_receiver.ownership import managed_by

    fake = FakeHost()
    with ctx_host.use(fake):
        commands = list(managed_by._inner(base_dir="/etc/bars-receiver", inventory="int", environment="int",
                                          record=record))
    return commands, fake.noops


def test_the_record_is_written_only_when_it_differs():
    assert run_managed_by({"inventory": "int", "environment": "int"}) == \
        ([], ["/etc/bars-receiver/managed-by already names inventory int"])
    for record in (None, {"inventory": "int-a", "environment": "int"}):
        commands, noops = run_managed_by(record)
        assert len(commands) == 2 and not noops
        assert commands[0].src.getvalue() == "inventory=int\nenvironment=int\n"
        assert "/etc/bars-receiver/managed-by" in str(commands[1].get_raw_value())
