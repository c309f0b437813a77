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

from .certificate_facts import (
    CA, CERT, CHAIN, ENV_TEXT_FUNCTION, HANDOFF_FILES, PFX, PFX_PASSWORD, InstalledCertificate,
)
from .certificates import IssuedCertificate
from .facts import NEXT, EndpointState, FileMeta
from .operations import upload_secret
from .shell import script_command
from .x509 import public_key_der, sha256_hex

PROFILES = {
    # OpenSSL 3's own defaults, spelt out: PBES2/PBKDF2 with AES-256-CBC, HMAC-SHA256 MAC.
    "modern": ("-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256"),
    # What Windows Server 2016 and older .NET Framework stacks can import.
    "legacy": ("-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"),
}
HASH_ROUNDS = 100000  # sha512-crypt rounds for the recorded password hash
_RECORD = re.compile(r"^\$6\$(rounds=\d+\$)?[A-Za-z0-9./]{1,16}\$[A-Za-z0-9./]{86}$")

# Shared by the install and swap scripts, which set $dir and $unchanged first: fail() removes
# what was staged and stops; public_key() reads a key with the key.pass beside it, if any;
# place_staged() renames the staged certificate files into place.
_STAGED_CERTIFICATES = r"""
fail() {
  rm -f .cert.pem.new .chain.pem.new .ca.pem.new
  echo "$dir: $*; nothing was switched ($unchanged)" >&2
  exit 1
}
public_key() {
  if [ -f "${1%/*}/key.pass" ]; then passin="file:${1%/*}/key.pass"; else passin=pass:; fi
  openssl pkey -in "$1" -passin "$passin" -pubout 2>/dev/null
}
place_staged() {
  for f in ca.pem chain.pem cert.pem; do
    if [ -f ".$f.new" ]; then
      chown root:root ".$f.new"
      chmod 0644 ".$f.new"
      mv -f ".$f.new" "$f"
    fi
  done
}
"""

# The host compares the public key of every certificate it is about to install with key.pem's
# before it renames anything into place; on a mismatch it removes what was staged and stops.
INSTALL_SCRIPT = r"""
set -e
umask 022
dir=$1 unchanged="cert.pem, chain.pem and ca.pem are as they were"
cd "$dir"
""" + _STAGED_CERTIFICATES + r"""
[ -f key.pem ] || fail "there is no key.pem"
key=$(public_key ./key.pem) || fail "openssl cannot read key.pem"
for f in cert.pem chain.pem; do
  if [ -f ".$f.new" ]; then file=".$f.new"; else file=$f; fi
  [ -f "$file" ] || fail "$f is missing"
  certkey=$(openssl x509 -in "$file" -noout -pubkey 2>/dev/null) || fail "openssl cannot read the certificate in $file"
  [ "$certkey" = "$key" ] || fail "the certificate for $f is not for this endpoint's key: its public key differs from key.pem's"
done
if [ -f .cert.pem.new ] && [ -f cert.pem ]; then
  mkdir -p archive
  chmod 700 archive
  old="archive/cert-$(sha256sum < cert.pem | cut -c1-16).pem"
  [ -e "$old" ] || cp -p cert.pem "$old"
fi
place_staged
"""

# A renewal: the new certificate is for the key staged in next/. The host checks that first; then
# it hard-links the live key.pem, key.pass, cert.pem, chain.pem and csr.pem into
# archive/<UTC time>-<old cert SHA-256 prefix>/ (so nothing is ever lost), renames next/'s key,
# passphrase and CSR into place, and renames the new certificate files in. nginx reads them only
# when it reloads, which follows this change; each rename is atomic.
SWAP_SCRIPT = r"""
set -e
umask 077
dir=$1 unchanged="the live key and certificate are as they were"
cd "$dir"
""" + _STAGED_CERTIFICATES + r"""
[ -f next/key.pem ] || fail "there is no next/key.pem"
key=$(public_key next/key.pem) || fail "openssl cannot read next/key.pem"
for f in cert.pem chain.pem; do
  [ -f ".$f.new" ] || fail "the new $f was not staged"
  certkey=$(openssl x509 -in ".$f.new" -noout -pubkey 2>/dev/null) || fail "openssl cannot read the new $f"
  [ "$certkey" = "$key" ] || fail "the new certificate for $f is not for next/key.pem: its public key differs"
done
if [ -f cert.pem ]; then old=$(sha256sum < cert.pem | cut -c1-16); else old=no-cert; fi
old="archive/$(date -u +%Y%m%dT%H%M%SZ)-$old"
mkdir -p archive
chmod 700 archive
mkdir "$old"
for f in key.pem key.pass cert.pem chain.pem csr.pem; do
  if [ -f "$f" ]; then ln "$f" "$old/$f"; fi
done
if [ -f next/key.pass ]; then mv -f next/key.pass key.pass; else rm -f key.pass; fi
mv -f next/key.pem key.pem
if [ -f next/csr.pem ]; then mv -f next/csr.pem csr.pem; else rm -f csr.pem; fi
place_staged
rmdir next 2>/dev/null || true
echo "$dir: renewed; the previous key and certificate are in $dir/$old"
"""

