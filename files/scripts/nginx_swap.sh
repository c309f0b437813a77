#!/bin/sh
# Put a new receiver configuration live only after nginx accepted it, twice: alone (a stand-alone
# test configuration that includes only the candidate) and as part of nginx's whole configuration.
# A candidate refused either way leaves the previous file live (or none, if there was none).
# Arguments: candidate live_file scratch_dir (root-only, for the stand-alone test configuration)
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
set -e
candidate=$1 live=$2 scratch=$3
umask 077
# Debian's nginx.conf loads dynamic modules (njs) this way; the stand-alone test must too.
printf 'pid %s/nginx-test.pid;\ninclude /etc/nginx/modules-enabled/*.conf;\nevents {}\nhttp {\n    include %s;\n}\n' \
  "$scratch" "$candidate" > "$scratch/nginx-test.conf"
if ! nginx -q -t -c "$scratch/nginx-test.conf"; then
  rm -f "$candidate"
  fail "the new nginx configuration was refused; nothing was changed and nginx keeps serving"
fi
rm -f "$scratch/previous.conf"
if [ -f "$live" ]; then cp -p "$live" "$scratch/previous.conf"; fi
chmod 0644 "$candidate"
mv -f "$candidate" "$live"
if ! nginx -q -t; then
  if [ -f "$scratch/previous.conf" ]; then
    mv -f "$scratch/previous.conf" "$live"
    fail "nginx as a whole refused the new configuration; the previous one was restored"
  fi
  rm -f "$live"
  fail "nginx as a whole refused the new configuration; it was removed again (there was none before)"
fi
rm -f "$scratch/previous.conf"
