"""Custom pyinfra operations: install an issued certificate, build its PKCS#12, hand it over.

Both take the endpoint's state from the batched ``CertificateFiles`` fact (read once per host)
and yield commands only for what differs. Secrets (the PFX password) travel only as uploaded file
contents into files created empty and 0600 first, and are read on the host with ``file:``; they
are never in a command line, a fact's output or an operation's label.
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
from io import StringIO

from pydantic import SecretStr
from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, operation

from .certificate_facts import CA, CERT, CHAIN, HANDOFF_FILES, PFX, PFX_PASSWORD, InstalledCertificate
from .certificates import IssuedCertificate
from .facts import LIVE, NEXT, EndpointState, FileMeta
from .operations import upload_secret
from .scripts import run_script
from .shell import script_command
from .x509 import public_key_der, sha256_hex
from .settings import file_stem

PROFILES = {
    # OpenSSL 3's own defaults, spelt out: PBES2/PBKDF2 with AES-256-CBC, HMAC-SHA256 MAC.
    "modern": ("-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256"),
    # What Windows Server 2016 and older .NET Framework stacks can import.
    "legacy": ("-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"),
}
HASH_ROUNDS = 100000  # sha512-crypt rounds for the recorded password hash
_RECORD = re.compile(r"^\$6\$(rounds=\d+\$)?[A-Za-z0-9./]{1,16}\$[A-Za-z0-9./]{86}$")

class SharedList(list):
    """A list that included task files share: ``host.data`` hands out shallow copies of its values,
    so a plain list filled by one task would never reach the next. deploy.py makes one per host."""

    def __copy__(self):
        return self


def _meta_is(meta: FileMeta | None, mode: str, gid: int) -> bool:
    return meta is not None and meta.mode == mode and meta.uid == 0 and meta.gid == gid


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


@operation()
def endpoint_certificate(directory: str, certificate: IssuedCertificate, installed: InstalledCertificate,
                         swap_keys: bool = False):
    """
    Install an endpoint's issued certificate beside its key, once the host has confirmed they match.

    + directory: the endpoint's root-only directory holding key.pem
    + certificate: the checked ``IssuedCertificate`` (from the inventory's HostSettings)
    + installed: the endpoint's ``InstalledCertificate`` from the ``CertificateFiles`` fact
    + swap_keys: the certificate is for the key next names (a renewal): the new generation takes
      next's key, and next is dropped once live names it

    Every change makes a new generation archive/<N>/ holding the key (hard links), cert.pem (the
    leaf), chain.pem (leaf, then sub CA) and ca.pem (the environment's CA bundle, for client
    verification, 0644 root:root), and renames live onto it: nginx and the PKCS#12 never see a
    key beside another generation's certificate. Earlier generations stay in archive/.

    **Example:**

    .. code:: python

        endpoint_certificate(name="Certificate for BaRS-INT-...", directory=..., certificate=..., installed=...)
    """
    wanted = {CERT: certificate.leaf_pem, CHAIN: certificate.chain_pem, CA: certificate.ca_pem}
    stale = [name for name, text in wanted.items() if installed.files.get(name) != sha256_hex(text)]
    if stale or swap_keys:
        # A new generation: the key hard-linked from live (or next), all three files uploaded
        # beside it, checked on the host, then live renamed onto it (files/scripts/switch.sh).
        source = NEXT if swap_keys else LIVE
        yield run_script("prepare", directory, source)
        for name, text in wanted.items():
            yield FileUploadCommand(StringIO(text), f"{directory}/.staging/gen/{name}")
        yield run_script("switch", directory, source)
        return
    loose = [name for name in wanted if not _meta_is(installed.modes.get(name), "644", 0)]
    for name in loose:
        yield script_command('chown root:root "$1" && chmod 0644 "$1"', f"{directory}/{LIVE}/{name}")
    if not loose:
        host.noop(f"certificate {directory}/{LIVE}/{CERT} already installed (expires {certificate.not_after:%Y-%m-%d})")


@operation()
def pkcs12_bundle(
    key_dir: str,
    handoff_dir: str,
    fqdn: str,
    certificate: IssuedCertificate,
    key_public_pem: str,
    installed: InstalledCertificate,
    profile: str = "modern",
    password: SecretStr | None = None,
    app_group: str | None = None,
    group_gid: int | None = None,
):
    """
    Build the endpoint's PKCS#12 on the host and hand it to the application, only when needed.

    + key_dir: the endpoint's root-only directory (live/key.pem, live/chain.pem, pfx.inputs)
    + handoff_dir: the endpoint's directory under app_dir: receiver.pfx, pfx.pass and kestrel.env
      in a generation of their own, archive/<N>/, switched by one rename of live
      (files/scripts/build_pfx.sh)
    + fqdn: the PFX's friendly name
    + certificate: the installed ``IssuedCertificate``
    + key_public_pem: the host key's public half, from ``EndpointFiles``
    + installed: the endpoint's ``InstalledCertificate`` from ``CertificateFiles``
    + profile: ``modern`` (AES-256-CBC, PBKDF2, SHA-256 MAC) or ``legacy`` (3DES, SHA-1 MAC)
    + password: the PFX password from a CI secret; None = generated on the host, kept there
    + app_group: group allowed to read the PFX, its password and kestrel.env; None = root only
    + group_gid: that group's id on the host

    Rebuilt only when the key, certificate, chain, profile or password differ from those recorded
    in pfx.inputs (PKCS#12 bytes are salted, so they cannot be compared).

    **Example:**

    .. code:: python

        pkcs12_bundle(name="PKCS#12 for BaRS-INT-...", key_dir=..., handoff_dir=..., fqdn=..., ...)
    """
    if profile not in PROFILES:
        raise OperationError(f"unknown PKCS#12 profile {profile!r}; use one of {', '.join(PROFILES)}")
    if app_group and group_gid is None:
        raise OperationError(f"group {app_group!r} (app_group) does not exist on the host")
    group, gid = (app_group, group_gid) if app_group else ("root", 0)
    dir_mode, file_mode = ("750", "640") if app_group else ("700", "600")

    reasons = rebuild_reasons(certificate, key_public_pem, installed, profile, password)
    if reasons:
        yield run_script("prepare", handoff_dir)
        if password is not None:
            yield from upload_secret(f"{handoff_dir}/.staging/gen/{PFX_PASSWORD}", password.get_secret_value() + "\n")
            source = "upload"
        elif (PFX_PASSWORD in installed.modes or installed.legacy_password) \
                and installed.inputs.get("password_source") != "env":
            source = "keep"
        else:
            source = "generate"
        yield run_script("build_pfx", key_dir, handoff_dir, fqdn, profile, source,
                         "env" if password is not None else "generated", group, dir_mode, file_mode,
                         password_salt(host.name) if password is not None else "", HASH_ROUNDS)
        return

    changed = False
    loose = [meta for meta in (installed.app_dir, installed.handoff_generation, installed.handoff_archive)
             if not _meta_is(meta, dir_mode, gid)]
    loose += [installed.modes[name] for name in HANDOFF_FILES
              if name in installed.modes and not _meta_is(installed.modes[name], file_mode, gid)]
    if loose:
        yield run_script("handoff_modes", handoff_dir, group, dir_mode, file_mode)
        changed = True
    if not installed.env_current:
        yield run_script("write_env", handoff_dir, group, file_mode)
        changed = True
    if not changed:
        host.noop(f"PKCS#12 {handoff_dir}/{PFX} already built from this key, certificate, profile and password")


def key_role(certificate: IssuedCertificate, state: EndpointState | None) -> str | None:
    """Which host key ``certificate`` is for: ``"live"`` (key.pem), ``"next"`` (next/key.pem, staged
    for renewal: installing it swaps keys) or None (neither, or the key cannot be read).

    Decided from the host's own keys rather than from which CSR the controller matched, so a run
    interrupted half-way through a swap is finished by the next one.
    """
    if state is None:
        return None
    for role, part in (("live", state), ("next", state.next)):
        if part is not None and part.key_public_pem is not None and \
                sha256_hex(public_key_der(part.key_public_pem)) == certificate.public_key_sha256:
            return role
    return None


def serving_state(certificate: IssuedCertificate | None, state: EndpointState | None) -> EndpointState | None:
    """The key files that serve once this run is done: next/'s when the certificate swaps keys."""
    if certificate is not None and state is not None and key_role(certificate, state) == "next":
        return state.next
    return state


def renewal_due(certificate: IssuedCertificate | None, state: EndpointState | None, renewal_days: int) -> bool:
    """Stage a next key and CSR: the live key's certificate is inside its renewal window."""
    return (certificate is not None and certificate.state(renewal_days) == "renewing"
            and key_role(certificate, state) == "live")


def key_refusals(receiver, endpoint_files: dict) -> dict[str, str]:
    """FQDN -> why its checked certificate cannot go on this host, found from the facts before any
    operation runs. Such an endpoint is left exactly as it is; the rest of the host goes ahead.

    A certificate is worth days of someone's time: if the host no longer holds the key it was
    issued for (the live key, or the next key staged for renewal), say so rather than make a new
    key or install a certificate that cannot work.
    """
    refusals = {}
    for endpoint in receiver.endpoints:
        certificate = receiver.certificates.get(endpoint.fqdn)
        if certificate is None:
            continue
        key_path = f"{receiver.endpoint_dir(endpoint.fqdn)}/key.pem"
        csr = f"requests/{receiver.inventory}/{file_stem(endpoint)}{'.next' if certificate.for_next_key else ''}.csr"
        state = endpoint_files.get(endpoint.fqdn)
        if key_role(certificate, state) is not None:
            continue
        if state is None or state.key is None:
            refusals[endpoint.fqdn] = (
                f"{certificate.source}: was issued for the key behind {csr}, but the host has no {key_path}: the key "
                "it was issued for is gone. Restore key.pem (and key.pass) from backup; or, if it is lost, move the "
                ".cer out of files/certs (git keeps it) and re-run to make a new key and CSR to send"
            )
        elif state.key_unreadable or state.key_public_pem is None or (
                certificate.for_next_key and (state.next is None or state.next.key_unreadable)):
            path = f"{receiver.endpoint_dir(endpoint.fqdn)}/{NEXT}/key.pem" if certificate.for_next_key else key_path
            refusals[endpoint.fqdn] = (
                f"{certificate.source}: cannot be checked against {path}: the host has no such key, or openssl "
                "cannot read it with its key.pass. Restore it (and key.pass); the endpoint was left as it is"
            )
        else:
            refusals[endpoint.fqdn] = (
                f"{certificate.source}: is for the key behind {csr}, but {key_path} on the host is a different "
                f"key{' (and so is ' + NEXT + '/key.pem)' if state.next is not None else ''}, so the certificate "
                "cannot be installed. Was the host rebuilt or the key replaced? Restore the original key.pem, or "
                "move the .cer out of files/certs and request a certificate for the host's current CSR"
            )
    return refusals


def host_problems(receiver, installed) -> list[str]:
    """Reasons not to touch this host at all, found from the facts before any operation runs."""
    problems = []
    settings = receiver.settings
    if settings.app_group and receiver.certificates and installed.group_gid is None:
        problems.append(
            f"inventories/{receiver.inventory}.yml: app_group {settings.app_group!r} does not exist on the host; "
            "create the application's group first (usually with the application), or unset app_group"
        )
    return problems
