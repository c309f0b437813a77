#!/bin/sh
# Tell the application its certificate changed: restart or reload its systemd unit, then check
# that the unit is active. Arguments: unit action (restart | reload).
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
unit=$1 action=$2
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
echo "$unit: ${action}ed, active"
