#!/bin/sh
# A read-only fact script's output, kept on the host against a digest of everything it could
# depend on: its own text and arguments, and every path, type, mode, owner, inode, size, mtime,
# ctime and link target in the directories under its roots (plus /etc/group and /etc/passwd for
# the owners it names). The scripts read only what is in those directories (one per endpoint), so
# a root's own entry and the regular files directly in it are left out: base_dir's nginx-loaded
# and managed-by records change on runs that change no endpoint, and would empty the cache. ctime cannot be set back by any tool, so a file whose content changed, even
# with its mtime restored, changes the digest. While the digest matches, the kept output is printed:
# one find, one sort and one sha256sum instead of a dozen processes per endpoint. Otherwise the
# script runs and, with cache_write "yes", its output is kept for the next run; with "no" (a --dry
# run) nothing is written anywhere.
# Arguments: cache_file cache_write(yes|no) root_a root_b script script_args... (an empty root is
# skipped; the script runs as sh -c script bars-fact script_args...).
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
cache=$1 cache_write=$2 root_a=$3 root_b=$4 script=$5
shift 5
digest=$({
  printf '%s\n' "$script" "$@" "$root_a" "$root_b"
  for root in "$root_a" "$root_b"; do
    if [ -n "$root" ] && [ -e "$root" ]; then
      echo "root $root"
      (cd "$root" && find . -mindepth 1 \( ! -type f -o -path './*/*' \) -printf '%p|%y|%m|%U|%G|%i|%s|%T@|%C@|%l\n') |
        LC_ALL=C sort
    fi
  done
  stat -c '%n %i %s %Y %Z' /etc/group /etc/passwd 2>/dev/null
} | sha256_hex)
# The output goes back as one line, "@@b64 " and the output in base64 (fact_cache.unframed): at
# 500 endpoints it is tens of thousands of lines, which pyinfra's SSH reader takes one at a time.
framed() {
  printf '@@b64 '
  base64 -w0
  echo
}
# The script's output, framed, without keeping it (a dry run, or no cache directory).
uncached() {
  status=0
  out=$(sh -c "$script" bars-fact "$@") || status=$?
  { [ -z "$out" ] || printf '%s\n' "$out"; } | framed
  exit "$status"
}
if [ -f "$cache" ] && [ "$(head -n 1 "$cache")" = "digest $digest" ]; then
  tail -n +2 "$cache" | framed
  exit 0
fi
if [ "$cache_write" != yes ]; then uncached "$@"; fi
(umask 077; mkdir -p "${cache%/*}") 2>/dev/null || uncached "$@"
umask 077
rm -f "$cache"
status=0
{ echo "digest $digest"; sh -c "$script" bars-fact "$@"; } > "$cache.$$" || status=$?
tail -n +2 "$cache.$$" | framed
if [ "$status" -eq 0 ]; then mv -f "$cache.$$" "$cache"; else rm -f "$cache.$$"; fi
exit "$status"
