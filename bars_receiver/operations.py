"""Custom pyinfra operations for endpoint keys and CSRs.

They take the endpoint's ``EndpointState`` (read once per host by the batched ``EndpointFiles``
fact) instead of reading facts themselves, so a run's round trips do not grow with endpoints.
"""

from __future__ import annotations

from io import StringIO

from pydantic import SecretStr
from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, operation
from pyinfra.facts.files import Directory, File, Sha256File

from .diffs import log_diff
from .facts import CSR, KEY, KEY_PASSPHRASE, LIVE, EndpointState
from .scripts import run_script, script_text
from .shell import script_command
from .x509 import csr_problem, sha256_hex

STAGED_PASSPHRASE = ".staging/gen/key.pass"  # inside the root-only staging prepare.sh clears first


def upload_secret(path: str, secret: str):
    """Commands that put ``secret`` into ``path`` without a readable file ever existing: the file
    (and its directory, if missing) is made 0600/0700 first, then the secret goes in over SFTP as
    file contents, never as a command argument."""
    yield script_command('umask 077; [ -d "${1%/*}" ] || mkdir -m 700 "${1%/*}"; rm -f "$1"; : > "$1"', path)
    yield FileUploadCommand(StringIO(secret), path)


@operation()
def private_key(
    directory: str,
    state: EndpointState | None,
    key_size: int = 2048,
    passphrase: SecretStr | None = None,
    role: str = LIVE,
):
    """
    Make an endpoint's RSA private key on the host, once; never replace an existing one.

    + directory: the endpoint's root-only directory (created 0700 if missing)
    + state: the ``EndpointState`` of the generation ``role`` names (from ``EndpointFiles``), or None
    + key_size: RSA bits for a new key
    + passphrase: encrypt a new key with AES-256; kept root-only beside it as key.pass
    + role: ``live`` (the endpoint's first key) or ``next`` (a renewal's): the pointer that will
      name the new key's generation, archive/<N>/ (see files/scripts/make_key.sh)

    **Example:**

    .. code:: python

        private_key(name="Private key for BaRS-INT-RX809...", directory=..., state=..., key_size=2048)
    """
    if role == LIVE and state is not None and state.dir is not None and not state.dir.root_only:
        yield script_command('chown root:root "$1" && chmod 0700 "$1"', directory)

    if state is not None and state.key is not None:
        if state.key_unreadable:
            raise OperationError(
                f"{directory}/{role}/{KEY} exists but openssl cannot read it with {KEY_PASSPHRASE}; it is left as "
                "it is. Restore the passphrase file, or archive the key by hand if it is truly lost"
            )
        if role != LIVE and state.dir is not None and not state.dir.root_only:
            yield script_command('chown root:root "$1" && chmod 0700 "$1"', f"{directory}/{role}/")
        loose = [
            f"{directory}/{role}/{name}"
            for meta, name in ((state.key, KEY), (state.key_pass, KEY_PASSPHRASE))
            if meta is not None and (meta.mode != "600" or not meta.root_only)
        ]
        for path in loose:
            yield script_command('chown root:root "$1" && chmod 0600 "$1"', path)
        if not loose:
            host.noop(f"private key {directory}/{role}/{KEY} already exists")
        return

    yield run_script("prepare", directory)
    if passphrase is not None:
        yield from upload_secret(f"{directory}/{STAGED_PASSPHRASE}", passphrase.get_secret_value())
    yield run_script("make_key", directory, role, key_size, "encrypted" if passphrase is not None else "plain")


def key_needs_care(state: EndpointState) -> bool:
    """Whether ``private_key`` has anything to do for an existing key: an unreadable key (it fails,
    naming it), or a directory, key or passphrase file that is no longer root-only 0700/0600. An
    unchanged run declares no operation per key."""
    if state.key_unreadable or (state.dir is not None and not state.dir.root_only):
        return True
    return any(meta is not None and (meta.mode != "600" or not meta.root_only) for meta in (state.key, state.key_pass))


def batch_name(what: str, fqdns: list[str]) -> str:
    """An operation name that says which endpoints a batched operation is for:
    ``Private key for A`` for one, ``Private keys for 3 endpoints: A, B, C`` for several."""
    if len(fqdns) == 1:
        return f"{what} for {fqdns[0]}"
    return f"{what}s for {len(fqdns)} endpoints: {', '.join(fqdns)}"


