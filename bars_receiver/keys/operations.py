"""Custom pyinfra operations for endpoint keys and CSRs.

They take the endpoint's ``EndpointState`` (read once per host by the batched ``EndpointFiles``
fact) instead of reading facts themselves, so a run's round trips do not grow with endpoints.
"""

from __future__ import annotations

from pydantic import SecretStr
from pyinfra import host
from pyinfra.api import OperationError, operation

from bars_receiver.certificates.x509 import csr_problem
from bars_receiver.host_files import upload_secret
from bars_receiver.keys.facts import KEY, KEY_PASSPHRASE, LIVE, PUBLIC_KEY_CACHE, EndpointState
from bars_receiver.shell import script_command
from bars_receiver.shipping import host_script, shipped

STAGED_PASSPHRASE = ".staging/gen/key.pass"  # inside the root-only staging prepare.sh clears first


@operation()
def private_key(
    directory: str,
    role: str = LIVE,
    key: str = "absent",
    loose_dirs: list[str] | None = None,
    loose_files: list[str] | None = None,
    key_size: int = 2048,
    passphrase: SecretStr | None = None,
):
    """
    Make an endpoint's RSA private key on the host, once; never replace an existing one.

    + directory: the endpoint's root-only directory (created 0700 if missing)
    + role: ``live`` (the endpoint's first key) or ``next`` (a renewal's): the pointer that names
      the key's generation, archive/<N>/ (see files/scripts/make_key.sh)
    + key: what the host holds for ``role``: ``absent`` (a key is made), ``present`` (never
      touched), or ``unreadable`` (openssl cannot open it with key.pass: the operation fails,
      naming it, and leaves it as it is)
    + loose_dirs: directories of the endpoint no longer root:root 0700 (made so)
    + loose_files: its key and passphrase files no longer root:root 0600 (made so)
    + key_size: RSA bits for a new key
    + passphrase: encrypt a new key with AES-256; kept root-only beside it as key.pass (uploaded
      as a file, never an argument)

    ``key_arguments`` reads ``key``, ``loose_dirs`` and ``loose_files`` from the ``EndpointFiles``
    fact.

    **Example:**

    .. code:: python

        private_key(
            name="Private key for BaRS-INT-RX809.Acme.thirdparty.nhs.uk",
            directory="/etc/bars-receiver/BaRS-INT-RX809.Acme.thirdparty.nhs.uk",
            role="live",
            key="present",
            loose_files=["/etc/bars-receiver/BaRS-INT-RX809.Acme.thirdparty.nhs.uk/live/key.pem"],
        )
    """
    if key not in ("absent", "present", "unreadable"):
        raise OperationError(f"private_key: key must be absent, present or unreadable, not {key!r}")
    for path in loose_dirs or ():
        yield script_command('chown root:root "$1" && chmod 0700 "$1"', path)
    if key == "unreadable":
        raise OperationError(
            f"{directory}/{role}/{KEY} exists but openssl cannot read it with {KEY_PASSPHRASE}; it is left as "
            "it is. Restore the passphrase file, or archive the key by hand if it is truly lost"
        )
    if key == "present":
        for path in loose_files or ():
            yield script_command('chown root:root "$1" && chmod 0600 "$1"', path)
        if not loose_files and not loose_dirs:
            host.noop(f"private key {directory}/{role}/{KEY} already exists")
        return

    yield from host_script("prepare", directory)
    if passphrase is not None:
        yield from upload_secret(f"{directory}/{STAGED_PASSPHRASE}", passphrase.get_secret_value())
    yield from host_script("make_key", directory, role, key_size, "encrypted" if passphrase is not None else "plain")


def key_arguments(directory: str, role: str, state: EndpointState | None) -> dict:
    """``private_key``'s ``key``, ``loose_dirs`` and ``loose_files`` from the ``EndpointState`` of
    the generation ``role`` names (None: nothing there yet)."""
    if state is None or state.key is None:
        loose_dirs = [directory] if role == LIVE and state is not None and state.dir is not None \
            and not state.dir.root_only else []
        return {"key": "absent", "loose_dirs": loose_dirs, "loose_files": []}
    loose_dirs = []
    if state.dir is not None and not state.dir.root_only:
        loose_dirs.append(directory if role == LIVE else f"{directory}/{role}/")
    loose_files = [
        f"{directory}/{role}/{name}"
        for meta, name in ((state.key, KEY), (state.key_pass, KEY_PASSPHRASE))
        if meta is not None and (meta.mode != "600" or not meta.root_only)
    ]
    return {"key": "unreadable" if state.key_unreadable else "present", "loose_dirs": loose_dirs,
            "loose_files": loose_files}


