"""Packages the receiver needs. Installs only what is missing, so hosts without a package
mirror (and every unchanged run) make no apt calls at all."""

from pyinfra import host
from pyinfra.api import DeployError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt

PACKAGES = ["openssl", "nftables", "nginx"]

distribution = host.get_fact(LinuxDistribution)
if distribution.get("name") not in ("Debian", "Ubuntu"):
    raise DeployError(f"{host.name}: this deploy supports Debian and Ubuntu, not {distribution.get('name')!r}")

installed = host.get_fact(DebPackages)
missing = [package for package in PACKAGES if package not in installed]
if missing:
    apt.packages(name=f"Install {', '.join(missing)}", packages=missing, update=True)
