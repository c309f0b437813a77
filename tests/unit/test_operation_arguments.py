"""Every pyinfra operation in bars_receiver takes plain arguments (paths, strings, numbers, hashes,
modes, lists and dicts of them), as pyinfra's own operations do, so it can be called ad hoc and
documented by pyinfra's tooling; the domain objects (settings, issued and installed certificates,
fact dataclasses) stay in tasks/. Each has a pyinfra-style docstring: a summary line, one
``+ arg:`` line per argument, and an example passing ``name=``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import bars_receiver

def modules():
    for info in pkgutil.walk_packages(bars_receiver.__path__, "bars_receiver."):
        yield importlib.import_module(info.name)


def operations() -> dict[str, object]:
    found = {}
    for module in modules():
        for name, value in vars(module).items():
            if hasattr(value, "_inner") and getattr(value, "__module__", None) == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def domain_classes() -> set[str]:
    """Every class defined in bars_receiver (settings, certificates, facts and their values...),
    except exceptions."""
    names = set()
    for module in modules():
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and not issubclass(value, BaseException):
                names.add(name)
    return names


def test_the_operations_are_found():
    found = {name.rsplit(".", 1)[1] for name in operations()}
    assert len(found) >= 15
    assert {"private_key", "retired_endpoint", "listener_firewall", "application_told", "checked_config"} <= found
    assert {"HostSettings", "IssuedCertificate", "InstalledCertificate", "EndpointState",
            "EndpointDirectoryNames"} <= domain_classes()


def test_no_operation_takes_a_domain_object():
    domain = domain_classes()
    wrong = {}
    for name, op in operations().items():
        for parameter in inspect.signature(op._inner).parameters.values():
            words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(parameter.annotation)))
            if words & domain:
                wrong[name] = wrong.get(name, []) + [f"{parameter.name}: {parameter.annotation}"]
    assert not wrong, f"operations taking domain objects (pass plain values from tasks/): {wrong}"


def test_every_operation_has_a_pyinfra_style_docstring():
    problems = []
    for name, op in operations().items():
        doc = inspect.getdoc(op._inner) or ""
        lines = doc.splitlines()
        if not lines or not lines[0].strip():
            problems.append(f"{name}: no summary line")
        documented = set(re.findall(r"^\+ (\w+):", doc, flags=re.MULTILINE))
        parameters = set(inspect.signature(op._inner).parameters)
        if parameters - documented:
            problems.append(f"{name}: no '+ arg:' line for {sorted(parameters - documented)}")
        if not re.search(rf"\b{op._inner.__name__}\(\s*name=", doc):
            problems.append(f"{name}: no example passing name=")
    assert not problems, "\n".join(problems)


class FakeHost:
    def __init__(self):
        self.noops = []
        self.data = {}

    def noop(self, description):
        self.noops.append(description)


def run_op(op, **kwargs):
    from pyinfra.context import ctx_host

    fake = FakeHost()
    with ctx_host.use(fake):
        commands = list(op._inner(**kwargs))
    return [str(getattr(command, "get_raw_value", lambda: command)()) for command in commands], fake.noops


def test_private_key_from_plain_arguments():
    import pytest
    from pyinfra.api import OperationError

    from bars_receiver.keys.facts import EndpointState, FileMeta
    from bars_receiver.keys.operations import key_arguments, private_key

    directory = "/etc/bars-receiver/x.nhs.uk"
    assert run_op(private_key, directory=directory, key="present") == \
        ([], [f"private key {directory}/live/key.pem already exists"])
    commands, noops = run_op(private_key, directory=directory, key="present", loose_dirs=[directory],
                             loose_files=[f"{directory}/live/key.pem"])
    assert not noops and "chmod 0700" in commands[0] and commands[0].endswith(directory)
    assert "chmod 0600" in commands[1] and commands[1].endswith(f"{directory}/live/key.pem")
    with pytest.raises(OperationError, match="cannot read it with key.pass"):
        run_op(private_key, directory=directory, key="unreadable")
    with pytest.raises(OperationError, match="absent, present or unreadable"):
        run_op(private_key, directory=directory, key="maybe")
    made, _ = run_op(private_key, directory=directory, key="absent", key_size=3072)
    assert made[-1].endswith(f".sh {directory} live 3072 plain")

    loose = EndpointState(dir=FileMeta("755", 0, 0), key=FileMeta("644", 0, 0), key_pass=FileMeta("600", 0, 0))
    assert key_arguments(directory, "live", loose) == {
        "key": "present", "loose_dirs": [directory], "loose_files": [f"{directory}/live/key.pem"]}
    assert key_arguments(directory, "next", loose)["loose_dirs"] == [f"{directory}/next/"]
    assert key_arguments(directory, "live", EndpointState(key=FileMeta("600", 0, 0), key_unreadable=True))["key"] == \
        "unreadable"
    assert key_arguments(directory, "live", None) == {"key": "absent", "loose_dirs": [], "loose_files": []}


def test_retired_endpoint_from_plain_arguments():
    from bars_receiver.retire import retired_endpoint

    arguments = {"base_dir": "/b", "app_dir": "/a", "fqdn": "x.nhs.uk", "inventory": "int"}
    assert run_op(retired_endpoint, **arguments, on_host=False, archived=["x.nhs.uk/20260101T000000Z"]) == \
        ([], ["x.nhs.uk is already retired (/b/.retired/x.nhs.uk/20260101T000000Z)"])
    assert run_op(retired_endpoint, **arguments, on_host=False)[1] == ["x.nhs.uk is already retired (nothing was on this host)"]
    commands, _ = run_op(retired_endpoint, **arguments, on_host=True)
    assert commands[-1].endswith(".sh /b /a x.nhs.uk int")


def test_listener_firewall_refuses_a_source_that_is_not_an_address():
    import pytest
    from pyinfra.api import OperationError

    from bars_receiver.firewall.nftables import listener_firewall

    with pytest.raises(OperationError, match="listener_firewall: sources: 'proxy' is not an IPv4/IPv6 address"):
        run_op(listener_firewall, port=443, sources=["proxy"])
