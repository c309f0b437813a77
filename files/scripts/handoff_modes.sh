#!/bin/sh
# Owner and modes of an endpoint's hand-off directory, its archive/ and live generation and
# their files: the application's group may read them (or root alone).
# Arguments: handoff group dirmode filemode.
set -eu
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
live=$(pointer_number "$1/live")
handoff_modes "$1" "$2" "$3" "$4" "${live:+$1/archive/$live}"
