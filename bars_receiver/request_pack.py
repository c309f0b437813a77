"""Request packs on the controller: the CSR and the exact text to send to NHS England.

Ops commit them under requests/<inventory>/; they are the audit trail of what was asked for,
so their content is stable from run to run (no timestamps).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .settings import HostSettings, ResolvedEndpoint
from .templates import render
from .x509 import csr_problem, fingerprint, key_bits, public_key_der


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
        csr_file=pack_names(endpoint.fqdn, renewal)[0],
        cert_file=f"files/certs/{receiver.inventory}/{endpoint.fqdn}.cer",
    )


def write_request_pack(
    receiver: HostSettings, endpoint: ResolvedEndpoint, host_name: str, csr_pem: str, public_key_pem: str,
    renewal: bool = False,
) -> list[Path]:
    """Check the host's CSR with cryptography, then write ``<fqdn>.csr`` and ``<fqdn>.md``
    (``<fqdn>.next.csr`` and ``.next.md`` for a renewal's next key).

    Returns the files that changed.
    """
    problem = csr_problem(csr_pem, endpoint.fqdn, public_key_pem)
    if problem:
        raise RequestPackError(f"{endpoint.fqdn} on {host_name}: {problem}; the request pack was not written")
    directory = Path(receiver.requests_dir)
    csr_name, note_name = pack_names(endpoint.fqdn, renewal)
    files = {
        directory / csr_name: csr_pem,
        directory / note_name: render_note(receiver, endpoint, host_name, public_key_pem, renewal),
    }
    return [path for path, text in files.items() if write_atomically(path, text)]


def remove_renewal_pack(receiver: HostSettings, endpoint: ResolvedEndpoint) -> list[Path]:
    """Remove ``<fqdn>.next.csr`` and ``.next.md`` once the renewed key is live (its CSR is now the
    live pack's); git keeps them. Returns the files removed."""
    removed = []
    for name in pack_names(endpoint.fqdn, renewal=True):
        path = Path(receiver.requests_dir) / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
