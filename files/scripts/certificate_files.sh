#!/bin/sh
# The certificate-files fact: installed certificates (through live/) and the PKCS#12 hand-off of
# every endpoint. Prints hashes and modes, never a password: whether pfx.pass still matches the
# one the PFX was built with is decided here. Changes nothing. The endpoints are read on every
# core (on_every_core in lib.sh).
# Arguments: base_dir app_dir password_source(env|generated) app_group.
# shellcheck disable=SC2317 # the functions below are reached through on_every_core, by name
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
base=$1 app=$2 source=$3 group=$4
shift 4
if [ -n "$group" ]; then
  gid=$(getent group "$group" | cut -d: -f3)
  if [ -n "$gid" ]; then echo "@@group $gid"; else echo "@@group_missing"; fi
fi
# Share $1 of $2 of the endpoint directories $3... (on_every_core); every certificate file the
# share holds is hashed and stat'ed together at its end, in one sha256sum and one stat (the
# positional parameters collect them): not a few processes per file.
read_share() {
  share=$1 shares=$2 n=0
  shift 2
  for dir in "$@"; do
    shift
    [ -d "$dir" ] || continue
    n=$((n + 1))
    in_share "$n" "$share" "$shares" || continue
    dir=${dir%/}
    for f in cert.pem chain.pem ca.pem; do
      if [ -f "$dir/$f" ]; then set -- "$@" "$dir/$f"; fi
    done
    read_endpoint "$dir"
  done
  if [ $# -gt 0 ]; then
    sha256sum -- "$@" | while read -r sum path; do echo "@@sum $sum $path"; done
    stat -L -c '@@stat %a %u %g %n' -- "$@"
  fi
}

# One endpoint directory's block (its certificate files are read by read_share).
read_endpoint() {
  dir=$1
  name=${dir##*/}
  echo "@@endpoint $name"
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
  [ -d "$handoff" ] || return 0
  [ -e "$handoff/.staging" ] && echo "@@handoff_staging"
  stat -c '@@appdir %a %u %g' "$handoff"
  # Before generations pfx.pass was a file here: the next build keeps that password.
  if [ -f "$handoff/pfx.pass" ] && [ ! -L "$handoff/pfx.pass" ]; then echo "@@legacy_password"; fi
  live=$(pointer_number "$handoff/live")
  [ -n "$live" ] || return 0
  gen=$handoff/archive/$live
  echo "@@handoff_generation $(stat -c '%a %u %g' "$gen") $(stat -c '%a %u %g' "$handoff/archive")"
  for f in receiver.pfx pfx.pass kestrel.env; do
    [ -f "$gen/$f" ] && [ "$(readlink "$handoff/$f")" = "live/$f" ] && echo "@@app $f $(stat -c '%a %u %g' "$gen/$f")"
  done
  # Compared here, never printed: a CI-secret password may be guessable from a plain hash.
  if [ -n "$recorded_sum" ] && [ -f "$gen/pfx.pass" ] && \
     [ "$(sha256_hex < "$gen/pfx.pass")" = "$recorded_sum" ]; then
    echo "@@password_matches"
  fi
  if [ -f "$gen/pfx.pass" ] && [ -f "$gen/kestrel.env" ]; then
    expected=$(env_text "$gen/receiver.pfx" "$gen/pfx.pass" | sha256sum)
    if [ "$expected" = "$(sha256sum < "$gen/kestrel.env")" ]; then echo "@@env_current"; fi
  fi
  return 0
}

[ -d "$base" ] || exit 0
on_every_core read_share "$base"/*/
