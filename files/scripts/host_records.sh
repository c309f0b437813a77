#!/bin/sh
# Fact: what the deploy keeps on the host about itself, in one round trip: the scripts directory's
# mode and owner and each shipped script's SHA-256 (bars_receiver/shipping.py), then the
# managed-by record (bars_receiver/ownership.py).
# Arguments: managed_by_file scripts_dir
# shellcheck source=lib.sh
. "${BARS_LIB:-./lib.sh}"
echo "@@scripts $(stat -c '%a %u %g' "$2" 2>/dev/null)"
if cd "$2" 2>/dev/null; then sha256sum -- *.sh 2>/dev/null; fi
if [ -f "$1" ]; then
  echo "@@record"
  cat "$1"
fi
exit 0
