"""Fixtures for tests that run pyinfra over SSH against a real lab host.

Each test module gets its own lab host (a fresh Debian container in its own network namespace)
and its own copy of the project, so modules cannot see each other's keys, rules or files.
"""

from __future__ import annotations

import os

import pytest

from lab.host import Lab
from lab.project import Project, Run, endpoint, fqdn  # noqa: F401  (re-exported for test modules)


@pytest.fixture(scope="module")
def lab(request):
    """A booted lab host, torn down after the module."""
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (systemd-nspawn, network namespaces); run bin/test as root")
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"bt-{os.getpid() % 10000}-{module[:8]}"
    with Lab.up(name=name) as host:
        yield host


@pytest.fixture(scope="module")
def project(lab, tmp_path_factory) -> Project:
    return Project(tmp_path_factory.mktemp("project"), lab)
