"""Request packs on the controller: the CSR and the exact text to send to NHS England.

Ops commit them under requests/<inventory>/; they are the audit trail of what was asked for,
so their content is stable from run to run (no timestamps). They are written by the operation
below (one per host) when pyinfra executes it, never while it collects operations, so ``--dry``
lists them as changes and writes nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FunctionCommand, operation

from bars_receiver import templates
from bars_receiver.certificates import x509
from bars_receiver.certificates.x509 import csr_problem, fingerprint, key_bits, public_key_der, sha256_hex
from bars_receiver.inventory.settings import HostSettings, ResolvedEndpoint, file_stem
from bars_receiver.keys.facts import PUBLIC_KEY_CACHE, EndpointFiles, EndpointState
from bars_receiver.keys.operations import batch_name
from bars_receiver.render_cache import digest, record, rendered_sha256
from bars_receiver.templates import render


class RequestPackError(Exception):
    """The CSR the host returned is not one we may send."""


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


def note_fields(receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, renewal: bool = False) -> dict:
    """Every value the request note is rendered from except the key's own (size, fingerprint), as
    plain strings, numbers and lists: what the ``request_packs`` operation takes."""
    settings = receiver.settings
    key_dir = receiver.endpoint_dir(endpoint.fqdn) + ("/next" if renewal else "")
    return {
        "endpoint": {"fqdn": endpoint.fqdn, "ods": endpoint.ods, "organisation": endpoint.organisation,
                     "hosting": endpoint.hosting, "pack_name": endpoint.pack_name},
        "settings": {"bars_team_email": settings.bars_team_email,
                     "certificate_request_email": settings.certificate_request_email,
                     "listen_port": settings.listen_port,
                     "proxy_addresses": [str(network) for network in settings.proxy_addresses]},
        "host_name": host_name,
        "inventory": receiver.inventory,
        "key_path": f"{key_dir}/key.pem",
        "renewal": renewal,
        "receiver_url": endpoint.receiver_url(settings.listen_port),
        "csr_file": pack_names(file_stem(endpoint), renewal)[0],
        "cert_file": f"files/certs/{receiver.inventory}/{file_stem(endpoint)}.cer",
    }


def note_template(receiver: HostSettings) -> str:
    return f"request-{receiver.settings.request_route}.md.j2"


def render_note(project_dir: str, template: str, note: dict, public_key_pem: str) -> str:
    return render(project_dir, template, **note, key_size=key_bits(public_key_pem),
                  public_key_fingerprint=fingerprint(public_key_der(public_key_pem)))


def pack_files(project_dir: str, requests_dir: str, template: str, pack: dict, csr_pem: str,
               public_key_pem: str) -> dict[Path, str]:
    """The pack's files and their text, once the host's CSR has passed the check with cryptography."""
    fqdn = pack["note"]["endpoint"]["fqdn"]
    problem = csr_problem(csr_pem, fqdn, public_key_pem)
    if problem:
        raise RequestPackError(f"{fqdn} on {pack['note']['host_name']}: {problem}; the request pack was not written")
    csr_name, note_name = pack_names(pack["stem"], pack["renewal"])
    return {
        Path(requests_dir) / csr_name: csr_pem,
        Path(requests_dir) / note_name: render_note(project_dir, template, pack["note"], public_key_pem),
    }


def pack_plan(receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, action: str = "write",
              state: EndpointState | None = None, renewal: bool = False) -> dict:
    """One entry of ``request_packs``' ``packs``, in plain values. With a ``state`` whose CSR is
    fit to send, its CSR and public key; otherwise None, and the operation reads them back from
    the host after this run's keys and CSRs."""
    known = state is not None and state.csr_pem is not None and state.key_public_pem is not None \
        and csr_problem(state.csr_pem, endpoint.fqdn, state.key_public_pem) is None
    return {"action": action, "stem": file_stem(endpoint), "renewal": renewal,
            "csr_pem": state.csr_pem if known else None, "public_key_pem": state.key_public_pem if known else None,
            "note": note_fields(receiver, endpoint, host_name, renewal)}


