#!/bin/sh
# Fact: "current" when the digest recorded after nginx's last successful reload (nginx_reload.sh)
# matches what is on disk now (served_digest), otherwise "stale".
# Arguments: live_file marker_file
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
if [ -f "$2" ] && [ "$(cat "$2")" = "$(served_digest "$1")" ]; then echo current; else echo stale; fi
