"""Packages the receiver needs. Installs only what is missing, so hosts without a package
mirror (and every unchanged run) make no apt calls at all."""

from pyinfra import host
from pyinfra.api import DeployError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.server import LinuxDistribution
from pyinfra.operations import apt

from bars_receiver.snapshot import snapshot

# libnginx-mod-http-js: njs, for the client certificate's SHA-256 fingerprint (nginx 1.22 has only SHA-1).
PACKAGES = ["openssl", "nftables", "nginx", "libnginx-mod-http-js"]

# nginx 1.19.4+ (ssl_reject_handshake) and OpenSSL 3 (genpkey -quiet, PKCS#12 profiles).
MINIMUM_RELEASE = {"Debian": 12, "Ubuntu": 24}

distribution = snapshot().fact(LinuxDistribution)
name, major = distribution.get("name"), distribution.get("major")
if name not in MINIMUM_RELEASE or (major or 0) < MINIMUM_RELEASE[name]:
    raise DeployError(
        f"{host.name} runs {name} {major}; this deploy needs Debian 12+ or Ubuntu 24.04+ "
        "(nginx 1.19.4+ and OpenSSL 3). Nothing was changed on it"
    )

installed = snapshot().fact(DebPackages)
missing = [package for package in PACKAGES if package not in installed]
if missing:
    apt.packages(name=f"Install {', '.join(missing)}", packages=missing, update=True)
