#!/bin/sh
# Rewrite the live hand-off generation's kestrel.env (by rename) when it no longer says what the
# host would write: it holds the PFX path and the password in pfx.pass beside it.
# Arguments: handoff group filemode.
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
handoff=$1 group=$2 mode=$3
gen=$(pointer_number "$handoff/live")
[ -n "$gen" ] || fail "$handoff: there is no live PKCS#12"
gen=$handoff/archive/$gen
stage_clear "$handoff"
env_text "$gen/receiver.pfx" "$gen/pfx.pass" > "$handoff/.staging/kestrel.env"
chown "root:$group" "$handoff/.staging/kestrel.env"
chmod "$mode" "$handoff/.staging/kestrel.env"
mv -f "$handoff/.staging/kestrel.env" "$gen/kestrel.env"
rm -rf "$handoff/.staging"