PACK_KINDS = (  # (name, suffix, test) for each kind of pack work, as the operation's name says it
    ("Request pack", "", lambda pack: pack["action"] == "write" and not pack["renewal"]),
    ("Renewal request pack", " (next key)", lambda pack: pack["action"] == "write" and pack["renewal"]),
    ("Request pack", ": the renewed key's CSR is now the live one", lambda pack: pack["action"] == "promote"),
    ("No stale renewal request pack", "", lambda pack: pack["action"] == "remove_next"),
)


def packs_name(packs: list[tuple[str, dict]]) -> str:
    """The ``request_packs`` operation's name for (fqdn, pack) pairs, by kind, so --dry's list says
    what will happen to which pack: ``Request pack for A; Renewal request pack for B (next key)``."""
    names = []
    for what, suffix, kind in PACK_KINDS:
        fqdns = [fqdn for fqdn, pack in packs if kind(pack)]
        if fqdns:
            names.append(batch_name(what, fqdns) + suffix)
    return "; ".join(names)


def write_request_pack(
    receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, csr_pem: str, public_key_pem: str,
    renewal: bool = False,
) -> list[Path]:
    """Check the host's CSR with cryptography, then write ``<fqdn>.csr`` and ``<fqdn>.md``
    (``<fqdn>.next.csr`` and ``.next.md`` for a renewal's next key).

    Returns the files that changed.
    """
    pack = pack_plan(receiver, endpoint, host_name, renewal=renewal)
    files = pack_files(receiver.project_dir, receiver.requests_dir, note_template(receiver), pack, csr_pem,
                       public_key_pem)
    return [path for path, text in files.items() if write_atomically(path, text)]


def remove_renewal_pack(requests_dir: str, stem: str) -> list[Path]:
    """Remove ``<stem>.next.csr`` and ``.next.md`` (git keeps them). Returns the files removed."""
    removed = []
    for name in pack_names(stem, renewal=True):
        path = Path(requests_dir) / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def _unchanged(files: dict[Path, str]) -> bool:
    return all(path.exists() and path.read_text(encoding="utf-8") == text for path, text in files.items())


def note_key(project_dir: str, template: str, pack: dict, csr_pem: str, public_key_pem: str) -> str:
    """The digest of everything a pack follows from (bars_receiver/render_cache.py)."""
    return digest(project_dir, template, (sys.modules[__name__], templates, x509),
                  json.dumps(pack["note"], sort_keys=True), pack["stem"], csr_pem, public_key_pem)


def pack_current(receiver: HostSettings, endpoint: ResolvedEndpoint, state: EndpointState | None,
                 renewal: bool = False) -> bool:
    """The pack already matches the host's CSR: tasks/request_packs.py then leaves it out, so an
    unchanged run does no per-endpoint work for packs. When an earlier run recorded what these
    exact inputs render to (after checking the CSR), the files on disk are compared with that,
    without checking or rendering again."""
    if state is None or state.csr_pem is None or state.key_public_pem is None:
        return False
    pack = pack_plan(receiver, endpoint, host.name, renewal=renewal)
    template = note_template(receiver)
    key = note_key(receiver.project_dir, template, pack, state.csr_pem, state.key_public_pem)
    known = rendered_sha256(receiver.project_dir, key)
    directory = Path(receiver.requests_dir)
    csr_name, note_name = pack_names(pack["stem"], renewal)
    if known is not None:
        try:
            if (directory / csr_name).read_text(encoding="utf-8") == state.csr_pem \
                    and sha256_hex((directory / note_name).read_bytes()) == known:
                return True
        except OSError:
            return False
    if csr_problem(state.csr_pem, endpoint.fqdn, state.key_public_pem) is not None:
        return False
    files = pack_files(receiver.project_dir, receiver.requests_dir, template, pack, state.csr_pem, state.key_public_pem)
    current = _unchanged(files)
    if current:
        record(receiver.project_dir, key, sha256_hex(files[directory / note_name].encode("utf-8")))
    return current


def renewal_pack_present(receiver: HostSettings, endpoint: ResolvedEndpoint) -> bool:
    """``<fqdn>.next.csr`` or ``.next.md`` exists on the controller."""
    return any((Path(receiver.requests_dir) / name).exists() for name in pack_names(file_stem(endpoint), renewal=True))


