#!/bin/sh
# Propose the request packs a deploy job wrote back to the repository: ci/scripts/propose-packs.sh INVENTORY
#
# Run in a job that received the deploy job's requests/ artifact. When requests/<inventory>/
# differs from the commit, it is committed on a new branch and pushed; on GitLab, push options open
# a merge request into the default branch. Variables:
#   BARS_PACKS_REMOTE  where to push (default: this GitLab project over HTTPS)
#   BARS_PUSH_TOKEN    a project access token with write_repository (CI secret; read by git's
#                      credential helper from the environment, never on a command line)
#   BARS_PACKS_MR      1 (default): ask GitLab to open a merge request; 0: push the branch only
set -eu
inventory=${1:?usage: ci/scripts/propose-packs.sh INVENTORY}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if [ -z "$(git status --porcelain --untracked-files=all -- "requests/$inventory")" ]; then
  echo "propose-packs: requests/$inventory/ matches the commit; nothing to propose"
  exit 0
fi

branch="request-packs/$inventory-${CI_PIPELINE_ID:-${GITHUB_RUN_ID:-manual}}"
git checkout -q -B "$branch"
git add -A -- "requests/$inventory"
git -c user.name="${BARS_GIT_NAME:-BaRS receiver deploy}" -c user.email="${BARS_GIT_EMAIL:-bars-deploy@example.invalid}" \
  commit -q -m "Request packs for $inventory from pipeline ${CI_PIPELINE_ID:-${GITHUB_RUN_ID:-manual}}" \
  -m "Written by the deploy; commit them as the audit trail, then send what the notes say."
git --no-pager show --stat --format='propose-packs: %s' HEAD

remote=${BARS_PACKS_REMOTE:-https://${CI_SERVER_HOST:?}/${CI_PROJECT_PATH:?}.git}
set --
if [ "${BARS_PACKS_MR:-1}" = 1 ]; then
  set -- -o merge_request.create -o "merge_request.target=${CI_DEFAULT_BRANCH:-main}" \
    -o "merge_request.title=Request packs for $inventory" -o merge_request.remove_source_branch
fi
# shellcheck disable=SC2016  # the helper expands $BARS_PUSH_TOKEN itself, when git runs it
git -c credential.helper= -c 'credential.helper=!f() { echo username=oauth2; echo "password=$BARS_PUSH_TOKEN"; }; f' \
  push "$@" "$remote" "HEAD:refs/heads/$branch"
echo "propose-packs: pushed $branch to $remote"
