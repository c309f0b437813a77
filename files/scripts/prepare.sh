#!/bin/sh
# Clear the endpoint's (or hand-off directory's) .staging/ and make .staging/gen, where the
# uploads that follow land; with a role (live or next), the key, its passphrase file and CSR of
# that generation are hard-linked in, so a certificate can be added beside them.
# Arguments: directory [role].
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
dir=$1 role=${2:-}
[ -d "$dir" ] || mkdir -m 700 "$dir"
stage_clear "$dir"
mkdir -m 700 "$dir/.staging/gen"
if [ -n "$role" ]; then
  [ -f "$dir/$role/key.pem" ] || fail "$dir/$role/key.pem: there is no such key; nothing was switched"
  for f in key.pem key.pass csr.pem; do
    if [ -f "$dir/$role/$f" ]; then ln "$dir/$role/$f" "$dir/.staging/gen/$f"; fi
  done
fi
