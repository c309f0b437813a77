"""Run the way CI runs it: --dry changes nothing, --diff shows the nginx change, absolute paths
from /, one inventory per host, --limit that matches nothing, debug-inventory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from lab.project import PYINFRA, Run, endpoint, fqdn

FIRST, SECOND, ADDED = fqdn("LAB01"), fqdn("LAB02"), fqdn("LAB03")
CONFIG = "/etc/nginx/conf.d/bars-receiver.conf"


def host_snapshot(lab) -> str:
    """Every file under /etc (the deploy's files, nginx, nftables, units) and /var/cache (the
    public-key cache) with mode, owner and hash."""
    return lab.ssh("find /etc /var/cache -xdev \\( -type f -o -type d -o -type l \\) -printf '%p %m %u %g %s\\n'"
                   " | sort; find /etc /var/cache -xdev -type f -exec sha256sum {} + | sort").stdout


def controller_snapshot(root) -> dict[str, str]:
    """Every file of the project copy (request packs included) by content hash."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file() and "__pycache__" not in path.parts
    }


def run_from_root(project, *args: str, inventory: str = "test", check: bool = True) -> Run:
    """``pyinfra`` with absolute paths, its working directory /."""
    argv = [*project.lab.netns_prefix(), str(PYINFRA), "-y", "--json", *args,
            str(project.root / "inventories" / f"{inventory}.py"), str(project.root / "deploy.py")]
    result = subprocess.run(argv, cwd="/", capture_output=True, text=True, timeout=600, env=dict(os.environ))
    run = Run(result.returncode, result.stdout, result.stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"pyinfra failed ({result.returncode}):\n{run.output[-4000:]}")
    return run


@pytest.fixture(scope="module")
def deployed(project):
    """Two endpoints with keys, CSRs and request packs, deployed from / with absolute paths."""
    project.write_inventory([endpoint("LAB01"), endpoint("LAB02")])
    run = run_from_root(project)
    return run


def test_deploy_works_from_root_with_absolute_paths(deployed, project, lab):
    assert deployed.changed > 0
    for name in (FIRST, SECOND):
        assert (project.root / "requests" / "test" / f"{name}.csr").is_file()
        assert lab.ssh(f"test -f /etc/bars-receiver/{name}/key.pem", check=False).returncode == 0
    assert not (project.root / "pyinfra-debug.log").exists()
    # and the same from / once more changes nothing
    assert run_from_root(project).changed == 0


@pytest.fixture(scope="module")
def pending(deployed, project, ca):
    """Pending changes: LAB01's certificate arrived (install, nginx serves it) and LAB03 is new."""
    ca.write_bundle(project.root, "test")
    ca.sign_csr_file(project.root / "requests" / "test" / f"{FIRST}.csr", project.root, "test")
    project.write_inventory([endpoint("LAB01"), endpoint("LAB02"), endpoint("LAB03")])
    return project


@pytest.fixture(scope="module")
def dry(pending, project, lab):
    host_before, controller_before = host_snapshot(lab), controller_snapshot(project.root)
    runs = {
        "plan": project.deploy("--dry", "--diff", check=False),
        "plain": subprocess.run(
            [*lab.netns_prefix(), str(PYINFRA), "--dry", "--diff", "inventories/test.py", "deploy.py"],
            cwd=project.root, capture_output=True, text=True, timeout=600,
        ),
        "yes": subprocess.run(
            [*lab.netns_prefix(), str(PYINFRA), "--dry", "-y", "inventories/test.py", "deploy.py"],
            cwd=project.root, capture_output=True, text=True, timeout=600,
        ),
    }
    return runs, (host_before, controller_before), (host_snapshot(lab), controller_snapshot(project.root))


def test_dry_run_changes_nothing_on_host_or_controller(dry):
    runs, before, after = dry
    assert all(getattr(run, "returncode") == 0 for run in runs.values()), {k: r.stderr[-2000:] for k, r in runs.items()}
    assert after[0] == before[0]
    assert after[1] == before[1]


def test_dry_run_lists_the_changes_request_packs_included(dry):
    runs, _, _ = dry
    plan = json.loads(runs["plan"].stdout[runs["plan"].stdout.index("{"):])["plan"]
    changing = {op["name"].split(" | ")[-1] for op in plan if op["hosts_with_change"] or op["hosts_with_conditional_change"]}
    packs = [name for name in changing if name.startswith("Request pack")]
    assert packs == [f"Request pack for {ADDED}"]  # one operation per host; SECOND's already matches the host
    assert f"Private key and CSR for {ADDED}" in changing
    assert f"Certificate for {FIRST}" in changing
    assert any(name.startswith("nginx TLS-MA configuration") for name in changing)
    for run in (runs["plain"], runs["yes"]):  # the table of changes, with and without -y
        assert f"Request pack for {ADDED}" in run.stderr
        assert f"Certificate for {FIRST}" in run.stderr


def test_dry_run_prints_the_status_table_as_it_would_be(dry):
    runs, _, _ = dry
    for run in (runs["plain"], runs["yes"]):
        table = run.stderr[run.stderr.index("--> BaRS receiver endpoints"):]
        assert "(dry run)" in table.splitlines()[0]
        rows = {line.split()[1]: line.split()[2] for line in table.splitlines()[2:] if line.strip()}
        assert rows == {FIRST: "active", SECOND: "requested", ADDED: "requested"}


