#!/bin/sh
# Debian's default nginx site (port 80) on a receiver host.
#   state            prints absent, untouched or modified
#   archive PATH     moves the enabled link to PATH, only when it is untouched
# "untouched": sites-enabled/default is the package's sites-available/default, with the checksum
# dpkg recorded for that conffile. Nothing is ever deleted.
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
set -eu
# BARS_NGINX_DIR exists for tests only (tests/unit/test_host_scripts.py); hosts never set it.
nginx_dir=${BARS_NGINX_DIR:-/etc/nginx}
enabled=$nginx_dir/sites-enabled/default
package_file=$nginx_dir/sites-available/default
conffile=/etc/nginx/sites-available/default # the name dpkg records the conffile under

state() {
  if [ ! -e "$enabled" ] && [ ! -L "$enabled" ]; then
    echo absent
    return
  fi
  target=$(readlink -f "$enabled" || true)
  recorded=$(dpkg-query -W -f='${Conffiles}\n' nginx-common 2>/dev/null \
    | awk -v f="$conffile" '$1 == f { print $2 }')
  actual=$(md5sum "$target" 2>/dev/null | cut -d' ' -f1 || true)
  if [ "$target" = "$package_file" ] && [ -n "$recorded" ] && [ "$recorded" = "$actual" ]; then
    echo untouched
  else
    echo modified
  fi
}

case "${1:-}" in
  state)
    state
    ;;
  archive)
    destination=$2
    if [ "$(state)" != untouched ]; then
      echo "the default site is not the package's untouched file; it was left in place" >&2
      exit 1
    fi
    mv -f "$enabled" "$destination"
    ;;
  *)
    echo "usage: $0 state | archive PATH" >&2
    exit 2
    ;;
esac
