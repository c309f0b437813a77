#!/bin/sh
# Make the generation in .staging/gen (the key of the source role, hard-linked by stage_generation,
# and the uploaded cert.pem, chain.pem, ca.pem) the one nginx and the PKCS#12 use: check that the
# certificates are for that key, rename the directory into archive/<N>, then rename live onto
# it. Before that rename nothing served has changed; after it, all of it has. A renewal (source
# next) then drops the next pointer; its old live generation stays in archive/. Run once per
# endpoint by install_certificates.sh. The key is read by openssl here, never taken from the
# public-key cache: this is the last check before the certificate is served. With a cache
# directory, what openssl read goes into the cache afterwards, under the key file's identity as
# it is now (the hard link made its ctime new), for the PKCS#12 build and the next run's fact.
# Arguments: endpoint_dir source_role(live|next) [public_key_cache].
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
dir=$1 source=$2 cache=${3:-}
gen=$dir/.staging/gen
trap 'rm -rf "$dir/.staging"' EXIT # on every exit: also the tidy-up of a run that went well
unchanged="nothing was switched; live is as it was"
[ -f "$gen/key.pem" ] || fail "$dir: there is no staged key ($unchanged)"
open_key "$gen/key.pem" "" "$gen/key.pass" || fail "$dir/$source/key.pem: openssl cannot read it ($unchanged)"
key=$public
for f in cert.pem chain.pem; do
  [ -f "$gen/$f" ] || fail "$dir: the new $f was not staged ($unchanged)"
done
# cert.pem is exactly one certificate and chain.pem (what nginx and the PKCS#12 use) starts with
# exactly that text, so openssl's one read of chain.pem's first certificate vouches for both.
one_certificate "$gen/cert.pem" || fail "$dir: the new cert.pem is not exactly one PEM certificate ($unchanged)"
begins_with "$gen/chain.pem" "$block" || fail "$dir: the new chain.pem does not start with the new cert.pem ($unchanged)"
certkey=$(openssl x509 -in "$gen/chain.pem" -noout -pubkey 2>/dev/null) || fail "$dir: openssl cannot read the new chain.pem ($unchanged)"
[ "$certkey" = "$key" ] || fail "$dir: the new cert.pem is not for $source/key.pem: its public key differs ($unchanged)"
[ -f "$gen/ca.pem" ] || fail "$dir: the new ca.pem was not staged ($unchanged)"
chmod 0644 "$gen/cert.pem" "$gen/chain.pem" "$gen/ca.pem"
step "checked"
[ -d "$dir/archive" ] || mkdir -m 700 "$dir/archive"
n=$(next_number "$dir")
previous=''
if [ "$source" = next ]; then previous=$(pointer_number "$dir/live"); fi # for the message below
mv -T "$gen" "$dir/archive/$n"
step "generation $n in archive"
point "$dir" live "archive/$n"
step "live names generation $n"
if [ "$source" = next ]; then
  rm -f "$dir/next"
  step "next dropped"
fi
compat_links_ok "$dir" || point_compat "$dir"
if [ -n "$cache" ]; then remember_generation "$cache" "$dir" "$n" "$key"; fi
if [ "$source" = next ]; then
  echo "$dir: renewed; the previous key and certificate stay in $dir/archive/${previous:-?}"
fi
