"""Custom pyinfra facts that read a host's endpoint state in one round trip.

pyinfra caches no facts, so one fact per file per endpoint would cost a round trip each; these
facts read every endpoint directory in a single command whose count does not grow with endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyinfra.api import FactBase, StringCommand

from bars_receiver.fact_cache import cached_fact, unframed

KEY = "key.pem"
KEY_PASSPHRASE = "key.pass"
CSR = "csr.pem"

LIVE = "live"  # symlink to the generation nginx and the PKCS#12 use (archive/<N>)
NEXT = "next"  # symlink to the generation of the next key, staged inside the renewal window
ARCHIVE = "archive"  # every generation: key, passphrase file, CSR and, once issued, certificates
# Root-only: each key's public half, by the key file's identity (files/scripts/endpoint_files.sh),
# so an unchanged run runs no openssl. Outside /etc: a cache, not state (--dry may fill it).
PUBLIC_KEY_CACHE = "/var/cache/bars-receiver/public-keys"

@dataclass(frozen=True)
class FileMeta:
    mode: str
    uid: int
    gid: int

    @property
    def root_only(self) -> bool:
        return self.uid == 0 and self.gid == 0 and int(self.mode, 8) & 0o077 == 0


@dataclass
class EndpointState:
    """What one endpoint directory holds. PEM fields are None when the file is absent."""

    dir: FileMeta | None = None
    key: FileMeta | None = None
    key_public_pem: str | None = None
    key_unreadable: bool = False
    key_pass: FileMeta | None = None
    csr_pem: str | None = None
    next: EndpointState | None = None  # next/: the key and CSR staged for renewal, when present
    repairs: list[str] = field(default_factory=list)  # why reconcile.sh must run first (none: it need not)
    _blocks: dict[str, list[str]] = field(default_factory=dict, repr=False)


def _meta(words: list[str]) -> FileMeta:
    return FileMeta(mode=words[0], uid=int(words[1]), gid=int(words[2]))


class EndpointFiles(FactBase):
    """
    Returns the state of every endpoint directory under ``base_dir``, keyed by directory name:
    the key and CSR that ``live`` names (or will, once files/scripts/reconcile.sh has finished
    what an interrupted run left) and, as ``next``, the renewal key's generation.

    .. code:: python

        {
            "BaRS-INT-RX809.Acme.thirdparty.nhs.uk": EndpointState(
                dir=FileMeta("700", 0, 0), key=FileMeta("600", 0, 0),
                key_public_pem="-----BEGIN PUBLIC KEY-----...", csr_pem="-----BEGIN ...",
                next=EndpointState(dir=FileMeta("700", 0, 0), key=..., key_public_pem=..., csr_pem=...),
            ),
        }
    """

    # Missing base_dir is a normal first-run state, not an error.
    default = dict

    def command(self, base_dir: str, cache_dir: str = "", cache_write: bool = True) -> StringCommand:
        # cache_write=False (a --dry run) reads the cache but never fills it.
        return cached_fact("endpoint_files", (base_dir,), base_dir, cache_dir, "yes" if cache_write else "no",
                           cache_write=cache_write)

    def process(self, output: list[str]) -> dict[str, EndpointState]:
        output = unframed(output)
        states: dict[str, EndpointState] = {}
        current: EndpointState | None = None
        block: list[str] | None = None
        for line in output:
            if not line.startswith("@@"):
                if block is not None:
                    block.append(line)
                continue
            marker, _, rest = line[2:].partition(" ")
            block = None
            if marker == "endpoint":
                current = states.setdefault(rest, EndpointState())
                continue
            if current is None:
                continue
            if marker == "repair":
                current.repairs.append(rest)
                continue
            target = current
            if marker.startswith("next_"):
                marker = marker.removeprefix("next_")
                if current.next is None:
                    current.next = EndpointState()
                target = current.next
            if marker in ("dir", "key", "key_pass"):
                setattr(target, marker, _meta(rest.split()))
            elif marker == "key_unreadable":
                target.key_unreadable = True
                target._blocks.pop("key_public", None)
            elif marker in ("key_public", "csr"):
                block = target._blocks.setdefault(marker, [])
        for state in states.values():
            for part in (state, state.next):
                if part is not None:
                    _finish(part)
        return states


def _finish(state: EndpointState) -> None:
    if "key_public" in state._blocks:
        state.key_public_pem = "\n".join(state._blocks["key_public"]) + "\n"
    if "csr" in state._blocks:
        state.csr_pem = "\n".join(state._blocks["csr"]) + "\n"
    state._blocks.clear()
