#!/bin/sh
# Reload nginx and fail unless it really took the configuration; then record what it loaded.
# The reload is SIGHUP to nginx's main process, sent through systemd: what Debian's ExecReload
# (nginx -s reload) does, without the whole configuration parsed once more only to find the pid
# file (at 500 servers, each parse loads 500 certificates). A signal only asks nginx to reload:
# a configuration that passed nginx -t can still fail to load (a port taken by another process).
# New worker processes show it did load; only then is the digest recorded, so a reload that did
# not take is tried again, and reported, on the next run.
# Arguments: live_file marker_file
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
set -e
umask 077
live=$1 marker=$2
# The main process stays the same across a reload; its workers are replaced. Looked at every 20 ms:
# nginx takes about 0.1 s to load 50 servers, and this wait is most of a reload's cost.
main=$(systemctl show -p MainPID --value nginx)
workers() { ps --ppid "$main" -o pid=; }
before=" $(workers | tr -s ' \n' '  ') "
systemctl kill --kill-whom=main --signal=HUP nginx
i=0
while [ "$i" -lt 250 ]; do
  for pid in $(workers); do
    case $before in
      *" $pid "*) ;;
      *)
        served_digest "$live" > "$marker.new" && mv -f "$marker.new" "$marker"
        exit 0
        ;;
    esac
  done
  sleep 0.02
  i=$((i + 1))
done
echo "nginx did not take the new configuration (no new worker processes within 5 s); it keeps serving the previous one. nginx's log:" >&2
tail -n 5 /var/log/nginx/error.log >&2
exit 1
