#!/bin/sh
# Check the candidate rules, apply them in one transaction, and only then keep them for boot
# (written to a temporary name beside the kept file, synced and renamed, so neither a reader nor a
# power cut sees half a file). A candidate nft rejects, or an apply that fails, leaves the live
# table and the kept file as they were. With serving_port, first wait until nginx listens there
# and on none of released_ports (a graceful reload lets old workers finish first).
# Arguments: candidate kept_path [serving_port "released ports separated by spaces"]
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
set -eu
candidate=$1 path=$2 serving=${3:-} released=${4:-}
trap 'rm -f "$candidate"' EXIT
if [ -n "$serving" ]; then
  # Test-only: a file the lab test plants stops the release here, as a crash would.
  if [ "$(cat "$BARS_TEST_STOP" 2>/dev/null)" = firewall:release ]; then kill -KILL $$; fi
  tries=50
  while :; do
    busy=
    for p in $released; do
      if [ -n "$(ss -Htln "sport = :$p")" ]; then busy="$busy $p"; fi
    done
    if [ -n "$(ss -Htln "sport = :$serving")" ] && [ -z "$busy" ]; then break; fi
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then
      fail "nginx is not (yet) listening on port $serving alone (still listening:${busy:- none on $serving});" \
           "ports $released stay filtered, as before; the next run releases them"
    fi
    sleep 0.1
  done
fi
if ! nft -c -f "$candidate"; then
  fail "nft rejected the new firewall rules (message above); the live table and $path are unchanged"
fi
nft -f "$candidate"
staged="${path%/*}/.${path##*/}.new"
install -D -m 0644 "$candidate" "$staged"
sync "$staged"
mv -f "$staged" "$path"
