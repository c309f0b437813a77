#!/bin/sh
# Every run starts here (only when the endpoint-files fact found something to do): finish or
# roll back whatever an interrupted run left, and move directories of the previous layout into
# generations. Arguments: base_dir app_dir.
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
base=$1 app=$2
for dir in "$base"/*/; do
  [ -d "$dir" ] || continue
  dir=${dir%/}
  repair_reasons "$dir"
  [ -z "$reasons" ] || repair "$dir"
done
# Certificates a batched install staged when it was stopped (public material only).
rm -rf "$base/.staging"
# Secrets a PKCS#12 build staged when it was stopped.
for dir in "$app"/*/; do
  [ -d "$dir/.staging" ] || continue
  rm -rf "${dir%/}/.staging"
done
exit 0
