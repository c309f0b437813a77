"""Custom pyinfra operations for endpoint keys and CSRs.

They take the endpoint's ``EndpointState`` (read once per host by the batched ``EndpointFiles``
fact) instead of reading facts themselves, so a run's round trips do not grow with endpoints.
"""

from __future__ import annotations

from io import StringIO

from pydantic import SecretStr
from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, operation
from pyinfra.facts.files import File, Sha256File

from .facts import CSR, KEY, KEY_PASSPHRASE, EndpointState
from .shell import script_command
from .x509 import csr_problem, sha256_hex

STAGED_PASSPHRASE = ".key.pass.new"

# Creates the key 0600 from birth (umask) under a temporary name, then links it into place:
# ln fails if key.pem exists, so a key is never replaced even if the fact was stale.
_MAKE_KEY = """
set -e
umask 077
dir=$1 bits=$2 protection=$3
cd "$dir"
if [ -e key.pem ]; then echo "$dir/key.pem already exists; refusing to replace a private key" >&2; exit 1; fi
if [ "$protection" = encrypted ]; then
  mv -f .key.pass.new key.pass
  set -- -aes-256-cbc -pass file:key.pass
else
  rm -f key.pass
  set --
fi
openssl genpkey -quiet -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" "$@" -out .key.pem.new
ln .key.pem.new key.pem
rm -f .key.pem.new
"""

# The subject is the CN alone; -config /dev/null keeps the host's openssl.cnf from adding fields.
_MAKE_CSR = """
set -e
umask 077
cd "$1"
if [ -f key.pass ]; then passin=file:key.pass; else passin=pass:; fi
openssl req -new -config /dev/null -key key.pem -passin "$passin" -subj "/CN=$2" -sha256 -out .csr.pem.new
mv -f .csr.pem.new csr.pem
"""


def upload_secret(path: str, secret: str):
    """Commands that put ``secret`` into ``path`` without a readable file ever existing: the file
    (and its directory, if missing) is made 0600/0700 first, then the secret goes in over SFTP as
    file contents, never as a command argument."""
    yield script_command('umask 077; mkdir -p "${1%/*}"; rm -f "$1"; : > "$1"', path)
    yield FileUploadCommand(StringIO(secret), path)


@operation()
def private_key(
    directory: str,
    state: EndpointState | None,
    key_size: int = 2048,
    passphrase: SecretStr | None = None,
):
    """
    Make an endpoint's RSA private key on the host, once; never replace an existing one.

    + directory: the endpoint's root-only directory (created 0700 if missing)
    + state: the endpoint's ``EndpointState`` from ``EndpointFiles``, or None if absent
    + key_size: RSA bits for a new key
    + passphrase: encrypt a new key with AES-256; kept root-only beside it as key.pass

    **Example:**

    .. code:: python

        private_key(name="Private key for BaRS-INT-RX809...", directory=..., state=..., key_size=2048)
    """
    if state is None or state.dir is None:
        yield script_command('umask 077; mkdir -p "$1"', directory)
    elif not state.dir.root_only:
        yield script_command('chown root:root "$1" && chmod 0700 "$1"', directory)

    if state is not None and state.key is not None:
        if state.key_unreadable:
            raise OperationError(
                f"{directory}/{KEY} exists but openssl cannot read it with {KEY_PASSPHRASE}; it is left as it "
                "is. Restore the passphrase file, or archive the key by hand if it is truly lost"
            )
        loose = [
            f"{directory}/{name}"
            for meta, name in ((state.key, KEY), (state.key_pass, KEY_PASSPHRASE))
            if meta is not None and (meta.mode != "600" or not meta.root_only)
        ]
        for path in loose:
            yield script_command('chown root:root "$1" && chmod 0600 "$1"', path)
        if not loose:
            host.noop(f"private key {directory}/{KEY} already exists")
        return

    if passphrase is not None:
        yield from upload_secret(f"{directory}/{STAGED_PASSPHRASE}", passphrase.get_secret_value())
    yield script_command(_MAKE_KEY, directory, key_size, "encrypted" if passphrase is not None else "plain")


@operation()
def certificate_request(directory: str, fqdn: str, state: EndpointState | None):
    """
    Make the endpoint's CSR (subject CN=fqdn only) when it is missing or no longer matches.

    + directory: the endpoint's directory holding key.pem
    + fqdn: the CN, exactly
    + state: the endpoint's ``EndpointState``; None or no key means the key is being made now

    **Example:**

    .. code:: python

        certificate_request(name="CSR for BaRS-INT-RX809...", directory=..., fqdn=..., state=...)
    """
    reason = csr_reason(fqdn, state)
    if reason is None:
        host.noop(f"CSR {directory}/{CSR} already matches the key and CN={fqdn}")
        return
    yield script_command(_MAKE_CSR, directory, fqdn)


def csr_reason(fqdn: str, state: EndpointState | None) -> str | None:
    """Why the CSR must be (re)made, or None when the one on the host is right."""
    if state is None or state.key_public_pem is None:
        return "the key is new"
    if state.csr_pem is None:
        return "no CSR yet"
    return csr_problem(state.csr_pem, fqdn, state.key_public_pem)


@operation()
def file_atomically(path: str, content: str, mode: str = "644"):
    """
    Make ``path`` (root-owned) hold ``content``, replacing it by rename so nobody ever reads half.

    pyinfra's files.put writes straight over the destination when it connects as root; this op
    uploads beside it and renames, so an interrupted run leaves the old file whole.

    + path: the file to write
    + content: its whole text (not a secret: use the key passphrase's path for those)
    + mode: octal mode

    **Example:**

    .. code:: python

        file_atomically(name="Client CRLs", path="/etc/bars-receiver/client-crl.pem", content=pem)
    """
    meta = host.get_fact(File, path=path)
    if host.get_fact(Sha256File, path=path) == sha256_hex(content.encode()):
        if meta and meta["mode"] == int(mode) and meta["user"] == "root" and meta["group"] == "root":
            host.noop(f"{path} is already up to date")
            return
        yield script_command('chown root:root "$1" && chmod "$2" "$1"', path, mode)
        return
    staged = f"{path.rsplit('/', 1)[0]}/.{path.rsplit('/', 1)[1]}.new"
    yield FileUploadCommand(StringIO(content), staged)
    yield script_command('chown root:root "$1" && chmod "$2" "$1" && mv -f "$1" "$3"', staged, mode, path)