@operation()
def private_keys(
    directories: list[str],
    key_size: int = 2048,
    passphrase: SecretStr | None = None,
    role: str = LIVE,
):
    """
    Make the private keys that are missing on a host, all in one command that uses every core
    (files/scripts/make_keys.sh: make_key.sh per directory under ``xargs -P "$(nproc)"``), so a
    first run's round trips do not grow with endpoints. Each key is 0600 from birth in its own
    staged generation and never replaces an existing one.

    + directories: the endpoints' directories whose ``role`` names no key (created 0700 if missing)
    + key_size: RSA bits
    + passphrase: encrypt the keys with AES-256; kept root-only beside each as key.pass (uploaded
      once, copied on the host; never an argument)
    + role: ``live`` (first keys) or ``next`` (renewal keys)

    **Example:**

    .. code:: python

        private_keys(name="Private keys for 2 endpoints: ...", directories=[...], key_size=2048)
    """
    if not directories:
        host.noop("no private key to make")
        return
    yield run_script("prepare", directories[0])
    if passphrase is not None:
        yield from upload_secret(f"{directories[0]}/{STAGED_PASSPHRASE}", passphrase.get_secret_value())
    yield run_script("make_keys", script_text("make_key"), role, key_size,
                     "encrypted" if passphrase is not None else "plain", *directories)


@operation()
def certificate_requests(requests: list[tuple[str, str]], role: str = LIVE):
    """
    Make several endpoints' CSRs (subject CN=fqdn only) in one command on every core
    (files/scripts/make_csrs.sh: make_csr.sh per endpoint).

    + requests: (directory, fqdn) of each endpoint whose CSR is missing or no longer matches
      (``csr_reason``)
    + role: ``live`` or ``next``: the generation whose key each CSR is for

    **Example:**

    .. code:: python

        certificate_requests(name="CSRs for 2 endpoints: ...", requests=[(directory, fqdn), ...])
    """
    if not requests:
        host.noop("no CSR to make")
        return
    yield run_script("make_csrs", script_text("make_csr"), role,
                     *(value for request in requests for value in request))


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
    + content: its whole text (not a secret: ``--diff`` shows it; use upload_secret for those)
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
    log_diff(path, content)
    staged = f"{path.rsplit('/', 1)[0]}/.{path.rsplit('/', 1)[1]}.new"
    yield FileUploadCommand(StringIO(content), staged)
    yield script_command('chown root:root "$1" && chmod "$2" "$1" && mv -f "$1" "$3"', staged, mode, path)


@operation()
def private_directory(path: str, mode: str = "700", group: str = "root"):
    """
    A root-owned directory created with its final mode: never a 0755 instant, as
    ``files.directory`` has between its mkdir and chmod.

    + path: the directory (its parents, if missing, are made as usual)
    + mode: octal mode, at most as open as 0750
    + group: its group

    **Example:**

    .. code:: python

        private_directory(name="Endpoint base directory (root only)", path="/etc/bars-receiver")
    """
    meta = host.get_fact(Directory, path=path)
    if meta and meta["mode"] == int(mode) and meta["user"] == "root" and meta["group"] == group:
        host.noop(f"{path} is already root:{group} {mode}")
        return
    yield script_command(
        'umask 077; [ -d "$1" ] || { mkdir -p "${1%/*}" && mkdir -m 700 "$1"; }; chown root:"$2" "$1"; chmod "$3" "$1"',
        path, group, mode,
    )


@operation()
def reconciled_endpoints(base_dir: str, app_dir: str, repairs: dict[str, list[str]]):
    """
    Finish or roll back what an interrupted run left on the host, before anything else runs.

    + base_dir: the endpoints' directories
    + app_dir: their hand-off directories (staged secrets there are removed)
    + repairs: endpoint -> reasons, from the ``EndpointFiles`` and ``CertificateFiles`` facts;
      empty: nothing to do (files/scripts/reconcile.sh says what each repair does)

    **Example:**

    .. code:: python

        reconciled_endpoints(name="Reconcile endpoint directories", base_dir=..., app_dir=..., repairs={})
    """
    if not any(repairs.values()):
        host.noop(f"{base_dir}: no interrupted run to finish")
        return
    yield run_script("reconcile", base_dir, app_dir)
