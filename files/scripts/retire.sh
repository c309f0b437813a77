#!/bin/sh
# Retire one endpoint: archive its key directory and its application hand-off directory, with a
# record, under base_dir/.retired/<fqdn>/<UTC time>/. Nothing is deleted: both directories are
# renamed (same file system) into the archive, which is root-only (0700); nginx no longer names
# them (the run reloaded it without this endpoint first). The record is written before anything
# moves, so an interrupted run leaves it beside whatever moved; the next run moves the rest.
# Arguments: base_dir app_dir fqdn inventory.
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
set -e
base=$1 app=$2 fqdn=$3 inventory=$4
umask 077
[ -d "$base/$fqdn" ] || [ -d "$app/$fqdn" ] || { echo "$fqdn: nothing to retire"; exit 0; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dest="$base/.retired/$fqdn/$stamp"
mkdir -p "$base/.retired/$fqdn"
chmod 700 "$base/.retired" "$base/.retired/$fqdn"
mkdir "$dest" || fail "$dest already exists; run again in a second"
cert=
for candidate in "$base/$fqdn/live/cert.pem" "$base/$fqdn/cert.pem"; do
  if [ -f "$candidate" ]; then cert=$candidate; break; fi
done
{
  echo "fqdn $fqdn"
  echo "retired_at $stamp"
  echo "inventory $inventory"
  echo "host $(hostname)"
  if [ -n "$cert" ]; then
    echo "certificate_serial $(openssl x509 -in "$cert" -noout -serial | cut -d= -f2)"
    echo "certificate_sha256 $(openssl x509 -in "$cert" -noout -fingerprint -sha256 | cut -d= -f2)"
    echo "certificate_subject $(openssl x509 -in "$cert" -noout -subject -nameopt RFC2253 | cut -d= -f2-)"
    echo "certificate_not_after $(openssl x509 -in "$cert" -noout -enddate | cut -d= -f2)"
  else
    echo "certificate none"
  fi
  if [ -d "$base/$fqdn" ]; then echo "key_directory $base/$fqdn -> $dest/key"; fi
  if [ -d "$app/$fqdn" ]; then echo "handoff_directory $app/$fqdn -> $dest/handoff"; fi
} > "$dest/RETIRED"
chmod 600 "$dest/RETIRED"
step record
if [ -d "$base/$fqdn" ]; then mv "$base/$fqdn" "$dest/key"; fi
step key
if [ -d "$app/$fqdn" ]; then mv "$app/$fqdn" "$dest/handoff"; fi
echo "$fqdn: retired; archived in $dest (record: $dest/RETIRED)"
