#!/bin/sh
# The CSR of the key that live or next names: subject CN alone (-config /dev/null keeps the
# host's openssl.cnf from adding fields), renamed into the generation. The key's passphrase file
# comes from the public-key cache when it has this key (open_key in lib.sh), which make_key.sh
# filled: openssl then reads the key once, to sign the request.
# Arguments: endpoint_dir role fqdn [public_key_cache].
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
dir=$1 role=$2 cn=$3 cache=${4:-}
stage_clear "$dir"
trap 'rm -rf "$dir/.staging"' EXIT # on every exit: also the tidy-up of a run that went well
open_key "$dir/$role/key.pem" "$cache" "$dir/$role/key.pass" ||
  fail "$dir/$role/key.pem: openssl cannot read it with its key.pass"
openssl req -new -config /dev/null -key "$dir/$role/key.pem" -passin "$passin" -subj "/CN=$cn" -sha256 \
  -out "$dir/.staging/csr.pem"
mv -f "$dir/.staging/csr.pem" "$dir/$role/csr.pem"