def key_needs_care(state: EndpointState) -> bool:
    """Whether ``private_key`` has anything to do for an existing key: an unreadable key (it fails,
    naming it), or a directory, key or passphrase file that is no longer root-only 0700/0600. An
    unchanged run declares no operation per key."""
    if state.key_unreadable or (state.dir is not None and not state.dir.root_only):
        return True
    return any(meta is not None and (meta.mode != "600" or not meta.root_only) for meta in (state.key, state.key_pass))


BATCH_NAMES_SHOWN = 8  # beyond this an operation's name would fill screens; the status table lists each


def batch_name(what: str, fqdns: list[str], plural: str | None = None) -> str:
    """An operation name that says which endpoints a batched operation is for:
    ``Private key for A`` for one, ``Private keys for 3 endpoints: A, B, C`` for several (``plural``
    when adding an "s" will not do), and the first few then ``and N more`` for many (the run's
    status table names every endpoint)."""
    if len(fqdns) == 1:
        return f"{what} for {fqdns[0]}"
    shown = ", ".join(fqdns[:BATCH_NAMES_SHOWN])
    rest = len(fqdns) - BATCH_NAMES_SHOWN
    return f"{plural or what + 's'} for {len(fqdns)} endpoints: {shown}" + (f" and {rest} more" if rest > 0 else "")


@operation()
def private_keys(
    requests: list[tuple[str, str]],
    key_size: int = 2048,
    passphrase: SecretStr | None = None,
    role: str = LIVE,
):
    """
    Make the private keys that are missing on a host, each with its CSR, all in one command that
    uses every core (files/scripts/make_keys.sh: make_key.sh per directory under
    ``xargs -P "$(nproc)"``), so a first run's round trips do not grow with endpoints. Each key is
    0600 from birth in its own staged generation, with its CSR (subject CN=fqdn only) beside it,
    and never replaces an existing one. Each new key's public half goes into the public-key cache,
    so reading the host back for the request packs runs no openssl per key.

    + requests: (directory, fqdn) of each endpoint whose ``role`` names no key (the directory is
      created 0700 if missing)
    + key_size: RSA bits
    + passphrase: encrypt the keys with AES-256; kept root-only beside each as key.pass (uploaded
      once, copied on the host; never an argument)
    + role: ``live`` (first keys) or ``next`` (renewal keys)

    **Example:**

    .. code:: python

        private_keys(name="Private keys and CSRs for 2 endpoints: ...", requests=[(directory, fqdn), ...])
    """
    if not requests:
        host.noop("no private key to make")
        return
    first = requests[0][0]
    yield from host_script("prepare", first)
    if passphrase is not None:
        yield from upload_secret(f"{first}/{STAGED_PASSPHRASE}", passphrase.get_secret_value())
    make_key = yield from shipped("make_key")
    yield from host_script("make_keys", make_key, role, key_size, "encrypted" if passphrase is not None else "plain",
                           PUBLIC_KEY_CACHE, *(value for request in requests for value in request))


@operation()
def certificate_requests(requests: list[tuple[str, str]], role: str = LIVE):
    """
    Make several endpoints' CSRs (subject CN=fqdn only) for keys they already have, in one command
    on every core (files/scripts/make_csrs.sh: make_csr.sh per endpoint); a new key's CSR is made
    with it (``private_keys``).

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
    make_csr = yield from shipped("make_csr")
    yield from host_script("make_csrs", make_csr, role, PUBLIC_KEY_CACHE,
                           *(value for request in requests for value in request))


def csr_reason(fqdn: str, state: EndpointState | None) -> str | None:
    """Why the CSR must be (re)made, or None when the one on the host is right."""
    if state is None or state.key_public_pem is None:
        return "the key is new"
    if state.csr_pem is None:
        return "no CSR yet"
    return csr_problem(state.csr_pem, fqdn, state.key_public_pem)


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
    yield from host_script("reconcile", base_dir, app_dir)
