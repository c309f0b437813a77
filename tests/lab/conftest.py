"""Fixtures for tests that run pyinfra over SSH against a real lab host, or a lab fleet.

Each test module gets its own lab host (a fresh Debian container in its own network namespace),
or, with ``fleet``, its own lab fleet (lab/fleet.py), and its own copy of the project, so modules
cannot see each other's keys, rules or files. A module uses either ``project`` (one host) or
``fleet_project``.
"""

from __future__ import annotations

import os

import pytest

from lab.ca import LabCA
from lab.fleet import Fleet
from lab.host import Lab
from lab.project import Project, Run, endpoint, fqdn  # noqa: F401  (re-exported for test modules)


def _lab_name(request, width: int = 8) -> str:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (systemd-nspawn, network namespaces); run bin/test as root")
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    return f"bt-{os.getpid() % 10000}-{module[:width]}"


@pytest.fixture(scope="module")
def lab(request):
    """A booted lab host, torn down after the module."""
    with Lab.up(name=_lab_name(request)) as host:
        yield host


@pytest.fixture(scope="module")
def fleet(request):
    """Four lab hosts on one lab network (booted in parallel), torn down after the module."""
    with Fleet.up(name=_lab_name(request, 6), size=getattr(request.module, "FLEET_SIZE", 4)) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def fleet_project(fleet, tmp_path_factory) -> Project:
    return Project(tmp_path_factory.mktemp("project"), fleet)


@pytest.fixture(scope="module")
def project(lab, tmp_path_factory) -> Project:
    return Project(tmp_path_factory.mktemp("project"), lab)


@pytest.fixture(scope="module")
def ca() -> LabCA:
    """The lab CA, playing NHS England (and the BaRS proxy's CA); a module may define its own."""
    return LabCA()


@pytest.fixture(scope="module")
def client(ca, tmp_path_factory):
    """The BaRS proxy stand-in's client certificate from the lab CA: client.pem and client.key."""
    directory = tmp_path_factory.mktemp("client")
    key, cert = ca.issue_client("bars-proxy.lab.nhs.uk")
    (directory / "client.key").write_bytes(key)
    (directory / "client.pem").write_bytes(cert)
    return directory
