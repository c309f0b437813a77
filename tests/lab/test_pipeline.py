"""The GitLab pipeline, run by a real runner: gitlab-ci-local's shell executor runs the lab variant
(ci/lab/gitlab-ci.yml: the same job templates and scripts as ci/gitlab-ci.yml, lab inventory)
against a lab host. The SSH key and known_hosts reach the deploy only as CI variables."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.ca import LabCA
from lab.project import REPO, endpoint, fqdn

GITLAB_CI_LOCAL = REPO / ".tools" / "node_modules" / ".bin" / "gitlab-ci-local"
ENDPOINTS = (fqdn("LAB01"), fqdn("LAB02"))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Lab", "-c", "user.email=lab@example.invalid",
                           *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(lab, tmp_path_factory) -> Path:
    """A git repository holding the project as committed, its lab inventory aimed at the lab host
    with no SSH key or known_hosts of its own: those come from the pipeline's variables."""
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail("gitlab-ci-local is not installed: run bin/setup")
    root = tmp_path_factory.mktemp("pipeline") / "repo"
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    connection = {k: v for k, v in lab.host_data().items() if k not in ("ssh_key", "ssh_known_hosts_file")}
    (root / "inventories" / "lab.yml").write_text(yaml.safe_dump({
        "environment": "int",
        "settings": {"proxy_addresses": ["127.0.0.2"]},
        "hosts": {lab.name: {**connection, "endpoints": [endpoint("LAB01"), endpoint("LAB02")]}},
    }, sort_keys=False))
    for generated in ("requests/lab", "files/certs/lab", "files/ca/lab"):
        shutil.rmtree(root / generated, ignore_errors=True)
    # This repository ignores the lab's packs and certificates (they are per machine); here the lab
    # inventory stands for a real one, whose packs and certificates are committed.
    ignore = root / ".gitignore"
    ignore.write_text("".join(line for line in ignore.read_text().splitlines(keepends=True)
                              if line.strip() not in ("/requests/lab/", "/files/certs/lab/", "/files/ca/lab/")))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "lab project")
    subprocess.run(["git", "init", "-q", "--bare", str(root.parent / "packs.git")], check=True)
    return root


def pipeline(lab, repo: Path, *args: str) -> subprocess.CompletedProcess:
    """gitlab-ci-local with the lab variant, inside the lab's network namespace (as a runner on the
    hosts' network would be); CI secrets given as variables holding file paths."""
    argv = [*lab.netns_prefix(), str(GITLAB_CI_LOCAL), "--file", "ci/lab/gitlab-ci.yml", "--shell-isolation",
            "--variable", f"BARS_SSH_PRIVATE_KEY={lab.ssh_key}",
            "--variable", f"BARS_SSH_KNOWN_HOSTS={lab.known_hosts}",
            "--variable", f"BARS_VENV={REPO / '.venv'}",  # the runner's cached virtualenv
            "--variable", f"BARS_PACKS_REMOTE={repo.parent / 'packs.git'}",
            "--variable", "BARS_PACKS_MR=0",
            *args]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CI_", "GITLAB_"))}
    return subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def merged(lab, repo):
    """A push to main: deploy-lab, then propose-lab-packs."""
    return pipeline(lab, repo)


def test_the_push_pipeline_passes(merged):
    assert merged.returncode == 0, merged.stdout[-5000:] + merged.stderr[-2000:]
    assert " PASS  deploy-lab" in merged.stdout
    assert " PASS  propose-lab-packs" in merged.stdout


def test_the_deploy_jobs_artifacts_hold_the_request_packs_and_status(merged, repo, lab):
    artifacts = repo / ".gitlab-ci-local" / "artifacts" / "deploy-lab"
    for name in ENDPOINTS:
        csr = artifacts / "requests" / "lab" / f"{name}.csr"
        assert csr.read_text().startswith("-----BEGIN CERTIFICATE REQUEST-----")
        assert csr.read_bytes() == lab.ssh(f"cat /etc/bars-receiver/{name}/csr.pem").stdout.encode()
        assert (artifacts / "requests" / "lab" / f"{name}.md").is_file()
    status = json.loads((artifacts / "status" / "lab.json").read_text())
    assert {(e["fqdn"], e["state"]) for e in status["endpoints"]} == {(name, "requested") for name in ENDPOINTS}


def test_the_packs_were_proposed_on_a_branch(merged, repo):
    packs = repo.parent / "packs.git"
    branches = git(packs, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()
    (branch,) = branches
    assert branch.startswith("request-packs/lab-")
    files = git(packs, "ls-tree", "-r", "--name-only", branch).split()
    for name in ENDPOINTS:
        assert f"requests/lab/{name}.csr" in files and f"requests/lab/{name}.md" in files
    assert git(packs, "log", "-1", "--format=%s", branch).startswith("Request packs for lab")


@pytest.fixture(scope="module")
def due(merged, repo):
    """The packs merged, and LAB01's certificate (10 days left) committed."""
    artifacts = repo / ".gitlab-ci-local" / "artifacts" / "deploy-lab"
    shutil.copytree(artifacts / "requests", repo / "requests", dirs_exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    LabCA().sign_csr_file(repo / "requests" / "lab" / f"{ENDPOINTS[0]}.csr", repo, "lab",
                          not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=10))
    git(repo, "add", "-A", "requests", "files")
    git(repo, "commit", "-qm", "LAB01's certificate")
    return repo


def test_the_scheduled_audit_fails_on_a_certificate_due_for_renewal(due, lab):
    run = pipeline(lab, due, "--variable", "CI_PIPELINE_SOURCE=schedule")
    assert run.returncode != 0
    assert " FAIL  audit" in run.stdout
    assert f"audit: DUE lab: {ENDPOINTS[0]}: certificate expires in 9 days" in run.stdout
    assert "deploy-lab" not in run.stdout  # a schedule runs the audit only
    audit = json.loads((due / ".gitlab-ci-local" / "artifacts" / "audit" / "audit.json").read_text())
    lab_inventory = next(i for i in audit["inventories"] if i["inventory"] == "lab")
    states = {e["fqdn"]: e["state"] for e in lab_inventory["endpoints"]}
    assert states == {ENDPOINTS[0]: "renewing", ENDPOINTS[1]: "requested"}


def test_the_scheduled_audit_passes_with_a_year_left(due, lab):
    LabCA().sign_csr_file(due / "requests" / "lab" / f"{ENDPOINTS[0]}.csr", due, "lab")
    git(due, "commit", "-qam", "LAB01's certificate, renewed")
    run = pipeline(lab, due, "--variable", "CI_PIPELINE_SOURCE=schedule")
    assert run.returncode == 0, run.stdout[-4000:]
    assert " PASS  audit" in run.stdout
