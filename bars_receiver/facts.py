"""Custom pyinfra facts that read a host's endpoint state in one round trip.

pyinfra caches no facts, so one fact per file per endpoint would cost a round trip each; these
facts read every endpoint directory in a single command whose count does not grow with endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyinfra.api import FactBase, StringCommand

from .shell import script_command

KEY = "key.pem"
KEY_PASSPHRASE = "key.pass"
CSR = "csr.pem"

NEXT = "next"  # the staged next key and CSR of an endpoint inside its renewal window

# Prints one block per endpoint directory. Markers start with "@@" and never occur in PEM text.
# An encrypted key with no passphrase file fails with "-passin pass:" rather than prompting.
# The same markers, prefixed "next_", describe the staged next/ directory, so the next key costs
# no extra round trip.
_SCRIPT = """
base=$1
describe() {
  p=$1 dir=$2
  stat -c "@@${p}dir %a %u %g" "$dir"
  if [ -f "$dir/key.pem" ]; then
    stat -c "@@${p}key %a %u %g" "$dir/key.pem"
    if [ -f "$dir/key.pass" ]; then passin="file:$dir/key.pass"; else passin="pass:"; fi
    echo "@@${p}key_public"
    openssl pkey -in "$dir/key.pem" -passin "$passin" -pubout 2>/dev/null || echo "@@${p}key_unreadable"
  fi
  if [ -f "$dir/key.pass" ]; then stat -c "@@${p}key_pass %a %u %g" "$dir/key.pass"; fi
  if [ -f "$dir/csr.pem" ]; then echo "@@${p}csr"; cat "$dir/csr.pem"; fi
}
[ -d "$base" ] || exit 0
for dir in "$base"/*/; do
  [ -d "$dir" ] || continue
  dir=${dir%/}
  echo "@@endpoint ${dir##*/}"
  describe "" "$dir"
  if [ -d "$dir/next" ]; then describe next_ "$dir/next"; fi
done
exit 0
"""


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
    _blocks: dict[str, list[str]] = field(default_factory=dict, repr=False)


def _meta(words: list[str]) -> FileMeta:
    return FileMeta(mode=words[0], uid=int(words[1]), gid=int(words[2]))


class EndpointFiles(FactBase):
    """
    Returns the state of every endpoint directory under ``base_dir``, keyed by directory name.

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

    def command(self, base_dir: str) -> StringCommand:
        return script_command(_SCRIPT, base_dir, name="endpoint-files")

    def process(self, output: list[str]) -> dict[str, EndpointState]:
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
