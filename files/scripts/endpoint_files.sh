#!/bin/sh
# The endpoint-files fact: one block per endpoint directory under base_dir, describing the key
# and CSR that live and next will name once reconcile.sh has run (so a plan made from it holds
# after the repair), plus why a repair is needed. Markers start with "@@" and never occur in PEM
# text. Changes nothing on the endpoints; with cache_dir, each key's public half is kept there
# (root-only, one file per key named by its identity, $FILE_ID in lib.sh, with the passphrase
# file that opened it and that file's identity), so openssl runs only for keys it has not seen.
# With cache_write "no" (a --dry run) the cache is only read: a dry run writes nothing anywhere.
# The endpoints are read on every core (on_every_core in lib.sh).
# Arguments: base_dir [cache_dir [cache_write]].
# shellcheck disable=SC2317 # the functions below are reached through on_every_core, by name
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
base=$1 cache=${2:-} cache_write=${3:-yes}
NL='
'
if [ -n "$cache" ] && [ "$cache_write" = yes ]; then (umask 077; mkdir -p "$cache") 2>/dev/null || cache=; fi
# $1 marker prefix, $2 directory (for its mode), $3 key, $4... passphrase files to try.
describe() {
  p=$1 dir=$2 key=$3
  shift 3
  if [ ! -f "$key" ]; then
    stat -L -c "@@${p}dir %a %u %g" "$dir"
    return 0
  fi
  # One stat for the directory and the key: its first line is the directory's.
  meta=$(stat -L -c "%a %u %g $FILE_ID" "$dir" "$key")
  dir_meta=${meta%%"$NL"*}
  meta=${meta#*"$NL"}
  echo "@@${p}dir ${dir_meta% *}"
  echo "@@${p}key ${meta% *}"
  echo "@@${p}key_public"
  entry=${cache:+$cache/${meta##* }}
  if [ -n "$entry" ] && cached_entry "$entry" "$@"; then
    echo "$public"
    [ -z "$pass_meta" ] || echo "@@${p}key_pass $pass_meta"
  elif open_key "$key" "" "$@"; then
    echo "$public"
    pass_meta=
    case $passin in file:*) pass_meta=$(stat -L -c "%a %u %g $FILE_ID" "${passin#file:}") ;; esac
    [ -z "$pass_meta" ] || echo "@@${p}key_pass ${pass_meta% *}"
    if [ -n "$entry" ] && [ "$cache_write" = yes ]; then remember_public "$cache" "$key" "$passin" "$public"; fi
  else
    echo "@@${p}key_unreadable"
    for pass in "$@"; do
      if [ -f "$pass" ]; then stat -L -c "@@${p}key_pass %a %u %g" "$pass"; break; fi
    done
  fi
  if [ -f "${key%/*}/csr.pem" ]; then echo "@@${p}csr"; cat "${key%/*}/csr.pem"; fi
}
# One endpoint directory's block.
read_endpoint() {
  dir=$1
  echo "@@endpoint ${dir##*/}"
  repair_reasons "$dir" # also resolves the directory: $want_live, $want_next
  if [ -n "$reasons" ]; then
    printf '%s\n' "$reasons" | while IFS= read -r reason; do echo "@@repair $reason"; done
  fi
  if [ -f "$dir/key.pem" ] && [ ! -L "$dir/key.pem" ]; then
    old_pass=$(legacy_archived_pass "$dir")
    describe "" "$dir" "$dir/key.pem" "$dir/key.pass" "$old_pass" "$dir/next/key.pass"
    if [ -d "$dir/next" ]; then describe next_ "$dir/next" "$dir/next/key.pem" "$dir/next/key.pass" "$dir/key.pass"; fi
    return 0
  fi
  if [ -n "$want_live" ]; then
    g=$dir/archive/$want_live
    describe "" "$dir" "$g/key.pem" "$g/key.pass"
  else
    stat -c "@@dir %a %u %g" "$dir"
  fi
  if [ -n "$want_next" ]; then
    g=$dir/archive/$want_next
    describe next_ "$g" "$g/key.pem" "$g/key.pass"
  fi
}

# Share $1 of $2 of the endpoint directories $3... (on_every_core).
read_share() {
  share=$1 shares=$2 n=0
  shift 2
  for d_dir in "$@"; do
    [ -d "$d_dir" ] || continue
    n=$((n + 1))
    in_share "$n" "$share" "$shares" || continue
    read_endpoint "${d_dir%/}"
  done
}

[ -d "$base" ] || exit 0
on_every_core read_share "$base"/*/
