#!/bin/sh
# Tell the application its certificate changed: restart or reload its systemd unit, check that
# the unit is active, then record what it was told (app_state.sh compares that record on the next
# run, so a run that died between the PFX and this step is finished by the next one).
# Arguments: unit action (restart | reload) record_dir app_dir fqdn,fqdn,...
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
unit=$1 action=$2 records=$3 app_dir=$4 fqdns=$5
case $action in
  restart | reload) ;;
  *) fail "$unit: unknown action '$action' (restart or reload)" ;;
esac
if ! systemctl cat -- "$unit" >/dev/null 2>&1; then
  fail "$unit: no such systemd unit on this host; install the application, or fix app_unit"
fi
systemctl "$action" -- "$unit" || fail "$unit: systemctl $action failed (journalctl -u $unit says why)"
state=$(systemctl is-active -- "$unit" || true)
[ "$state" = active ] || fail "$unit is $state after systemctl $action, not active (journalctl -u $unit says why)"
(umask 077 && mkdir -p "$records" && handoff_state "$app_dir" "$fqdns" > "$records/.$unit.new" &&
  mv -f "$records/.$unit.new" "$records/$unit") || fail "$unit: ${action}ed, but the record in $records could not be written"
echo "$unit: ${action}ed, active"