def test_diff_shows_the_nginx_change(dry):
    runs, _, _ = dry
    output = runs["plain"].stderr
    assert f"Will modify {CONFIG}" in output
    diff = output[output.index(f"--- a{CONFIG}"):]
    assert f"+++ b{CONFIG}" in diff
    assert any(line.strip().startswith("+") and FIRST in line for line in diff.splitlines())
    assert "PRIVATE KEY" not in output


def test_after_the_dry_run_a_real_run_makes_those_changes(dry, project, lab):
    run = project.deploy()
    assert run.changed > 0
    assert (project.root / "requests" / "test" / f"{ADDED}.csr").is_file()
    assert FIRST in lab.ssh(f"cat {CONFIG}").stdout
    assert project.deploy().changed == 0


def test_second_inventory_naming_a_managed_host_is_refused_before_anything_changes(dry, project, lab):
    project.deploy()
    assert "inventory=test\nenvironment=int\n" == lab.ssh("cat /etc/bars-receiver/managed-by").stdout
    assert lab.ssh("stat -c '%a %U' /etc/bars-receiver/managed-by").stdout.split() == ["600", "root"]
    project.write_inventory([endpoint("LAB09")], name="test-b")
    host_before, controller_before = host_snapshot(lab), controller_snapshot(project.root)

    run = project.deploy(inventory="test-b", check=False)

    assert run.returncode != 0
    assert "is managed by inventory 'test'" in run.output
    assert "--data bars_take_over=test" in run.output
    assert "Renamed or split" in run.output
    assert host_snapshot(lab) == host_before
    assert controller_snapshot(project.root) == controller_before


def test_handing_the_host_over_deliberately(dry, project, lab):
    project.write_inventory([endpoint("LAB01"), endpoint("LAB02"), endpoint("LAB03")], name="test-c")
    for name in (FIRST, SECOND, ADDED):  # a rename: the packs and certificates move with the hosts
        for suffix in (".csr", ".md"):
            source = project.root / "requests" / "test" / f"{name}{suffix}"
            target = project.root / "requests" / "test-c" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    for kind in ("certs", "ca"):
        (project.root / "files" / kind / "test-c").mkdir(parents=True, exist_ok=True)
        for source in (project.root / "files" / kind / "test").iterdir():
            (project.root / "files" / kind / "test-c" / source.name).write_bytes(source.read_bytes())
    wrong = project.deploy("--data", "bars_take_over=other", inventory="test-c", check=False)
    assert wrong.returncode != 0 and "the host records 'test'" in wrong.output

    project.deploy("--data", "bars_take_over=test", inventory="test-c")

    assert lab.ssh("cat /etc/bars-receiver/managed-by").stdout == "inventory=test-c\nenvironment=int\n"
    assert FIRST in lab.ssh(f"cat {CONFIG}").stdout
    assert project.deploy(inventory="test-c").changed == 0
    # hand it back, so the old name works again
    project.deploy("--data", "bars_take_over=test-c", inventory="test")


def test_limit_matching_no_host_is_an_error(dry, project):
    run = project.deploy("--limit", "no-such-host", check=False)
    assert run.returncode != 0
    assert "--limit no-such-host matches no host of this inventory" in run.output
    assert "Traceback" not in run.output


def test_debug_inventory_masks_secrets(dry, project, lab):
    secret = "Debug-inventory-passphrase-never-shown"
    project.write_inventory([endpoint("LAB01")], settings={"key_passphrase_env": "BARS_LAB_DEBUG_PASS"}, name="dbg")
    result = subprocess.run(
        [str(PYINFRA), "inventories/dbg.py", "debug-inventory"], cwd=project.root, capture_output=True,
        text=True, timeout=120, env={**os.environ, "BARS_LAB_DEBUG_PASS": secret},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert FIRST in output and "listen_port" in output
    assert secret not in output
    assert "**********" in output


def test_status_json_and_the_attention_exit_status(dry, project):
    calm = project.deploy()
    document = json.loads((project.root / "status" / "test.json").read_text())
    table = calm.stderr[calm.stderr.index("--> BaRS receiver endpoints:"):].splitlines()[2:5]
    assert [(e["host"], e["fqdn"], e["state"]) for e in document["endpoints"]] == \
        [tuple(line.split()[:3]) for line in table]
    assert document["needs_attention"] is False and document["inventory"] == "test"
    first = next(e for e in document["endpoints"] if e["fqdn"] == FIRST)
    assert first["state"] == "active" and first["days_left"] >= 360 and first["expires"]

    due = project.deploy(env={"BARS_FAIL_ON_ATTENTION": "1", "BARS_ATTENTION_DAYS": "400"}, check=False)

    assert due.returncode == 3, due.output[-2000:]
    assert f"ATTENTION {project.lab.name} {FIRST}: the certificate expires in" in due.stderr
    assert due.changed == 0  # the run did its work (nothing to do); only the exit status says more
    document = json.loads((project.root / "status" / "test.json").read_text())
    assert document["needs_attention"] is True and document["attention_days"] == 400
    assert project.deploy(env={"BARS_FAIL_ON_ATTENTION": "1"}).returncode == 0
    other = project.root / "ci-status.json"
    project.deploy(env={"BARS_STATUS_JSON": str(other)})
    assert json.loads(other.read_text())["endpoints"] == json.loads((project.root / "status" / "test.json").read_text())["endpoints"]
