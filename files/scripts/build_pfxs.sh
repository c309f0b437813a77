#!/bin/sh
# Build the PKCS#12 hand-offs of many endpoints in one command: build_pfx.sh (the path of its
# shipped file is the first argument) once per endpoint under xargs -P, as many at once as the
# host has cores. Each build stages its own hand-off generation and renames the hand-off's live onto it, all or
# nothing for that endpoint: one that fails says why, naming its directory, and leaves its
# hand-off as it was; the others still finish; the batch then fails, and the next run rebuilds
# only what is still out of date. For a CI-secret password (action upload) prepare.sh staged the
# first such hand-off directory and the password was uploaded into it, 0600 from birth; every
# other one gets a copy here (umask 077; the password is never an argument). Actions "modes"
# (owner and modes of the hand-off again) and "env" (kestrel.env rewritten) need no rebuild.
# Arguments: build_pfx_file profile source(env|generated) group dirmode filemode salt rounds
# public_key_cache, then quadruples: keydir handoff fqdn action(upload|generate|keep|modes|env).
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
script=$1 profile=$2 source=$3 group=$4 dirmode=$5 filemode=$6 salt=$7 rounds=$8 cache=$9
shift 9
# Whatever the outcome, no staged password outlives the batch (build_pfx.sh clears its own; this
# also covers a build that never started, or one stopped by the test hook).
unstage() {
  while [ $# -ge 4 ]; do
    case $4 in upload | generate | keep) drop_staging "$2" ;; esac
    shift 4
  done
}
trap 'unstage "$@"' EXIT

# Stage every build (nothing the application reads changes) and make the repairs, in turn.
stage_all() {
  first=
  while [ $# -ge 4 ]; do
    case $4 in
      upload)
        if [ -z "$first" ]; then
          first=$2
          [ -s "$first/.staging/gen/pfx.pass" ] || fail "$first: the uploaded PFX password is missing"
        else
          stage_generation "$2"
          cp "$first/.staging/gen/pfx.pass" "$2/.staging/gen/pfx.pass"
        fi
        ;;
      generate | keep) stage_generation "$2" ;;
      modes)
        handoff_live_modes "$2" "$group" "$dirmode" "$filemode"
        echo "$2: owner and modes of the hand-off again"
        ;;
      env)
        rewrite_env "$2" "$group" "$filemode"
        echo "$2: kestrel.env rewritten"
        ;;
      *) fail "$2: unknown action '$4' (upload, generate, keep, modes or env)" ;;
    esac
    shift 4
  done
}

# The build_pfx.sh arguments of each build, one per line.
builds() {
  while [ $# -ge 4 ]; do
    case $4 in
      upload | generate | keep)
        printf '%s\n' "$1" "$2" "$3" "$profile" "$4" "$source" "$group" "$dirmode" "$filemode" "$salt" "$rounds" "$cache"
        ;;
    esac
    shift 4
  done
}

stage_all "$@"
builds "$@" | on_every_core_file 12 "$script" ||
  fail "PKCS#12: a hand-off named above was not rebuilt (it is as it was); the others are built"
