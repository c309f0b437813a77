#!/bin/sh
# A new private key in a generation of its own, 0600 from birth, then live (first key) or next
# (renewal) pointed at it by one rename. prepare.sh made .staging/gen (and the passphrase file
# was uploaded into it). Refuses when the role already names a key: a key is never replaced.
# With a CN, the key's CSR (subject CN alone) is made beside it in the same staged generation, so
# the generation appears with both. With a cache directory, the new key's public half goes into
# the public-key cache, so the request packs' read-back of this run (endpoint_files.sh) runs no
# openssl for it.
# Arguments: endpoint_dir role bits protection(encrypted|plain) [public_key_cache [cn]].
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
dir=$1 role=$2 bits=$3 protection=$4 cache=${5:-} cn=${6:-}
gen=$dir/.staging/gen
trap 'rm -rf "$dir/.staging"' EXIT # on every exit: also the tidy-up of a run that went well
[ -d "$gen" ] || fail "$dir: nothing was staged for the new key"
if [ -f "$dir/$role/key.pem" ]; then fail "$dir/$role/key.pem already exists; refusing to replace a private key"; fi
if [ "$protection" = encrypted ]; then
  [ -s "$gen/key.pass" ] || fail "$dir: the key passphrase was not staged"
  passin=file:$gen/key.pass
  set -- -aes-256-cbc -pass "$passin"
else
  if [ -e "$gen/key.pass" ]; then rm -f "$gen/key.pass"; fi
  passin=pass:
  set --
fi
openssl genpkey -quiet -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" "$@" -out "$gen/key.pem"
public=''
if [ -n "$cn" ]; then
  # -config /dev/null keeps the host's openssl.cnf from adding fields; -pubkey writes the key's
  # public half ahead of the request, so no other openssl reads the new key.
  begin="-----BEGIN CERTIFICATE REQUEST-----"
  request=$(openssl req -new -config /dev/null -key "$gen/key.pem" -passin "$passin" -subj "/CN=$cn" -sha256 -pubkey)
  case $request in
    "-----BEGIN PUBLIC KEY-----"*"$begin"*) ;;
    *) fail "$dir: openssl req did not write a public key and a CSR for the new key" ;;
  esac
  printf '%s%s\n' "$begin" "${request#*"$begin"}" > "$gen/csr.pem"
  public=${request%%"$begin"*}
  public=${public%?} # the newline before the request
fi
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
if [ -n "$cache" ]; then remember_generation "$cache" "$dir" "$n" "$public"; fi
