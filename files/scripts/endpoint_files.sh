#!/bin/sh
# The endpoint-files fact: one block per endpoint directory under base_dir, describing the key
# and CSR that live and next will name once reconcile.sh has run (so a plan made from it holds
# after the repair), plus why a repair is needed. Markers start with "@@" and never occur in PEM
# text. Changes nothing. Argument: base_dir.
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
base=$1
# $1 marker prefix, $2 directory (for its mode), $3 key, $4... passphrase files to try.
describe() {
  p=$1 dir=$2 key=$3
  shift 3
  stat -L -c "@@${p}dir %a %u %g" "$dir"
  [ -f "$key" ] || return 0
  stat -L -c "@@${p}key %a %u %g" "$key"
  echo "@@${p}key_public"
  if passin=$(key_passin "$key" "$@"); then
    public_key "$key" "$passin"
    case $passin in file:*) stat -L -c "@@${p}key_pass %a %u %g" "${passin#file:}" ;; esac
  else
    echo "@@${p}key_unreadable"
    for pass in "$@"; do
      if [ -f "$pass" ]; then stat -L -c "@@${p}key_pass %a %u %g" "$pass"; break; fi
    done
  fi
  if [ -f "${key%/*}/csr.pem" ]; then echo "@@${p}csr"; cat "${key%/*}/csr.pem"; fi
}
[ -d "$base" ] || exit 0
for dir in "$base"/*/; do
  [ -d "$dir" ] || continue
  dir=${dir%/}
  echo "@@endpoint ${dir##*/}"
  repair_reasons "$dir" | sed 's/^/@@repair /'
  if [ -f "$dir/key.pem" ] && [ ! -L "$dir/key.pem" ]; then
    old_pass=$(legacy_archived_pass "$dir")
    describe "" "$dir" "$dir/key.pem" "$dir/key.pass" "$old_pass" "$dir/next/key.pass"
    if [ -d "$dir/next" ]; then describe next_ "$dir/next" "$dir/next/key.pem" "$dir/next/key.pass" "$dir/key.pass"; fi
    continue
  fi
  want_live='' want_next=''
  [ -d "$dir/archive" ] && resolve "$dir"
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
done
exit 0
