#!/bin/sh
# A new private key in a generation of its own, 0600 from birth, then live (first key) or next
# (renewal) pointed at it by one rename. prepare.sh made .staging/gen (and the passphrase file
# was uploaded into it). Refuses when the role already names a key: a key is never replaced.
# With a cache directory, the new key's public half goes into the public-key cache, so the
# request packs' read-back of this run (endpoint_files.sh) runs no openssl for it.
# Arguments: endpoint_dir role bits protection(encrypted|plain) [public_key_cache].
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
dir=$1 role=$2 bits=$3 protection=$4 cache=${5:-}
gen=$dir/.staging/gen
trap 'rm -rf "$dir/.staging"' EXIT
[ -d "$gen" ] || fail "$dir: nothing was staged for the new key"
if [ -f "$dir/$role/key.pem" ]; then fail "$dir/$role/key.pem already exists; refusing to replace a private key"; fi
if [ "$protection" = encrypted ]; then
  [ -s "$gen/key.pass" ] || fail "$dir: the key passphrase was not staged"
  set -- -aes-256-cbc -pass "file:$gen/key.pass"
else
  rm -f "$gen/key.pass"
  set --
fi
openssl genpkey -quiet -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" "$@" -out "$gen/key.pem"
step "key made in staging"
[ -d "$dir/archive" ] || mkdir -m 700 "$dir/archive"
n=$(next_number "$dir")
mv -T "$gen" "$dir/archive/$n"
step "generation $n in archive"
point "$dir" "$role" "archive/$n"
step "$role names generation $n"
if [ "$role" = live ]; then
  point_compat "$dir"
fi
rm -rf "$dir/.staging"
if [ -n "$cache" ]; then
  key=$dir/archive/$n/key.pem passin=pass:
  [ -f "$dir/archive/$n/key.pass" ] && passin=file:$dir/archive/$n/key.pass
  if public=$(public_key "$key" "$passin"); then remember_public "$cache" "$key" "$passin" "$public"; fi
fi
