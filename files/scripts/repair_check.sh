#!/bin/sh
# Why endpoint directory $1 needs reconcile.sh, one reason a line; nothing when it does not.
# Changes nothing (for people and tests; the endpoint-files fact prints the same reasons).
set -eu
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
repair_reasons "$1"
[ -z "$reasons" ] || printf '%s\n' "$reasons"
