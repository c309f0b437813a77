"""A batched pyinfra fact: installed certificates and PKCS#12 hand-off files of every endpoint.

One command reads every endpoint directory (and its hand-off directory under app_dir), so the
round trips of a run do not grow with the number of endpoints. It prints hashes and modes, never
a password: whether the password file still matches the one the PFX was built with is decided on
the host, and only the recorded salted hash of a CI-secret password is printed (for the controller
to compare its own secret with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyinfra.api import FactBase, StringCommand

from bars_receiver.fact_cache import cached_fact, unframed
from bars_receiver.keys.facts import FileMeta

CERT = "cert.pem"
CHAIN = "chain.pem"
CA = "ca.pem"
PFX_INPUTS = "pfx.inputs"
PFX = "receiver.pfx"
PFX_PASSWORD = "pfx.pass"
KESTREL_ENV = "kestrel.env"
INSTALLED_FILES = (CERT, CHAIN, CA)
HANDOFF_FILES = (PFX, PFX_PASSWORD, KESTREL_ENV)

@dataclass
class InstalledCertificate:
    """What one endpoint has installed: certificate files and its application hand-off."""

    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 hex
    modes: dict[str, FileMeta] = field(default_factory=dict)  # name -> mode/owner, key dir and app dir files
    inputs: dict[str, str] = field(default_factory=dict)  # pfx.inputs: what the PFX was built from
    app_dir: FileMeta | None = None
    handoff_generation: FileMeta | None = None  # the hand-off's live generation directory
    handoff_archive: FileMeta | None = None  # its archive/ directory
    legacy_password: bool = False  # pfx.pass is still a file of the layout before generations
    handoff_staging: bool = False  # an interrupted build left .staging/ (reconcile.sh removes it)
    password_matches: bool = False  # pfx.pass is the password recorded in pfx.inputs
    env_current: bool = False  # kestrel.env holds the PFX path and the password in pfx.pass


@dataclass
class InstalledCertificates:
    group_gid: int | None = None
    group_missing: bool = False
    endpoints: dict[str, InstalledCertificate] = field(default_factory=dict)

    def get(self, fqdn: str) -> InstalledCertificate:
        return self.endpoints.get(fqdn) or InstalledCertificate()


class CertificateFiles(FactBase):
    """
    Returns the installed certificates and hand-off files of every endpoint under ``base_dir``.

    .. code:: python

        InstalledCertificates(group_gid=998, endpoints={
            "BaRS-INT-RX809.Acme.thirdparty.nhs.uk": InstalledCertificate(
                files={"cert.pem": "3a7b...", "chain.pem": "...", "ca.pem": "..."},
                inputs={"chain_sha256": "...", "key_sha256": "...", "profile": "modern",
                        "password_source": "generated"},
                app_dir=FileMeta("750", 0, 998), password_matches=True, env_current=True,
            ),
        })
    """

    default = InstalledCertificates

    def command(self, base_dir: str, app_dir: str, password_source: str = "generated",
                app_group: str | None = None, cache_write: bool = True) -> StringCommand:
        # cache_write=False (a --dry run) reads the host-side output cache but never fills it.
        return cached_fact("certificate_files", (base_dir, app_dir), base_dir, app_dir, password_source,
                           app_group or "", cache_write=cache_write)

    def process(self, output: list[str]) -> InstalledCertificates:
        output = unframed(output)
        result = InstalledCertificates()
        current: InstalledCertificate | None = None
        for line in output:
            if not line.startswith("@@"):
                continue
            marker, _, rest = line[2:].partition(" ")
            words = rest.split()
            if marker == "group":
                result.group_gid = int(words[0])
            elif marker == "group_missing":
                result.group_missing = True
            elif marker == "endpoint":
                current = result.endpoints.setdefault(rest, InstalledCertificate())
            elif marker == "sum" and len(words) == 2:
                _by_path(result, words[1], lambda installed, name: installed.files.__setitem__(name, words[0]))
            elif marker == "stat" and len(words) == 4:
                meta = FileMeta(words[0], int(words[1]), int(words[2]))
                _by_path(result, words[3], lambda installed, name: installed.modes.__setitem__(name, meta))
            elif current is None:
                continue
            elif marker == "file" and len(words) == 5:
                current.files[words[0]] = words[1]
                current.modes[words[0]] = FileMeta(words[2], int(words[3]), int(words[4]))
            elif marker == "input" and words:
                current.inputs[words[0]] = " ".join(words[1:])
            elif marker == "appdir" and len(words) == 3:
                current.app_dir = FileMeta(words[0], int(words[1]), int(words[2]))
            elif marker == "handoff_generation" and len(words) == 6:
                current.handoff_generation = FileMeta(words[0], int(words[1]), int(words[2]))
                current.handoff_archive = FileMeta(words[3], int(words[4]), int(words[5]))
            elif marker == "app" and len(words) == 4:
                current.modes[words[0]] = FileMeta(words[1], int(words[2]), int(words[3]))
            elif marker == "legacy_password":
                current.legacy_password = True
            elif marker == "handoff_staging":
                current.handoff_staging = True
            elif marker == "password_matches":
                current.password_matches = True
            elif marker == "env_current":
                current.env_current = True
        return result


def _by_path(result: InstalledCertificates, path: str, record) -> None:
    """A certificate file hashed or stat'ed in the batch at the end (``<base>/<fqdn>/<name>``):
    recorded for the endpoint and file its path names, when it is one the fact described."""
    *_, endpoint, name = path.rsplit("/", 2)
    if endpoint in result.endpoints and name in INSTALLED_FILES:
        record(result.endpoints[endpoint], name)
