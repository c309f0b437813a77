#!/bin/sh
# The CSR of the key that live or next names: subject CN alone (-config /dev/null keeps the
# host's openssl.cnf from adding fields), renamed into the generation.
# Arguments: endpoint_dir role fqdn.
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
dir=$1 role=$2 cn=$3
stage_clear "$dir"
trap 'rm -rf "$dir/.staging"' EXIT
passin=$(key_passin "$dir/$role/key.pem" "$dir/$role/key.pass") ||
  fail "$dir/$role/key.pem: openssl cannot read it with its key.pass"
openssl req -new -config /dev/null -key "$dir/$role/key.pem" -passin "$passin" -subj "/CN=$cn" -sha256 \
  -out "$dir/.staging/csr.pem"
mv -f "$dir/.staging/csr.pem" "$dir/$role/csr.pem"
rm -rf "$dir/.staging"
