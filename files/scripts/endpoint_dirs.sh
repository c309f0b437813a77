#!/bin/sh
# The endpoint-directories fact: which endpoint directories base_dir holds, which hand-off
# directories app_dir holds, and which retirement records base_dir/.retired/ keeps. Names only;
# changes nothing. Arguments: base_dir app_dir.
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
base=$1 app=$2
if [ -d "$base" ]; then
  for dir in "$base"/*/; do
    [ -d "$dir" ] || continue
    dir=${dir%/}
    echo "@@endpoint ${dir##*/}"
  done
  for record in "$base"/.retired/*/*/RETIRED; do
    [ -f "$record" ] || continue
    dir=${record%/RETIRED}
    echo "@@retired ${dir#"$base"/.retired/}"
  done
fi
if [ -d "$app" ]; then
  for dir in "$app"/*/; do
    [ -d "$dir" ] || continue
    dir=${dir%/}
    echo "@@handoff ${dir##*/}"
  done
fi
exit 0
