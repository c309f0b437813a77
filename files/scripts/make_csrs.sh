#!/bin/sh
# The CSRs of many endpoints in one command, as many at once as the host has cores: make_csr.sh
# (the path of its shipped file is the first argument) once per endpoint under xargs -P.
# Arguments: make_csr_file role public_key_cache dir fqdn [dir fqdn]...
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
script=$1 role=$2 cache=$3
shift 3
while [ $# -ge 2 ]; do
  printf '%s\n%s\n%s\n%s\n' "$1" "$role" "$2" "$cache"
  shift 2
done | on_every_core_file 4 "$script"