# Builds the PFX from key.pem and chain.pem (leaf, then sub CA) beside it, checks it opens with its
# password, writes kestrel.env, then records what it was built from in pfx.inputs (root-only, in
# the key directory). Everything is made under temporary names and renamed into place at the end.
BUILD_SCRIPT = ENV_TEXT_FUNCTION + r"""
set -e
umask 077
keydir=$1 handoff=$2 fqdn=$3 profile=$4 password=$5 source=$6 group=$7 dirmode=$8 filemode=$9 salt=${10}
mkdir -p "$handoff"
chown root:"$group" "$handoff"
chmod "$dirmode" "$handoff"
cd "$handoff"
trap 'rm -f .pfx.pass.new .receiver.pfx.new .kestrel.env.new "$keydir/.pfx.inputs.new"' EXIT
case $password in
  upload) [ -s .pfx.pass.new ] || { echo "$handoff: the uploaded PFX password is missing" >&2; exit 1; } ;;
  generate) openssl rand -hex 24 > .pfx.pass.new ;;
  keep) cp pfx.pass .pfx.pass.new ;;
esac
case $profile in
  modern) set -- -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 ;;
  legacy) set -- -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 ;;
  *) echo "unknown PKCS#12 profile $profile" >&2; exit 1 ;;
esac
if [ -f "$keydir/key.pass" ]; then passin="file:$keydir/key.pass"; else passin=pass:; fi
openssl pkcs12 -export -inkey "$keydir/key.pem" -passin "$passin" -in "$keydir/chain.pem" -name "$fqdn" "$@" \
  -passout file:.pfx.pass.new -out .receiver.pfx.new
openssl pkcs12 -in .receiver.pfx.new -passin file:.pfx.pass.new -noout
env_text "$handoff/receiver.pfx" .pfx.pass.new > .kestrel.env.new
chown root:"$group" .pfx.pass.new .receiver.pfx.new .kestrel.env.new
chmod "$filemode" .pfx.pass.new .receiver.pfx.new .kestrel.env.new
salt="rounds=__ROUNDS__\$${salt:-$(openssl rand -hex 8)}"
{
  echo "chain_sha256 $(sha256sum < "$keydir/chain.pem" | cut -c1-64)"
  echo "key_sha256 $(openssl pkey -in "$keydir/key.pem" -passin "$passin" -pubout -outform DER | sha256sum | cut -c1-64)"
  echo "profile $profile"
  echo "password_source $source"
  echo "password_hash $(openssl passwd -6 -salt "$salt" -in .pfx.pass.new)"
  echo "password_sha256 $(sha256sum < .pfx.pass.new | cut -c1-64)"
} > "$keydir/.pfx.inputs.new"
mv -f .pfx.pass.new pfx.pass
mv -f .receiver.pfx.new receiver.pfx
mv -f .kestrel.env.new kestrel.env
mv -f "$keydir/.pfx.inputs.new" "$keydir/pfx.inputs"
""".replace("__ROUNDS__", str(HASH_ROUNDS))