def _apply(project_dir: str, requests_dir: str, template: str, base_dir: str, packs: list[dict]) -> None:
    """At execution time, every pack of the host in turn. CSRs this run made are read back from the
    host in one read for all of them (a read per pack made a first run quadratic in endpoints). A
    CSR that cannot be sent is reported after the others are written."""
    states: dict[str, EndpointState] | None = None
    problems = []
    for pack in packs:
        fqdn, stem = pack["note"]["endpoint"]["fqdn"], pack["stem"]
        if pack["action"] == "remove_next":
            _log(project_dir, "stale renewal request pack removed (the host has no next key)",
                 remove_renewal_pack(requests_dir, stem))
            continue
        csr_pem, public_key_pem = pack["csr_pem"], pack["public_key_pem"]
        if csr_pem is None:
            if states is None:
                states = host.get_fact(EndpointFiles, base_dir=base_dir, cache_dir=PUBLIC_KEY_CACHE)
            fresh = states.get(fqdn)
            part = (fresh.next if pack["renewal"] else fresh) if fresh is not None else None
            if part is None or part.csr_pem is None or part.key_public_pem is None:
                problems.append(f"{fqdn} on {host.name}: the host holds no CSR for it; the request pack was not written")
                continue
            csr_pem, public_key_pem = part.csr_pem, part.key_public_pem
        try:
            files = pack_files(project_dir, requests_dir, template, pack, csr_pem, public_key_pem)
            _log(project_dir, "request pack written",
                 [path for path, text in files.items() if write_atomically(path, text)])
            if pack["action"] == "promote":
                _log(project_dir, "renewal request pack removed (now live)", remove_renewal_pack(requests_dir, stem))
        except RequestPackError as error:
            problems.append(str(error))
        except (OSError, ValueError) as error:  # an unreadable key or a file that cannot be written
            problems.append(f"{fqdn} on {host.name}: {error}; the request pack was not written")
    if problems:
        raise RequestPackError("; ".join(problems))


def _log(project_dir: str, what: str, paths: list[Path]) -> None:
    for path in paths:
        logger.info(f"{host.print_prefix}{what}: {path.relative_to(project_dir)}")


@operation()
def request_packs(project_dir: str, requests_dir: str, template: str, base_dir: str, packs: list[dict]):
    """
    Make a host's request packs, ``requests/<inventory>/<fqdn>.csr`` and ``.md`` (``.next.*`` for a
    renewal's next key), match the CSRs on the host, in one operation per host. Written on the
    controller when the operation executes, never while collecting, so ``--dry`` lists them and
    writes nothing. Each file written is logged by name.

    + project_dir: the controller's project (its files/templates/)
    + requests_dir: where the packs go, ``<project_dir>/requests/<inventory>``
    + template: the note's template, ``request-itoc.md.j2`` or ``request-dir.md.j2``
    + base_dir: the endpoints' directories on the host, read back once for CSRs this run makes
    + packs: one dict per pack: ``action`` (``write``; ``promote``: write the live pack after a
      renewal's key swap and remove the ``.next`` pack; ``remove_next``: remove a ``.next`` pack the
      host has no key for), ``stem`` (the file name without suffix), ``renewal``, ``csr_pem`` and
      ``public_key_pem`` (None: read back from the host), ``note`` (``note_fields``)

    **Example:**

    .. code:: python

        request_packs(name="Request pack for BaRS-INT-RX809...", project_dir=".", requests_dir="requests/int",
                      template="request-itoc.md.j2", base_dir="/etc/bars-receiver", packs=[...])
    """
    pending = []
    for pack in packs:
        if pack["action"] == "write" and pack["csr_pem"] is not None:
            files = pack_files(project_dir, requests_dir, template, pack, pack["csr_pem"], pack["public_key_pem"])
            if _unchanged(files):
                continue
        elif pack["action"] == "remove_next" \
                and not any((Path(requests_dir) / name).exists() for name in pack_names(pack["stem"], renewal=True)):
            continue
        pending.append(pack)
    if not pending:
        host.noop("the request packs already match the host")
        return
    yield FunctionCommand(_apply, (project_dir, requests_dir, template, base_dir, pending), {})
