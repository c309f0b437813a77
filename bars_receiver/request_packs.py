"""Request packs on the controller: the CSR and the exact text to send to NHS England.

Ops commit them under requests/<inventory>/; they are the audit trail of what was asked for,
so their content is stable from run to run (no timestamps). They are written by the operations
below when pyinfra executes them, never while it collects operations, so ``--dry`` lists them as
changes and writes nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, operation

from bars_receiver import templates
from bars_receiver.certificates import x509
from bars_receiver.certificates.x509 import csr_problem, fingerprint, key_bits, public_key_der, sha256_hex
from bars_receiver.inventory import settings as settings_module
from bars_receiver.inventory.settings import HostSettings, ResolvedEndpoint, file_stem
from bars_receiver.keys.facts import PUBLIC_KEY_CACHE, EndpointFiles, EndpointState
from bars_receiver.render_cache import digest, record, rendered_sha256
from bars_receiver.templates import render


class RequestPackError(Exception):
    """The CSR the host returned is not one we may send."""


class HostReadback:
    """The host's endpoint files as this run left them, read once per host for every pack.

    Every request pack executes after this run's keys, CSRs and certificate swaps on its host
    (tasks/keys.py and tasks/certificates.py come first), so one read serves them all: a read per
    new CSR would re-read every endpoint directory each time, a first run quadratic in endpoints.
    tasks/request_packs.py makes one per host and hands it to each operation.
    """

    def __init__(self, base_dir: str):
        self.base_dir = base_dir
        self._states: dict[str, EndpointState] | None = None
        self.reads = 0

    def state(self, fqdn: str) -> EndpointState:
        if self._states is None:
            self._states = host.get_fact(EndpointFiles, base_dir=self.base_dir, cache_dir=PUBLIC_KEY_CACHE)
            self.reads += 1
        return self._states[fqdn]


def write_atomically(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds it; True if the file changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return True


def pack_names(fqdn: str, renewal: bool = False) -> tuple[str, str]:
    """The pack's CSR and note file names: ``<fqdn>.csr``/``.md``, or ``<fqdn>.next.csr``/``.next.md``
    for a renewal (the key staged in next/), so the live pack always matches the live key."""
    stem = f"{fqdn}.next" if renewal else fqdn
    return f"{stem}.csr", f"{stem}.md"


def render_note(
    receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, public_key_pem: str, renewal: bool = False
) -> str:
    settings = receiver.settings
    key_dir = receiver.endpoint_dir(endpoint.fqdn) + ("/next" if renewal else "")
    return render(
        receiver.project_dir,
        f"request-{settings.request_route}.md.j2",
        endpoint=endpoint,
        host_name=host_name,
        inventory=receiver.inventory,
        key_path=f"{key_dir}/key.pem",
        renewal=renewal,
        key_size=key_bits(public_key_pem),
        receiver_url=endpoint.receiver_url(settings.listen_port),
        public_key_fingerprint=fingerprint(public_key_der(public_key_pem)),
        settings=settings,
        csr_file=pack_names(file_stem(endpoint), renewal)[0],
        cert_file=f"files/certs/{receiver.inventory}/{file_stem(endpoint)}.cer",
    )


def pack_files(
    receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, csr_pem: str, public_key_pem: str,
    renewal: bool = False,
) -> dict[Path, str]:
    """The pack's files and their text, once the host's CSR has passed the check with cryptography."""
    problem = csr_problem(csr_pem, endpoint.fqdn, public_key_pem)
    if problem:
        raise RequestPackError(f"{endpoint.fqdn} on {host_name}: {problem}; the request pack was not written")
    directory = Path(receiver.requests_dir)
    csr_name, note_name = pack_names(file_stem(endpoint), renewal)
    return {
        directory / csr_name: csr_pem,
        directory / note_name: render_note(receiver, endpoint, host_name, public_key_pem, renewal),
    }


def write_request_pack(
    receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, csr_pem: str, public_key_pem: str,
    renewal: bool = False,
) -> list[Path]:
    """Check the host's CSR with cryptography, then write ``<fqdn>.csr`` and ``<fqdn>.md``
    (``<fqdn>.next.csr`` and ``.next.md`` for a renewal's next key).

    Returns the files that changed.
    """
    files = pack_files(receiver, endpoint, host_name, csr_pem, public_key_pem, renewal)
    return [path for path, text in files.items() if write_atomically(path, text)]


def remove_renewal_pack(receiver: HostSettings, endpoint: ResolvedEndpoint) -> list[Path]:
    """Remove ``<fqdn>.next.csr`` and ``.next.md`` once the renewed key is live (its CSR is now the
    live pack's); git keeps them. Returns the files removed."""
    removed = []
    for name in pack_names(file_stem(endpoint), renewal=True):
        path = Path(receiver.requests_dir) / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def _unchanged(files: dict[Path, str]) -> bool:
    return all(path.exists() and path.read_text(encoding="utf-8") == text for path, text in files.items())


def _log(receiver: HostSettings, what: str, paths: list[Path]) -> None:
    for path in paths:
        logger.info(f"{host.print_prefix}{what}: {path.relative_to(receiver.project_dir)}")


def _write_from_host(receiver: HostSettings, endpoint: ResolvedEndpoint, renewal: bool, readback: HostReadback) -> None:
    """At execution time: the CSR this run made, as the host's one read-back holds it, into the pack."""
    fresh = readback.state(endpoint.fqdn)
    part = fresh.next if renewal else fresh
    _log(receiver, "request pack written",
         write_request_pack(receiver, endpoint, host.name, part.csr_pem, part.key_public_pem, renewal))


def _write_known(receiver: HostSettings, files: dict[Path, str]) -> None:
    _log(receiver, "request pack written", [path for path, text in files.items() if write_atomically(path, text)])


def _promote(receiver: HostSettings, endpoint: ResolvedEndpoint, readback: HostReadback) -> None:
    _write_from_host(receiver, endpoint, False, readback)
    _log(receiver, "renewal request pack removed (now live)", remove_renewal_pack(receiver, endpoint))


def _remove_stale(receiver: HostSettings, endpoint: ResolvedEndpoint) -> None:
    _log(receiver, "stale renewal request pack removed (the host has no next key)",
         remove_renewal_pack(receiver, endpoint))


def note_key(receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, csr_pem: str, public_key_pem: str,
             renewal: bool) -> str:
    """The digest of everything a pack follows from (bars_receiver/render_cache.py)."""
    return digest(receiver.project_dir, f"request-{receiver.settings.request_route}.md.j2",
                  (sys.modules[__name__], templates, x509, settings_module),
                  receiver.inventory, receiver.settings.model_dump_json(), endpoint, host_name, csr_pem,
                  public_key_pem, renewal)


def pack_current(receiver: HostSettings, endpoint: ResolvedEndpoint, state: EndpointState | None,
                 renewal: bool = False) -> bool:
    """The pack already matches the host's CSR: tasks/request_packs.py then declares no operation
    for it, so an unchanged run does no per-endpoint pyinfra bookkeeping for packs. When an earlier
    run recorded what these exact inputs render to (after checking the CSR), the files on disk are
    compared with that, without checking or rendering again."""
    if state is None or state.csr_pem is None or state.key_public_pem is None:
        return False
    key = note_key(receiver, endpoint, host.name, state.csr_pem, state.key_public_pem, renewal)
    known = rendered_sha256(receiver.project_dir, key)
    directory = Path(receiver.requests_dir)
    csr_name, note_name = pack_names(file_stem(endpoint), renewal)
    if known is not None:
        try:
            if (directory / csr_name).read_text(encoding="utf-8") == state.csr_pem \
                    and sha256_hex((directory / note_name).read_bytes()) == known:
                return True
        except OSError:
            return False
    if csr_problem(state.csr_pem, endpoint.fqdn, state.key_public_pem) is not None:
        return False
    files = pack_files(receiver, endpoint, host.name, state.csr_pem, state.key_public_pem, renewal)
    current = _unchanged(files)
    if current:
        record(receiver.project_dir, key, sha256_hex(files[directory / note_name].encode("utf-8")))
    return current


def renewal_pack_present(receiver: HostSettings, endpoint: ResolvedEndpoint) -> bool:
    """``<fqdn>.next.csr`` or ``.next.md`` exists on the controller."""
    return any((Path(receiver.requests_dir) / name).exists() for name in pack_names(file_stem(endpoint), renewal=True))


@operation()
def request_pack(receiver: HostSettings, endpoint: ResolvedEndpoint, state: EndpointState | None,
                 renewal: bool = False, readback: HostReadback | None = None):
    """
    Make ``requests/<inventory>/<fqdn>.csr`` and ``.md`` (``.next.*`` with ``renewal``) match the
    host's CSR. Written on the controller when the operation executes, never while collecting.

    + receiver: the host's settings
    + endpoint: the endpoint
    + state: the host's live (or, with ``renewal``, next/) files from ``EndpointFiles``; None when
      this run makes the CSR, so the pack is read back from the host once it exists
    + renewal: the next key's pack
    + readback: the host's one read of its endpoint files after this run's changes, shared by
      every pack of the host (one is made here when none is given)

    **Example:**

    .. code:: python

        request_pack(name="Request pack for BaRS-INT-RX809...", receiver=r, endpoint=e, state=state)
    """
    if state is None or state.csr_pem is None or state.key_public_pem is None \
            or csr_problem(state.csr_pem, endpoint.fqdn, state.key_public_pem) is not None:
        readback = readback or HostReadback(receiver.settings.base_dir)
        yield FunctionCommand(_write_from_host, (receiver, endpoint, renewal, readback), {})
        return
    files = pack_files(receiver, endpoint, host.name, state.csr_pem, state.key_public_pem, renewal)
    if _unchanged(files):
        host.noop(f"request pack {pack_names(file_stem(endpoint), renewal)[0]} already matches the host")
        return
    yield FunctionCommand(_write_known, (receiver, files), {})


@operation(is_idempotent=False)
def promoted_request_pack(receiver: HostSettings, endpoint: ResolvedEndpoint, readback: HostReadback | None = None):
    """
    After a renewal's key swap in this run: the live pack from the host's new live CSR; the
    ``.next`` pack goes (git keeps it).

    + receiver: the host's settings
    + endpoint: the endpoint whose keys are swapped
    + readback: as for ``request_pack``
    """
    yield FunctionCommand(_promote, (receiver, endpoint, readback or HostReadback(receiver.settings.base_dir)), {})


@operation()
def no_renewal_pack(receiver: HostSettings, endpoint: ResolvedEndpoint):
    """
    Remove ``<fqdn>.next.csr`` and ``.next.md`` when the host holds no next key, e.g. a run that
    was interrupted after the host swapped keys but before the controller promoted the pack.

    + receiver: the host's settings
    + endpoint: the endpoint
    """
    stale = [Path(receiver.requests_dir) / name for name in pack_names(file_stem(endpoint), renewal=True)]
    if not any(path.exists() for path in stale):
        host.noop(f"no renewal request pack for {endpoint.fqdn}")
        return
    yield FunctionCommand(_remove_stale, (receiver, endpoint), {})