WRITE_ENV_SCRIPT = ENV_TEXT_FUNCTION + r"""
set -e
umask 077
handoff=$1 group=$2 mode=$3
cd "$handoff"
env_text "$handoff/receiver.pfx" pfx.pass > .kestrel.env.new
chown root:"$group" .kestrel.env.new
chmod "$mode" .kestrel.env.new
mv -f .kestrel.env.new kestrel.env
"""


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
    + swap_keys: the certificate is for the key staged in next/ (a renewal): archive the live key,
      certificate and CSR, and move next/'s into place (see ``SWAP_SCRIPT``)

    Writes cert.pem (the leaf), chain.pem (leaf, then sub CA) and ca.pem (the environment's CA
    bundle, for client verification), 0644 root:root. A replaced cert.pem is kept in archive/.

    **Example:**

    .. code:: python

        endpoint_certificate(name="Certificate for BaRS-INT-...", directory=..., certificate=..., installed=...)
    """
    wanted = {CERT: certificate.leaf_pem, CHAIN: certificate.chain_pem, CA: certificate.ca_pem}
    stale = [name for name, text in wanted.items() if installed.files.get(name) != sha256_hex(text)]
    if swap_keys:
        stale = list(wanted)  # the swap script checks and renames all three together
    if stale:
        for name in stale:
            yield FileUploadCommand(StringIO(wanted[name]), f"{directory}/.{name}.new")
        yield script_command(SWAP_SCRIPT if swap_keys else INSTALL_SCRIPT, directory)
        return
    loose = [name for name in wanted if not _meta_is(installed.modes.get(name), "644", 0)]
    for name in loose:
        yield script_command('chown root:root "$1" && chmod 0644 "$1"', f"{directory}/{name}")
    if not loose:
        host.noop(f"certificate {directory}/{CERT} already installed (expires {certificate.not_after:%Y-%m-%d})")


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

    + key_dir: the endpoint's root-only directory (key.pem, chain.pem, pfx.inputs)
    + handoff_dir: the endpoint's directory under app_dir (receiver.pfx, pfx.pass, kestrel.env)
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
        if password is not None:
            yield from upload_secret(f"{handoff_dir}/.{PFX_PASSWORD}.new", password.get_secret_value() + "\n")
            source = "upload"
        elif PFX_PASSWORD in installed.modes and installed.inputs.get("password_source") != "env":
            source = "keep"
        else:
            source = "generate"
        yield script_command(BUILD_SCRIPT, key_dir, handoff_dir, fqdn, profile, source,
                  "env" if password is not None else "generated", group, dir_mode, file_mode,
                  password_salt(host.name) if password is not None else "")
        return

    changed = False
    if not _meta_is(installed.app_dir, dir_mode, gid):
        yield script_command('chown root:"$2" "$1" && chmod "$3" "$1"', handoff_dir, group, dir_mode)
        changed = True
    for name in HANDOFF_FILES:
        meta = installed.modes.get(name)
        if meta is not None and not _meta_is(meta, file_mode, gid):
            yield script_command('chown root:"$2" "$1" && chmod "$3" "$1"', f"{handoff_dir}/{name}", group, file_mode)
            changed = True
    if not installed.env_current:
        yield script_command(WRITE_ENV_SCRIPT, handoff_dir, group, file_mode)
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


def host_problems(receiver, endpoint_files: dict, installed) -> list[str]:
    """Reasons not to touch this host at all, found from the facts before any operation runs.

    A certificate is worth days of someone's time: if the host no longer holds the key it was
    issued for (the live key, or the next key staged for renewal), say so rather than make a new
    key or install a certificate that cannot work.
    """
    problems = []
    for endpoint in receiver.endpoints:
        certificate = receiver.certificates.get(endpoint.fqdn)
        if certificate is None:
            continue
        key_path = f"{receiver.endpoint_dir(endpoint.fqdn)}/key.pem"
        csr = f"requests/{receiver.inventory}/{endpoint.fqdn}{'.next' if certificate.for_next_key else ''}.csr"
        state = endpoint_files.get(endpoint.fqdn)
        if key_role(certificate, state) is not None:
            continue
        if state is None or state.key is None:
            problems.append(
                f"{certificate.source}: was issued for the key behind {csr}, but the host has no {key_path}: the key "
                "it was issued for is gone. Restore key.pem (and key.pass) from backup; or, if it is lost, move the "
                ".cer out of files/certs (git keeps it) and re-run to make a new key and CSR to send"
            )
        elif state.key_unreadable or state.key_public_pem is None or (
                certificate.for_next_key and (state.next is None or state.next.key_unreadable)):
            path = f"{receiver.endpoint_dir(endpoint.fqdn)}/{NEXT}/key.pem" if certificate.for_next_key else key_path
            problems.append(
                f"{certificate.source}: cannot be checked against {path}: the host has no such key, or openssl "
                "cannot read it with its key.pass. Restore it (and key.pass); nothing was changed"
            )
        else:
            problems.append(
                f"{certificate.source}: is for the key behind {csr}, but {key_path} on the host is a different "
                f"key{' (and so is ' + NEXT + '/key.pem)' if state.next is not None else ''}, so the certificate "
                "cannot be installed. Was the host rebuilt or the key replaced? Restore the original key.pem, or "
                "move the .cer out of files/certs and request a certificate for the host's current CSR"
            )
    settings = receiver.settings
    if settings.app_group and receiver.certificates and installed.group_gid is None:
        problems.append(
            f"inventories/{receiver.inventory}.yml: app_group {settings.app_group!r} does not exist on the host; "
            "create the application's group first (usually with the application), or unset app_group"
        )
    return problems
