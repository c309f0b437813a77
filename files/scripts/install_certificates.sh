#!/bin/sh
# Install issued certificates for many endpoints in one command. The controller uploaded one tar
# into <base>/.staging/ (prepare.sh made it) holding <name>/.staging/gen/cert.pem, chain.pem and
# ca.pem for each endpoint directory <base>/<name> to install. First every such endpoint is
# staged as prepare.sh stages one (the key, key.pass and CSR of its source role hard-linked into
# its .staging/gen), then one tar extracts exactly those files into place: nothing served
# changes, and a failure here (a file missing from the tar) stops the batch with nothing
# switched. Then switch.sh (the path of its shipped file is the first argument) runs once per
# endpoint under xargs -P, as many at once as the host has cores: each checks its endpoint's
# files against its key and renames live, all or nothing for that endpoint. One that fails says
# why, naming its directory, and leaves it as it was; the others still finish; the batch then
# fails, and the next run installs only what is still missing. An endpoint with action "modes"
# only gets root:root 0644 back on its live certificate files.
# Arguments: switch_file base_dir bundle(the tar, or empty) public_key_cache, then pairs:
# endpoint_dir action(live|next|modes).
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
script=$1 base=$2 bundle=$3 cache=$4
shift 4
members=$base/.staging/members
trap 'rm -rf "$base/.staging"' EXIT
if [ -n "$bundle" ]; then
  [ -f "$bundle" ] || fail "$bundle: the certificates were not uploaded; nothing was switched"
  : > "$members"
fi

# Stage (or, for "modes", repair) each endpoint in turn, listing the tar members it takes.
stage_all() {
  while [ $# -ge 2 ]; do
    case $2 in
      live | next)
        [ "${1%/*}" = "$base" ] || fail "$1: not a directory in $base; nothing was switched"
        [ -n "$bundle" ] || fail "$1: no certificates were uploaded for it; nothing was switched"
        stage_generation "$1" "$2"
        for f in cert.pem chain.pem ca.pem; do printf '%s\n' "${1##*/}/.staging/gen/$f" >> "$members"; done
        ;;
      modes)
        for f in cert.pem chain.pem ca.pem; do
          chown root:root "$1/live/$f"
          chmod 0644 "$1/live/$f"
        done
        echo "$1: certificate files root:root 0644 again"
        ;;
      *) fail "$1: unknown action '$2' (live, next or modes)" ;;
    esac
    shift 2
  done
}

# The switch.sh arguments of each endpoint to install, one per line.
switches() {
  while [ $# -ge 2 ]; do
    case $2 in live | next) printf '%s\n%s\n%s\n' "$1" "$2" "$cache" ;; esac
    shift 2
  done
}

stage_all "$@"
if [ -n "$bundle" ]; then
  [ -s "$members" ] || fail "$bundle: no endpoint to install was named; nothing was switched"
  tar -x -f "$bundle" -C "$base" --no-same-owner --no-same-permissions -T "$members" ||
    fail "$bundle: tar could not put every endpoint's certificates in place; nothing was switched"
fi
switches "$@" | on_every_core_file 3 "$script" ||
  fail "certificates: an endpoint named above was not switched (it is as it was); the others are installed"
