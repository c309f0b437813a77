"""A batched pyinfra fact: installed certificates and PKCS#12 hand-off files of every endpoint.

One command reads every endpoint directory (and its hand-off directory under app_dir), so the
round trips of a run do not grow with the number of endpoints. It prints hashes and modes, never
a password: whether the password file still matches the one the PFX was built with is decided on
the host, and only the recorded salted hash of a CI-secret password is printed (for the controller
to compare its own secret with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyinfra.api import FactBase, StringCommand

from .facts import FileMeta
from .shell import script_command

CERT = "cert.pem"
CHAIN = "chain.pem"
CA = "ca.pem"
PFX_INPUTS = "pfx.inputs"
PFX = "receiver.pfx"
PFX_PASSWORD = "pfx.pass"
KESTREL_ENV = "kestrel.env"
INSTALLED_FILES = (CERT, CHAIN, CA)
HANDOFF_FILES = (PFX, PFX_PASSWORD, KESTREL_ENV)

# kestrel.env as the host writes it; shared by the fact (to check it) and the build script.
# The password is read by sed from the file and printed by the shell's builtin printf: never argv.
ENV_TEXT_FUNCTION = r"""
env_text() {
  printf 'Kestrel__Certificates__Default__Path=%s\n' "$1"
  printf 'Kestrel__Certificates__Default__Password="%s"\n' "$(sed -e 's/[\\"`$]/\\&/g' "$2")"
}
"""

_SCRIPT = ENV_TEXT_FUNCTION + r"""
base=$1 app=$2 source=$3 group=$4
if [ -n "$group" ]; then
  gid=$(getent group "$group" | cut -d: -f3)
  if [ -n "$gid" ]; then echo "@@group $gid"; else echo "@@group_missing"; fi
fi
[ -d "$base" ] || exit 0
for dir in "$base"/*/; do
  [ -d "$dir" ] || continue
  dir=${dir%/}
  name=${dir##*/}
  echo "@@endpoint $name"
  for f in cert.pem chain.pem ca.pem; do
    [ -f "$dir/$f" ] && echo "@@file $f $(sha256sum < "$dir/$f" | cut -c1-64) $(stat -c '%a %u %g' "$dir/$f")"
  done
  recorded_sum=
  if [ -f "$dir/pfx.inputs" ]; then
    while read -r key value; do
      case $key in
        password_sha256) recorded_sum=$value ;;
        password_hash) [ "$source" = env ] && echo "@@input $key $value" ;;
        ?*) echo "@@input $key $value" ;;
      esac
    done < "$dir/pfx.inputs"
  fi
  handoff="$app/$name"
  [ -d "$handoff" ] || continue
  stat -c '@@appdir %a %u %g' "$handoff"
  for f in receiver.pfx pfx.pass kestrel.env; do
    [ -f "$handoff/$f" ] && echo "@@app $f $(stat -c '%a %u %g' "$handoff/$f")"
  done
  # Compared here, never printed: a CI-secret password may be guessable from a plain hash.
  if [ -n "$recorded_sum" ] && [ -f "$handoff/pfx.pass" ] && \
     [ "$(sha256sum < "$handoff/pfx.pass" | cut -c1-64)" = "$recorded_sum" ]; then
    echo "@@password_matches"
  fi
  if [ -f "$handoff/pfx.pass" ] && [ -f "$handoff/kestrel.env" ]; then
    expected=$(env_text "$handoff/receiver.pfx" "$handoff/pfx.pass" | sha256sum)
    if [ "$expected" = "$(sha256sum < "$handoff/kestrel.env")" ]; then echo "@@env_current"; fi
  fi
done
exit 0
"""


@dataclass
class InstalledCertificate:
    """What one endpoint has installed: certificate files and its application hand-off."""

    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 hex
    modes: dict[str, FileMeta] = field(default_factory=dict)  # name -> mode/owner, key dir and app dir files
    inputs: dict[str, str] = field(default_factory=dict)  # pfx.inputs: what the PFX was built from
    app_dir: FileMeta | None = None
    password_matches: bool = False  # pfx.pass is the password recorded in pfx.inputs
    env_current: bool = False  # kestrel.env holds the PFX path and the password in pfx.pass


@dataclass
class InstalledCertificates:
    group_gid: int | None = None
    group_missing: bool = False
    endpoints: dict[str, InstalledCertificate] = field(default_factory=dict)

    def get(self, fqdn: str) -> InstalledCertificate:
        return self.endpoints.get(fqdn) or InstalledCertificate()


class CertificateFiles(FactBase):
    """
    Returns the installed certificates and hand-off files of every endpoint under ``base_dir``.

    .. code:: python

        InstalledCertificates(group_gid=998, endpoints={
            "BaRS-INT-RX809.Acme.thirdparty.nhs.uk": InstalledCertificate(
                files={"cert.pem": "3a7b...", "chain.pem": "...", "ca.pem": "..."},
                inputs={"chain_sha256": "...", "key_sha256": "...", "profile": "modern",
                        "password_source": "generated"},
                app_dir=FileMeta("750", 0, 998), password_matches=True, env_current=True,
            ),
        })
    """

    default = InstalledCertificates

    def command(self, base_dir: str, app_dir: str, password_source: str = "generated",
                app_group: str | None = None) -> StringCommand:
        return script_command(_SCRIPT, base_dir, app_dir, password_source, app_group or "", name="certificate-files")

    def process(self, output: list[str]) -> InstalledCertificates:
        result = InstalledCertificates()
        current: InstalledCertificate | None = None
        for line in output:
            if not line.startswith("@@"):
                continue
            marker, _, rest = line[2:].partition(" ")
            words = rest.split()
            if marker == "group":
                result.group_gid = int(words[0])
            elif marker == "group_missing":
                result.group_missing = True
            elif marker == "endpoint":
                current = result.endpoints.setdefault(rest, InstalledCertificate())
            elif current is None:
                continue
            elif marker == "file" and len(words) == 5:
                current.files[words[0]] = words[1]
                current.modes[words[0]] = FileMeta(words[2], int(words[3]), int(words[4]))
            elif marker == "input" and words:
                current.inputs[words[0]] = " ".join(words[1:])
            elif marker == "appdir" and len(words) == 3:
                current.app_dir = FileMeta(words[0], int(words[1]), int(words[2]))
            elif marker == "app" and len(words) == 4:
                current.modes[words[0]] = FileMeta(words[1], int(words[2]), int(words[3]))
            elif marker == "password_matches":
                current.password_matches = True
            elif marker == "env_current":
                current.env_current = True
        return result
