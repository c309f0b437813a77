#!/bin/sh
# Build the PKCS#12 from the live generation's key and chain in a hand-off generation of its own
# (receiver.pfx, pfx.pass, kestrel.env together), check it opens with its password, then rename
# the hand-off's live onto it, so the application never sees a PFX beside another's password.
# What it was built from goes to pfx.inputs (root-only, in the key directory) last. build_pfxs.sh
# (or prepare.sh) cleared <handoff>/.staging and made .staging/gen (and put a CI-secret password
# there). Run once per endpoint by build_pfxs.sh. The key's passphrase file and public half come
# from the public-key cache when it has this key (open_key in lib.sh): openssl builds the PKCS#12
# and opens it, and reads the key no other time.
# Arguments: keydir handoff fqdn profile password(upload|generate|keep) source group dirmode
# filemode salt rounds (of the recorded sha512-crypt password hash) [public_key_cache].
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
keydir=$1 handoff=$2 fqdn=$3 profile=$4 password=$5 source=$6 group=$7 dirmode=$8 filemode=$9 salt=${10} rounds=${11}
cache=${12:-}
gen=$handoff/.staging/gen
trap 'rm -rf "$handoff/.staging"' EXIT # on every exit: also the tidy-up of a run that went well
[ -d "$gen" ] || fail "$handoff: nothing was staged for the PKCS#12"
case $password in
  upload) [ -s "$gen/pfx.pass" ] || fail "$handoff: the uploaded PFX password is missing" ;;
  generate)
    # 24 random bytes in hex, as openssl rand -hex 24 writes them, read by od: a far smaller
    # process than openssl, whose start-up is most of what it costs here.
    # shellcheck disable=SC2046 # od's words are joined by printf
    random=$(printf '%s' $(od -An -vtx1 -N24 /dev/urandom))
    [ "${#random}" -eq 48 ] || fail "$handoff: could not read 24 random bytes for the PFX password"
    printf '%s\n' "$random" > "$gen/pfx.pass"
    ;;
  keep) cp "$handoff/pfx.pass" "$gen/pfx.pass" ;; # through live/, or the file itself before generations
  *) fail "unknown password step $password" ;;
esac
case $profile in
  modern) set -- -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 ;;
  legacy) set -- -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 ;;
  *) fail "unknown PKCS#12 profile $profile" ;;
esac
live=$keydir/live
open_key "$live/key.pem" "$cache" "$live/key.pass" || fail "$live/key.pem: openssl cannot read it with its key.pass"
openssl pkcs12 -export -inkey "$live/key.pem" -passin "$passin" -in "$live/chain.pem" -name "$fqdn" "$@" \
  -passout "file:$gen/pfx.pass" -out "$gen/receiver.pfx" || fail "$handoff: openssl could not build the PKCS#12 (the hand-off is as it was)"
openssl pkcs12 -in "$gen/receiver.pfx" -passin "file:$gen/pfx.pass" -noout ||
  fail "$handoff: the new PKCS#12 does not open with its password (the hand-off is as it was)"
step "PKCS#12 built in staging"
[ -d "$handoff/archive" ] || mkdir -m 700 "$handoff/archive"
n=$(next_number "$handoff")
env_text "$handoff/archive/$n/receiver.pfx" "$gen/pfx.pass" > "$gen/kestrel.env"
# One sha256sum for the chain, the password file and the key's public half (in DER, on stdin).
# shellcheck disable=SC2046 # three lines of "<sum> <name>"; the names are ours, without spaces
set -- $(public_der "$public" | sha256sum "$live/chain.pem" "$gen/pfx.pass" -)
[ $# -eq 6 ] || fail "$handoff: sha256sum did not hash the chain, the password and the key"
{
  echo "chain_sha256 $1"
  echo "key_sha256 $5"
  echo "profile $profile"
  echo "password_source $source"
  # Only a CI-secret password is compared on the controller (by this slow, salted hash); a
  # generated one never leaves the host, and 100,000 rounds per endpoint would double the build.
  if [ "$source" = env ]; then
    salt="rounds=$rounds\$${salt:-$(openssl rand -hex 8)}"
    echo "password_hash $(openssl passwd -6 -salt "$salt" -in "$gen/pfx.pass")"
  fi
  echo "password_sha256 $3"
} > "$gen/pfx.inputs"
handoff_modes "$handoff" "$group" "$dirmode" "$filemode" "$gen"
mv -T "$gen" "$handoff/archive/$n"
step "hand-off generation $n in archive"
point "$handoff" live "archive/$n"
step "hand-off live names generation $n"
live_links_ok "$handoff" receiver.pfx pfx.pass kestrel.env || point_live "$handoff" receiver.pfx pfx.pass kestrel.env
# The record is root-only: moved to the key directory once what it describes is live.
mv -f "$handoff/archive/$n/pfx.inputs" "$keydir/pfx.inputs"
step "pfx.inputs recorded"
# Earlier PKCS#12s and their passwords are not kept: the key and certificates they came from are.
for old in "$handoff"/archive/*/; do
  old=${old%/}
  [ "${old##*/}" = "$n" ] || rm -rf "$old"
done
