#!/bin/sh
# Ship host scripts by content hash (bars_receiver/shipping.py). "prepare": make the scripts
# directory root-only before an upload lands in it. "install": rename one uploaded script to
# <sha256>.sh only if the whole upload hashes to that name; scripts of older checkouts go.
# Runs inline (sh -c), never shipped itself: it is what ships the others. So it stands alone (no
# lib.sh), and its text is all that goes on the command line.
# Arguments: prepare scripts_dir | install scripts_dir staged_upload sha256 [stale paths...]
fail() {
  echo "$*" >&2
  exit 1
}
action=$1 dir=$2
case $action in
  prepare)
    if ! { (umask 077 && mkdir -p "$dir") && chown root:root "$dir" && chmod 700 "$dir"; }; then
      fail "$dir: cannot be made root-only"
    fi
    ;;
  install)
    f=$3 h=$4
    shift 4
    if [ "$(sha256sum < "$f" | cut -d ' ' -f 1)" != "$h" ]; then
      rm -f "$f"
      fail "$f: the upload does not hash to $h; not installed"
    fi
    chown root:root "$f" && chmod 600 "$f" && mv -f "$f" "$dir/$h.sh" && rm -f -- "$@"
    ;;
  *) fail "ship_script.sh: unknown action '$action' (prepare or install)" ;;
esac
