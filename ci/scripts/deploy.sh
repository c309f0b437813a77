#!/bin/sh
# Deploy one inventory from a CI job: ci/scripts/deploy.sh INVENTORY [pyinfra options...]
#
# The SSH key and known_hosts come from CI secrets, as file paths (GitLab "File" variables) or as
# their text (GitHub secrets): BARS_SSH_PRIVATE_KEY, BARS_SSH_KNOWN_HOSTS. They are copied into a
# private directory that is removed when the job ends, and handed to pyinfra with --ssh-key and
# --data ssh_known_hosts_file (paths only; no secret is ever on a command line).
# Writes requests/<inventory>/ and status/<inventory>.json for the job's artifacts.
set -eu
inventory=${1:?usage: ci/scripts/deploy.sh INVENTORY [pyinfra options...]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${BARS_VENV:-$root/.venv}
"$root/bin/setup" --no-tools

secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT INT TERM

# copy_secret NAME VALUE: VALUE is a path to a file (copied) or the secret's text itself.
copy_secret() {
  (umask 077
   if [ -f "$2" ]; then cat "$2"; else printf '%s\n' "$2"; fi > "$secrets/$1")
}

if [ -n "${BARS_SSH_PRIVATE_KEY:-}" ]; then
  copy_secret id "$BARS_SSH_PRIVATE_KEY"
  set -- --ssh-key "$secrets/id" "$@"
fi
if [ -n "${BARS_SSH_KNOWN_HOSTS:-}" ]; then
  copy_secret known_hosts "$BARS_SSH_KNOWN_HOSTS"
  set -- --data "ssh_known_hosts_file=$secrets/known_hosts" "$@"
fi

"$venv/bin/pyinfra" -y "$@" "$root/inventories/$inventory.py" "$root/deploy.py"
