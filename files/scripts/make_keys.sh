#!/bin/sh
# New private keys for many endpoints in one command, as many at once as the host has cores:
# make_key.sh (the path of its shipped file is the first argument) once per directory under
# xargs -P. Each key is still made 0600 from birth in its own staged generation and never
# replaces one (make_key.sh refuses). prepare.sh staged the first directory and, for encrypted keys, the passphrase was
# uploaded into it; every other directory is staged here with a copy of that file (umask 077:
# 0600 from birth; the passphrase is never an argument).
# Arguments: make_key_file role bits protection(encrypted|plain) public_key_cache dir...
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
script=$1 role=$2 bits=$3 protection=$4 cache=$5
shift 5
[ $# -gt 0 ] || exit 0
first=$1
for dir in "$@"; do
  [ "$dir" = "$first" ] && continue
  stage_generation "$dir"
  if [ "$protection" = encrypted ]; then cp "$first/.staging/gen/key.pass" "$dir/.staging/gen/key.pass"; fi
done
for dir in "$@"; do printf '%s\n%s\n%s\n%s\n%s\n' "$dir" "$role" "$bits" "$protection" "$cache"; done |
  on_every_core_file 5 "$script"
