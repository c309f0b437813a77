"""PKCS#12 and the hand-off to the application: the PFX, its password and kestrel.env under app_dir.

The task (tasks/certificates.py) decides per endpoint what its hand-off needs (``handoff_actions``,
with ``rebuild_reasons`` saying why a PFX is rebuilt); ``pkcs12_bundles`` then builds every PFX of
a host that needs it in one command (files/scripts/build_pfxs.sh, build_pfx.sh). The password is
generated on the host, or comes from the CI secret named by ``pfx_password_env``: it travels only
as uploaded file contents into files created empty and 0600 first, never in a command line, a
fact's output or an operation's label; only its salted hash is recorded, for the controller to
compare its own secret with (``password_hash``). The application is told afterwards (``unit``).
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
from types import MappingProxyType

from pydantic import SecretStr
from pyinfra import host
from pyinfra.api import OperationError, operation

from bars_receiver.certificates.facts import HANDOFF_FILES, InstalledCertificate, PFX, PFX_PASSWORD
from bars_receiver.certificates.issued import IssuedCertificate
from bars_receiver.certificates.operations import meta_is
from bars_receiver.certificates.x509 import public_key_der, sha256_hex
from bars_receiver.host_files import upload_secret
from bars_receiver.keys.facts import PUBLIC_KEY_CACHE
from bars_receiver.shipping import host_script, shipped


PROFILES = MappingProxyType({
    # OpenSSL 3's own defaults, spelt out: PBES2/PBKDF2 with AES-256-CBC, HMAC-SHA256 MAC.
    "modern": ("-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256"),
    # What Windows Server 2016 and older .NET Framework stacks can import.
    "legacy": ("-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"),
})

HASH_ROUNDS = 100000  # sha512-crypt rounds for the recorded password hash
_RECORD = re.compile(r"^\$6\$(rounds=\d+\$)?[A-Za-z0-9./]{1,16}\$[A-Za-z0-9./]{86}$")


def password_salt(host_name: str) -> str:
    """The salt of a CI-secret password's record: one per host, so the controller hashes the secret
    once per host rather than once per endpoint (100000 rounds each). Every endpoint of a host has
    the same secret, so sharing the salt there reveals nothing more."""
    return hashlib.sha256(f"bars-receiver-pfx:{host_name}".encode()).hexdigest()[:16]


def password_hash(password: SecretStr, record: str) -> str | None:
    """``openssl passwd -6`` of ``password`` with the salt of ``record``; the password goes on stdin."""
    if not _RECORD.match(record or ""):
        return None
    return _crypt(password.get_secret_value(), record.removeprefix("$6$").rsplit("$", 1)[0])


@functools.lru_cache(maxsize=64)
def _crypt(password: str, salt: str) -> str:
    result = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input=password + "\n", capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


def rebuild_reasons(
    certificate: IssuedCertificate,
    key_public_pem: str,
    installed: InstalledCertificate,
    profile: str,
    password: SecretStr | None,
) -> list[str]:
    """Why the PFX must be (re)built; [] when it was built from exactly these inputs."""
    if PFX not in installed.modes:
        return ["there is no PFX yet"]
    if PFX_PASSWORD not in installed.modes:
        return [f"{PFX_PASSWORD} is missing"]
    record = installed.inputs
    if not record:
        return ["nothing records what the PFX was built from"]
    reasons = []
    if record.get("chain_sha256") != sha256_hex(certificate.chain_pem):
        reasons.append("the certificate or its chain changed")
    if record.get("key_sha256") != sha256_hex(public_key_der(key_public_pem)):
        reasons.append("the key changed")
    if record.get("profile") != profile:
        reasons.append(f"the profile changed from {record.get('profile')} to {profile}")
    source = "env" if password is not None else "generated"
    if record.get("password_source") != source:
        reasons.append(f"the password source changed from {record.get('password_source')} to {source}")
    elif password is not None and password_hash(password, record.get("password_hash", "")) != record.get("password_hash"):
        reasons.append("the password (pfx_password_env) changed")
    if not installed.password_matches:
        reasons.append(f"{PFX_PASSWORD} is not the password the PFX was built with")
    return reasons


def handoff_actions(
    certificate: IssuedCertificate,
    key_public_pem: str,
    installed: InstalledCertificate,
    profile: str,
    password: SecretStr | None,
    app_group: str | None,
    group_gid: int | None,
) -> list[str]:
    """What the endpoint's PKCS#12 hand-off needs, decided from the facts: a build (``"upload"`` a
    CI-secret password, ``"generate"`` one, or ``"keep"`` the one the application has) when
    ``rebuild_reasons`` finds any; else ``"modes"`` (owner or modes drifted) and/or ``"env"``
    (kestrel.env no longer says what the host would write); [] when it is as it should be."""
    if rebuild_reasons(certificate, key_public_pem, installed, profile, password):
        if password is not None:
            return ["upload"]
        if (PFX_PASSWORD in installed.modes or installed.legacy_password) \
                and installed.inputs.get("password_source") != "env":
            return ["keep"]
        return ["generate"]
    gid = group_gid if app_group else 0
    dir_mode, file_mode = ("750", "640") if app_group else ("700", "600")
    actions = []
    loose = [meta for meta in (installed.app_dir, installed.handoff_generation, installed.handoff_archive)
             if not meta_is(meta, dir_mode, gid)]
    loose += [installed.modes[name] for name in HANDOFF_FILES
              if name in installed.modes and not meta_is(installed.modes[name], file_mode, gid)]
    if loose:
        actions.append("modes")
    if not installed.env_current:
        actions.append("env")
    return actions


@operation()
def pkcs12_bundles(
    handoffs: list[tuple[str, str, str, str]],
    profile: str = "modern",
    password: SecretStr | None = None,
    app_group: str | None = None,
    group_gid: int | None = None,
):
    """
    Build the PKCS#12s of a host's endpoints and hand them to the application, in one command.

    + handoffs: (key directory, hand-off directory, FQDN, action) per endpoint that needs
      something (``handoff_actions``): action ``upload``, ``generate`` or ``keep`` (the
      password) rebuilds receiver.pfx, pfx.pass and kestrel.env in a hand-off generation of its
      own, archive/<N>/, switched by one rename of live (files/scripts/build_pfx.sh); ``modes``
      sets owner and modes again; ``env`` rewrites kestrel.env. The FQDN is the PFX's friendly name
    + profile: ``modern`` (AES-256-CBC, PBKDF2, SHA-256 MAC) or ``legacy`` (3DES, SHA-1 MAC)
    + password: the PFX password from a CI secret (uploaded once into a file made 0600 first,
      copied on the host: never an argument); None = generated on the host, kept there
    + app_group: group allowed to read the PFX, its password and kestrel.env; None = root only
    + group_gid: that group's id on the host

    files/scripts/build_pfxs.sh stages every build, then runs build_pfx.sh for each on every core.
    A build that fails is named and leaves its hand-off as it was, the others are built, and the
    operation fails: the next run rebuilds the rest.

    **Example:**

    .. code:: python

        pkcs12_bundles(name="PKCS#12 and application hand-off for BaRS-INT-...",
                       handoffs=[("/etc/bars-receiver/BaRS-INT-...", "/etc/bars-receiver-app/BaRS-INT-...",
                                  "BaRS-INT-...", "generate")], profile="modern")
    """
    if profile not in PROFILES:
        raise OperationError(f"unknown PKCS#12 profile {profile!r}; use one of {', '.join(PROFILES)}")
    if app_group and group_gid is None:
        raise OperationError(f"group {app_group!r} (app_group) does not exist on the host")
    if not handoffs:
        host.noop("no PKCS#12 to build")
        return
    uploads = [handoff for _, handoff, _, action in handoffs if action == "upload"]
    if uploads and password is None:
        raise OperationError("a PKCS#12 password upload was asked for without a password (pfx_password_env)")
    if uploads:
        yield from host_script("prepare", uploads[0])
        yield from upload_secret(f"{uploads[0]}/.staging/gen/{PFX_PASSWORD}", password.get_secret_value() + "\n")
    build_pfx = yield from shipped("build_pfx")
    yield from host_script("build_pfxs", build_pfx, profile, "env" if password is not None else "generated",
                           app_group or "root", *(("750", "640") if app_group else ("700", "600")),
                           password_salt(host.name) if password is not None else "", HASH_ROUNDS, PUBLIC_KEY_CACHE,
                           *(value for handoff in handoffs for value in handoff))
