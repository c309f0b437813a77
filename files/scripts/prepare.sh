#!/bin/sh
# Clear the endpoint's (or hand-off directory's) .staging/ and make .staging/gen, where the
# uploads that follow land; with a role (live or next), the key, its passphrase file and CSR of
# that generation are hard-linked in, so a certificate can be added beside them.
# Arguments: directory [role].
set -eu
umask 077
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
stage_generation "$1" "${2:-}"
