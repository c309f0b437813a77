#!/bin/sh
# Fact: the table "$1 $2" as nft's JSON, or nothing when there is no such table. Asks for the
# table list first: "no such table" from `nft list table` is only a locale-dependent message, and
# any other nft failure must fail the fact, not read as absent.
# Arguments: family table
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
set -e
tables=$(nft list tables "$1")
if printf '%s\n' "$tables" | grep -qxF "table $1 $2"; then exec nft -j list table "$1" "$2"; fi
