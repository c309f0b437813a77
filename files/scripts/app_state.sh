#!/bin/sh
# The applications fact: for each unit, what it was last told (the record app_reload.sh writes
# after a successful restart or reload) and what its endpoints' hand-offs are now (each FQDN with
# the generation its live/ names). A record that differs means a run changed the PFX but died, or
# failed, before the unit was told: the next run tells it. Changes nothing.
# Arguments: record_dir app_dir, then pairs: unit fqdn,fqdn,...
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
records=$1 app_dir=$2
shift 2
while [ "$#" -ge 2 ]; do
  unit=$1 fqdns=$2
  shift 2
  recorded=$(cat "$records/$unit" 2>/dev/null || true)
  printf '%s\t%s\t%s\n' "$unit" "$recorded" "$(handoff_state "$app_dir" "$fqdns")"
done
exit 0
