#!/bin/sh
# The scheduled check: ci/scripts/audit.sh [INVENTORY...]
# Writes audit.json for the job's artifacts, prints the table, and fails when a certificate
# expires within BARS_AUDIT_DAYS (default 30) days, has expired or would be refused, or a client
# CRL is stale (next update fewer than BARS_CRL_DAYS, default 2, days away).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/bin/setup" --no-tools
"$root/bin/audit" --json "$@" > audit.json
exec "$root/bin/audit" --fail-within "${BARS_AUDIT_DAYS:-30}" --crl-within "${BARS_CRL_DAYS:-2}" "$@"
