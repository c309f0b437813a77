#!/bin/sh
# New private keys, each with its CSR, for many endpoints in one command, as many at once as the
# host has cores: make_key.sh (the path of its shipped file is the first argument) once per
# directory under xargs -P. Each key is still made 0600 from birth in its own staged generation
# and never replaces one (make_key.sh refuses). prepare.sh staged the first directory and, for
# encrypted keys, the passphrase was uploaded into it; every other directory is staged here with
# a copy of that file (umask 077: 0600 from birth; the passphrase is never an argument).
# Arguments: make_key_file role bits protection(encrypted|plain) public_key_cache, then pairs:
# dir cn (each new key's CSR is made with it, by make_key.sh).
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
script=$1 role=$2 bits=$3 protection=$4 cache=$5
shift 5
[ $# -gt 0 ] || exit 0
first=$1

# Stage every directory but the first (prepare.sh staged it), in turn.
stage_all() {
  while [ $# -ge 2 ]; do
    if [ "$1" != "$first" ]; then
      stage_generation "$1"
      if [ "$protection" = encrypted ]; then cp "$first/.staging/gen/key.pass" "$1/.staging/gen/key.pass"; fi
    fi
    shift 2
  done
}

# The make_key.sh arguments of each key, one per line.
keys() {
  while [ $# -ge 2 ]; do
    printf '%s\n' "$1" "$role" "$bits" "$protection" "$cache" "$2"
    shift 2
  done
}

stage_all "$@"
keys "$@" | on_every_core_file 6 "$script"
