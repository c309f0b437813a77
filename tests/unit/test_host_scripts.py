"""Host scripts run directly, as the deploy sends them (files/scripts/<name>.sh with lib.sh spliced
in: ``sh -c <text> bars-<name> ARGS``), in a temporary directory without a lab host. The host tools
they call (nginx, nft, ss, systemctl, ps, dpkg-query, hostname...) are small stub executables first
on PATH: each records its arguments and answers as the case needs. The lab tests run the same
scripts against the real tools; these show each script's decisions and what it leaves on disk."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from bars_receiver.retire import EndpointDirectories
from bars_receiver.scripts import script_text


class Host:
    """A temporary directory standing in for a host: stub tools in bin/, their calls in calls.log."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "calls.log"
        self.env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "STUB_LOG": str(self.log),
                    "STUB_DIR": str(root), "BARS_TEST_STOP": str(root / "test-stop")}

    def stub(self, name: str, body: str = "exit 0") -> None:
        """``name`` on PATH: logs ``name ARGS`` (one line), then runs ``body`` (sh)."""
        path = self.bin / name
        path.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> "$STUB_LOG"\n{body}\n')
        path.chmod(0o755)

    def run(self, name: str, *args: object, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", script_text(name), f"bars-{name}", *map(str, args)],
                              capture_output=True, text=True, env={**self.env, **env}, cwd=self.root)

    def calls(self, tool: str | None = None) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line for line in lines if tool is None or line.split(" ", 1)[0] == tool]


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def files(directory: Path) -> dict[str, bytes | str]:
    """Every file (content) and symlink (target) under ``directory``."""
    out: dict[str, bytes | str] = {}
    for p in sorted(directory.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(directory))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(directory))] = p.read_bytes()
    return out


# ---- nginx_swap.sh: a candidate goes live only after nginx accepted it alone and as a whole


@pytest.fixture
def swap(host: Host) -> Host:
    """nginx -t -c FILE (alone) exits $NGINX_ALONE, keeping FILE; nginx -t (whole) exits
    $NGINX_WHOLE, keeping what the live file held when nginx was asked."""
    host.stub("nginx", '''
if [ "$3" = -c ]; then cp "$4" "$STUB_DIR/alone-saw.conf"; exit "${NGINX_ALONE:-0}"; fi
cat "$LIVE" > "$STUB_DIR/whole-saw" 2>/dev/null || : > "$STUB_DIR/whole-saw"
exit "${NGINX_WHOLE:-0}"''')
    host.scratch = host.root / "scratch"
    host.scratch.mkdir(mode=0o700)
    host.live = host.root / "conf.d" / "bars-receiver.conf"
    host.live.parent.mkdir()
    host.candidate = host.root / "candidate.conf"
    host.candidate.write_text("server { listen 443 ssl; }  # new\n")
    host.env["LIVE"] = str(host.live)
    return host


def run_swap(host: Host, **env: str) -> subprocess.CompletedProcess:
    return host.run("nginx_swap", host.candidate, host.live, host.scratch, **env)


@pytest.mark.parametrize("previous", [True, False])
def test_swap_a_candidate_refused_alone_changes_nothing_and_is_removed(swap, previous):
    if previous:
        swap.live.write_text("old\n")
    result = run_swap(swap, NGINX_ALONE="1")
    assert result.returncode == 1
    assert "the new nginx configuration was refused; nothing was changed and nginx keeps serving" in result.stderr
    assert (swap.live.read_text() == "old\n") if previous else not swap.live.exists()
    assert not swap.candidate.exists()
    assert len(swap.calls("nginx")) == 1  # never asked as a whole: the candidate never went live
    alone = (swap.root / "alone-saw.conf").read_text()
    assert f"include {swap.candidate};" in alone and f"pid {swap.scratch}/nginx-test.pid;" in alone
    assert "include /etc/nginx/modules-enabled/*.conf;" in alone


def test_swap_refused_as_a_whole_restores_the_previous_file(swap):
    swap.live.write_text("old\n")
    swap.live.chmod(0o640)
    result = run_swap(swap, NGINX_WHOLE="1")
    assert result.returncode == 1
    assert "nginx as a whole refused the new configuration; the previous one was restored" in result.stderr
    assert (swap.root / "whole-saw").read_text() == "server { listen 443 ssl; }  # new\n"  # it was asked about the candidate
    assert swap.live.read_text() == "old\n" and mode(swap.live) == 0o640  # the previous file, as it was
    assert not swap.candidate.exists()
    assert sorted(p.name for p in swap.scratch.iterdir()) == ["nginx-test.conf"]
    assert swap.calls("nginx") == [f"nginx -q -t -c {swap.scratch}/nginx-test.conf", "nginx -q -t"]


def test_swap_refused_as_a_whole_with_no_previous_file_removes_it_again(swap):
    (swap.scratch / "previous.conf").write_text("left by an interrupted run\n")  # never restored
    result = run_swap(swap, NGINX_WHOLE="1")
    assert result.returncode == 1
    assert "it was removed again (there was none before)" in result.stderr
    assert not swap.live.exists() and not swap.candidate.exists()
    assert not (swap.scratch / "previous.conf").exists()


@pytest.mark.parametrize("previous", [True, False])
def test_swap_an_accepted_candidate_is_live_0644_and_scratch_keeps_only_the_test_config(swap, previous):
    if previous:
        swap.live.write_text("old\n")
        swap.live.chmod(0o600)
    result = run_swap(swap)
    assert result.returncode == 0, result.stderr
    assert swap.live.read_text() == "server { listen 443 ssl; }  # new\n" and mode(swap.live) == 0o644
    assert not swap.candidate.exists()
    assert sorted(p.name for p in swap.scratch.iterdir()) == ["nginx-test.conf"]  # no previous.conf left
    assert mode(swap.scratch / "nginx-test.conf") == 0o600
    assert len(swap.calls("nginx")) == 2


# ---- nginx_loaded.sh and nginx_reload.sh: the digest of what nginx serves from


@pytest.fixture
def served(host: Host) -> Host:
    """A live configuration naming certificate, key, CA, CRL and an njs module, each a file."""
    tls = host.root / "tls"
    tls.mkdir()
    host.named = {}
    for name in ("a-cert.pem", "b-key.pem", "c-ca.pem", "d-crl.pem", "e-check.js"):
        (tls / name).write_text(f"{name} content\n")
        host.named[name] = tls / name
    (tls / "unnamed.pem").write_text("not served\n")
    host.live = host.root / "bars-receiver.conf"
    host.live.write_text(
        "server {\n"
        f"    ssl_certificate {tls}/a-cert.pem;\n"
        f"    ssl_certificate_key {tls}/b-key.pem;\n"
        f"    ssl_client_certificate {tls}/c-ca.pem;\n"
        f"    ssl_crl {tls}/d-crl.pem;\n"
        f"    ssl_trusted_certificate {tls}/c-ca.pem;\n"
        f"js_import {tls}/e-check.js;\n"
        "}\n")
    host.marker = host.root / "nginx-loaded"
    return host


def digest(host: Host) -> str:
    """served_digest as lib.sh defines it: the live file, then each named file once, by path."""
    data = host.live.read_bytes() + b"".join(host.named[n].read_bytes() for n in sorted(host.named))
    return hashlib.sha256(data).hexdigest()


def loaded(host: Host) -> str:
    result = host.run("nginx_loaded", host.live, host.marker)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_loaded_is_current_only_while_the_marker_is_the_digest_of_live_and_every_named_file(served):
    assert loaded(served) == "stale"  # no marker: never reloaded by us
    served.marker.write_text(digest(served) + "\n")
    assert loaded(served) == "current"
    (served.root / "tls" / "unnamed.pem").write_text("changed, but nginx does not read it\n")
    assert loaded(served) == "current"
    for name, path in served.named.items():
        before = path.read_text()
        path.write_text(before + "renewed\n")
        assert loaded(served) == "stale", name
        path.write_text(before)
        assert loaded(served) == "current", name
    path = served.named["d-crl.pem"]
    path.unlink()
    assert loaded(served) == "stale"  # a named file gone is a change too
    path.write_text("d-crl.pem content\n")
    served.live.write_text(served.live.read_text() + "# edited by hand\n")
    assert loaded(served) == "stale"


@pytest.fixture
def reload(served: Host) -> Host:
    """nginx's master is pid 100 with workers 101 and 102; after SIGHUP (``systemctl kill``) the workers
    are $NEW_WORKERS (101 102 when the reload did not take), from the $AFTER-th ps call on."""
    served.stub("systemctl", '''
case $1 in
  show) echo 100 ;;
  kill) [ "$*" = "kill --kill-whom=main --signal=HUP nginx" ] && : > "$STUB_DIR/reloaded" ;;
esac''')
    served.stub("ps", '''
[ "$1 $2 $3" = "--ppid 100 -o" ] || exit 2
if [ -f "$STUB_DIR/reloaded" ]; then
  n=$(($(cat "$STUB_DIR/ps-after" 2>/dev/null || echo 0) + 1)); echo "$n" > "$STUB_DIR/ps-after"
  if [ "$n" -ge "${AFTER:-1}" ]; then for p in ${NEW_WORKERS:-101 102}; do echo "  $p"; done; exit 0; fi
fi
printf '  101\\n  102\\n' ''')
    served.stub("sleep")
    served.stub("tail", 'echo "[emerg] bind() to 0.0.0.0:443 failed (98: Address already in use)"')
    return served


@pytest.mark.parametrize("workers, after", [("201 202", "1"), ("101 203", "1"), ("201 202", "7")])
def test_reload_records_the_digest_once_new_workers_appear(reload, workers, after):
    reload.marker.write_text("an earlier digest\n")
    result = reload.run("nginx_reload", reload.live, reload.marker, NEW_WORKERS=workers, AFTER=after)
    assert result.returncode == 0, result.stderr
    assert reload.marker.read_text() == digest(reload) + "\n" and mode(reload.marker) == 0o600
    assert not Path(f"{reload.marker}.new").exists()
    assert reload.calls("systemctl").count("systemctl kill --kill-whom=main --signal=HUP nginx") == 1
    assert len(reload.calls("sleep")) == int(after) - 1  # polled until the new worker showed
    assert loaded(reload) == "current"


def test_reload_without_new_workers_fails_and_leaves_the_marker(reload):
    reload.marker.write_text("an earlier digest\n")
    result = reload.run("nginx_reload", reload.live, reload.marker)
    assert result.returncode == 1
    assert "nginx did not take the new configuration (no new worker processes within 5 s)" in result.stderr
    assert "Address already in use" in result.stderr  # nginx's log says why
    assert reload.marker.read_text() == "an earlier digest\n"
    assert not Path(f"{reload.marker}.new").exists()
    assert len(reload.calls("ps")) == 251 and len(reload.calls("sleep")) == 250  # 5 s of polling, then given up
    assert set(reload.calls("sleep")) == {"sleep 0.02"}
    assert loaded(reload) == "stale"  # so the next run reloads again


# ---- firewall_apply.sh: checked, applied in one transaction, then kept


@pytest.fixture
def firewall(host: Host) -> Host:
    """nft -c exits $NFT_CHECK; nft -f copies the file into live-table (the live state) or exits
    $NFT_APPLY; ss lists the ports in the file ``listening`` (which ``sleep`` replaces with
    ``listening.next`` when there is one); sync keeps what the kept file held when it ran."""
    host.stub("nft", '''
if [ "$1" = -c ]; then exit "${NFT_CHECK:-0}"; fi
[ "${NFT_APPLY:-0}" = 0 ] || exit "$NFT_APPLY"
cp "$2" "$STUB_DIR/live-table"''')
    host.stub("ss", '''
port=${2##*:}
if grep -qx "$port" "$STUB_DIR/listening" 2>/dev/null; then echo "LISTEN 0 511 0.0.0.0:$port 0.0.0.0:*"; fi''')
    host.stub("sleep", '[ ! -f "$STUB_DIR/listening.next" ] || mv "$STUB_DIR/listening.next" "$STUB_DIR/listening"')
    host.stub("sync", 'cat "$KEPT" > "$STUB_DIR/kept-at-sync" 2>/dev/null || echo none > "$STUB_DIR/kept-at-sync"; '
                      'stat -c %a "$1" > "$STUB_DIR/staged-mode"; cat "$1" > "$STUB_DIR/staged-at-sync"')
    host.kept = host.root / "etc" / "nftables.d" / "bars-receiver.nft"
    host.kept.parent.mkdir(parents=True)
    host.kept.write_text("old rules\n")
    host.kept.chmod(0o644)
    (host.root / "live-table").write_text("old rules\n")
    host.candidate = host.root / "candidate.nft"
    host.candidate.write_text("new rules\n")
    host.env["KEPT"] = str(host.kept)
    return host


def test_firewall_rules_nft_rejects_leave_the_kept_file_and_live_table(firewall):
    result = firewall.run("firewall_apply", firewall.candidate, firewall.kept, NFT_CHECK="1")
    assert result.returncode == 1
    assert f"nft rejected the new firewall rules (message above); the live table and {firewall.kept} are unchanged" \
        in result.stderr
    assert firewall.kept.read_text() == "old rules\n" and (firewall.root / "live-table").read_text() == "old rules\n"
    assert not firewall.candidate.exists()
    assert firewall.calls("nft") == [f"nft -c -f {firewall.candidate}"]


def test_firewall_an_apply_that_fails_keeps_the_old_kept_file(firewall):
    result = firewall.run("firewall_apply", firewall.candidate, firewall.kept, NFT_APPLY="1")
    assert result.returncode != 0
    assert firewall.kept.read_text() == "old rules\n" and not firewall.candidate.exists()
    assert not (firewall.kept.parent / ".bars-receiver.nft.new").exists()


def test_firewall_accepted_rules_are_applied_then_kept_0644_by_rename(firewall):
    result = firewall.run("firewall_apply", firewall.candidate, firewall.kept)
    assert result.returncode == 0, result.stderr
    assert firewall.calls("nft") == [f"nft -c -f {firewall.candidate}", f"nft -f {firewall.candidate}"]
    assert (firewall.root / "live-table").read_text() == "new rules\n"
    assert firewall.kept.read_text() == "new rules\n" and mode(firewall.kept) == 0o644
    staged = firewall.kept.parent / ".bars-receiver.nft.new"
    assert firewall.calls("sync") == [f"sync {staged}"]
    # synced under the temporary name while the kept file was still the old one, then renamed
    assert (firewall.root / "kept-at-sync").read_text() == "old rules\n"
    assert (firewall.root / "staged-at-sync").read_text() == "new rules\n"
    assert (firewall.root / "staged-mode").read_text().strip() == "644"
    assert not staged.exists() and not firewall.candidate.exists()
    assert firewall.calls("ss") == []  # no serving port: no listener check


def test_firewall_first_kept_file_in_a_new_directory(firewall):
    kept = firewall.root / "new-dir" / "rules.nft"
    result = firewall.run("firewall_apply", firewall.candidate, kept)
    assert result.returncode == 0, result.stderr
    assert kept.read_text() == "new rules\n" and mode(kept) == 0o644


def test_firewall_release_waits_until_nginx_listens_on_the_serving_port_alone(firewall):
    (firewall.root / "listening").write_text("443\n8443\n")  # old workers still finishing on 443
    (firewall.root / "listening.next").write_text("8443\n")
    result = firewall.run("firewall_apply", firewall.candidate, firewall.kept, 8443, "443 444")
    assert result.returncode == 0, result.stderr
    assert len(firewall.calls("sleep")) == 1
    ss = firewall.calls("ss")
    assert "ss -Htln sport = :8443" in ss and "ss -Htln sport = :443" in ss and "ss -Htln sport = :444" in ss
    assert firewall.kept.read_text() == "new rules\n"
    tools = [line.split(" ", 1)[0] for line in firewall.calls()]
    assert max(i for i, t in enumerate(tools) if t == "ss") < tools.index("nft")  # confirmed before anything applied


@pytest.mark.parametrize("listening, still", [("443\n8443\n", "still listening: 443"),
                                              ("443\n", "still listening: 443"),
                                              ("", "still listening: none on 8443")])
def test_firewall_release_gives_up_with_ports_still_filtered(firewall, listening, still):
    (firewall.root / "listening").write_text(listening)
    result = firewall.run("firewall_apply", firewall.candidate, firewall.kept, 8443, "443")
    assert result.returncode == 1
    assert f"nginx is not (yet) listening on port 8443 alone ({still});" in result.stderr
    assert "ports 443 stay filtered, as before; the next run releases them" in result.stderr
    assert firewall.calls("nft") == [] and len(firewall.calls("sleep")) == 49
    assert firewall.kept.read_text() == "old rules\n" and (firewall.root / "live-table").read_text() == "old rules\n"
    assert not firewall.candidate.exists()


# ---- nft_table.sh: the table as JSON, nothing when absent, a failure when nft fails


@pytest.fixture
def nft(host: Host) -> Host:
    host.stub("nft", '''
if [ "$1 $2" = "list tables" ]; then
  [ "${NFT_FAIL:-0}" = 0 ] || { echo "netlink: Error: Operation not permitted" >&2; exit 1; }
  printf '%b' "$TABLES"; exit 0
fi
[ "$1" = -j ] || exit 2
[ "${NFT_JSON_FAIL:-0}" = 0 ] || exit 1
echo '{"nftables": [{"table": {"family": "inet", "name": "bars_receiver", "handle": 7}}]}' ''')
    return host


def test_nft_table_present_prints_the_json(nft):
    result = nft.run("nft_table", "inet", "bars_receiver", TABLES="table inet filter\\ntable inet bars_receiver\\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"nftables": [{"table": {"family": "inet", "name": "bars_receiver", "handle": 7}}]}\n'
    assert nft.calls("nft") == ["nft list tables inet", "nft -j list table inet bars_receiver"]


@pytest.mark.parametrize("tables", ["", "table inet filter\\n", "table inet bars_receiver_old\\ntable inet bars\\n",
                                    "table ip bars_receiver\\n"])
def test_nft_table_absent_prints_nothing(nft, tables):
    result = nft.run("nft_table", "inet", "bars_receiver", TABLES=tables)
    assert result.returncode == 0 and result.stdout == ""
    assert nft.calls("nft") == ["nft list tables inet"]


@pytest.mark.parametrize("which", ["NFT_FAIL", "NFT_JSON_FAIL"])
def test_nft_table_a_failing_nft_fails_the_fact(nft, which):
    result = nft.run("nft_table", "inet", "bars_receiver", TABLES="table inet bars_receiver\\n", **{which: "1"})
    assert result.returncode != 0 and result.stdout == ""


# ---- endpoint_dirs.sh: names only, changes nothing


def test_endpoint_dirs_names_endpoints_handoffs_and_records_only(host):
    base, app = host.root / "base", host.root / "app"
    for d in ("a.nhs.uk/archive/1", "b.nhs.uk", ".staging", ".app-told", ".retired/c.nhs.uk/20260101T000000Z",
              ".retired/c.nhs.uk/20260102T000000Z", ".retired/d.nhs.uk/20260103T000000Z/key"):
        (base / d).mkdir(parents=True)
    (base / "managed-by").write_text("inventory=int\n")
    (base / ".retired/c.nhs.uk/20260101T000000Z/RETIRED").write_text("fqdn c.nhs.uk\n")
    (base / ".retired/d.nhs.uk/20260103T000000Z/RETIRED").write_text("fqdn d.nhs.uk\n")
    for d in ("a.nhs.uk", "e.nhs.uk", ".staging"):
        (app / d).mkdir(parents=True)
    (app / "kestrel.env").write_text("not a directory\n")
    before = files(host.root)
    result = host.run("endpoint_dirs", base, app)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "@@endpoint a.nhs.uk", "@@endpoint b.nhs.uk",
        "@@retired c.nhs.uk/20260101T000000Z", "@@retired d.nhs.uk/20260103T000000Z",
        "@@handoff a.nhs.uk", "@@handoff e.nhs.uk"]
    assert files(host.root) == before
    names = EndpointDirectories().process(result.stdout.splitlines())
    assert names.endpoints == ["a.nhs.uk", "b.nhs.uk"] and names.handoffs == ["a.nhs.uk", "e.nhs.uk"]
    assert names.archived("c.nhs.uk") == ["c.nhs.uk/20260101T000000Z"]


@pytest.mark.parametrize("make", [False, True])
def test_endpoint_dirs_missing_or_empty_directories_list_nothing(host, make):
    base, app = host.root / "base", host.root / "app"
    if make:
        base.mkdir()
        app.mkdir()
    result = host.run("endpoint_dirs", base, app)
    assert result.returncode == 0 and result.stdout == ""
    assert base.exists() == make and app.exists() == make


# ---- nginx_default_site.sh: archive Debian's default site only when it is the package's file

DEFAULT_SITE = b"server {\n\tlisten 80 default_server;\n}\n"


@pytest.fixture
def site(host: Host) -> Host:
    """/etc/nginx (BARS_NGINX_DIR) with the package's sites-available/default enabled by the
    absolute link Debian makes; dpkg-query prints $CONFFILES (what dpkg recorded) or fails."""
    nginx = (host.root / "etc-nginx").resolve()
    (nginx / "sites-available").mkdir(parents=True)
    (nginx / "sites-enabled").mkdir()
    (nginx / "sites-available" / "default").write_bytes(DEFAULT_SITE)
    (nginx / "sites-enabled" / "default").symlink_to(nginx / "sites-available" / "default")
    host.nginx = nginx
    host.enabled = nginx / "sites-enabled" / "default"
    host.stub("dpkg-query", '''
[ "$*" = '-W -f=${Conffiles}\\n nginx-common' ] || exit 2
[ -n "${CONFFILES:-}" ] || { echo "dpkg-query: no packages found matching nginx-common" >&2; exit 1; }
printf '%b' "$CONFFILES"''')
    md5 = hashlib.md5(DEFAULT_SITE).hexdigest()
    host.env.update(BARS_NGINX_DIR=str(nginx), CONFFILES=(
        f" /etc/nginx/nginx.conf 0123456789abcdef0123456789abcdef\\n /etc/nginx/sites-available/default {md5}\\n"
        " /etc/nginx/snippets/snakeoil.conf fedcba9876543210fedcba9876543210\\n"))
    return host


def site_state(host: Host, **env: str) -> str:
    result = host.run("nginx_default_site", "state", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_default_site_states(site):
    assert site_state(site) == "untouched"
    site.enabled.unlink()
    site.enabled.symlink_to("../sites-available/default")  # the relative link some installs make
    assert site_state(site) == "untouched"
    assert site_state(site, CONFFILES="") == "modified"  # dpkg has no record: not provably the package's
    assert site_state(site, CONFFILES=" /etc/nginx/sites-available/default 00000000000000000000000000000000\\n") \
        == "modified"
    (site.nginx / "sites-available" / "default").write_bytes(DEFAULT_SITE + b"# local\n")
    assert site_state(site) == "modified"
    (site.nginx / "sites-available" / "default").write_bytes(DEFAULT_SITE)
    site.enabled.unlink()
    site.enabled.write_bytes(DEFAULT_SITE)  # a copy, not the package's file
    assert site_state(site) == "modified"
    site.enabled.unlink()
    (site.nginx / "sites-available" / "other").write_bytes(DEFAULT_SITE)
    site.enabled.symlink_to(site.nginx / "sites-available" / "other")
    assert site_state(site) == "modified"
    site.enabled.unlink()
    site.enabled.symlink_to(site.nginx / "sites-available" / "gone")
    assert site_state(site) == "modified"  # a dangling link is still there
    site.enabled.unlink()
    assert site_state(site) == "absent"


def test_default_site_archive_moves_the_untouched_link_and_deletes_nothing(site):
    destination = site.root / "nginx-default-site.disabled"
    result = site.run("nginx_default_site", "archive", destination)
    assert result.returncode == 0, result.stderr
    assert not site.enabled.exists() and not site.enabled.is_symlink()
    assert os.readlink(destination) == str(site.nginx / "sites-available" / "default")
    assert (site.nginx / "sites-available" / "default").read_bytes() == DEFAULT_SITE
    assert site_state(site) == "absent"


def test_default_site_archive_leaves_a_modified_site_in_place(site):
    (site.nginx / "sites-available" / "default").write_bytes(DEFAULT_SITE + b"# local\n")
    destination = site.root / "nginx-default-site.disabled"
    result = site.run("nginx_default_site", "archive", destination)
    assert result.returncode == 1
    assert "the default site is not the package's untouched file; it was left in place" in result.stderr
    assert site.enabled.is_symlink() and not destination.exists() and not destination.is_symlink()


def test_default_site_usage(site):
    result = site.run("nginx_default_site")
    assert result.returncode == 2 and "usage:" in result.stderr


# ---- retire.sh: both directories moved, with a record; nothing deleted

FQDN = "rx700.acme.thirdparty.nhs.uk"


def certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FQDN)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x1234ABCD).not_valid_before(datetime.datetime(2026, 1, 1))
            .not_valid_after(datetime.datetime(2027, 1, 1, 12, 0, 0)).sign(key, hashes.SHA256()))


@pytest.fixture
def retire(host: Host) -> Host:
    """base_dir/<fqdn>/ (a generation with a certificate, reached through live/) and its hand-off
    directory; ``hostname`` and ``date`` stubbed ($STAMP)."""
    host.base, host.app = host.root / "base", host.root / "app"
    gen = host.base / FQDN / "archive" / "1"
    gen.mkdir(parents=True)
    host.cert = certificate()
    (gen / "cert.pem").write_bytes(host.cert.public_bytes(Encoding.PEM))
    (gen / "key.pem").write_text("a key\n")
    (host.base / FQDN / "live").symlink_to("archive/1")
    for name in ("cert.pem", "key.pem"):
        (host.base / FQDN / name).symlink_to(f"live/{name}")
    (host.app / FQDN / "archive" / "1").mkdir(parents=True)
    (host.app / FQDN / "archive" / "1" / "receiver.pfx").write_bytes(b"pfx")
    (host.app / FQDN / "live").symlink_to("archive/1")
    (host.base / "other.nhs.uk").mkdir()
    host.stub("hostname", "echo rx-host-1")
    host.stub("date", 'echo "$STAMP"')
    host.env["STAMP"] = "20261130T201500Z"
    return host


def record(path: Path) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in path.read_text().splitlines())


def test_retire_moves_both_directories_whole_with_a_record(retire):
    key_files, handoff_files = files(retire.base / FQDN), files(retire.app / FQDN)
    result = retire.run("retire", retire.base, retire.app, FQDN, "int")
    assert result.returncode == 0, result.stderr
    dest = retire.base / ".retired" / FQDN / "20261130T201500Z"
    assert result.stdout == f"{FQDN}: retired; archived in {dest} (record: {dest}/RETIRED)\n"
    assert not (retire.base / FQDN).exists() and not (retire.app / FQDN).exists()
    assert files(dest / "key") == key_files and files(dest / "handoff") == handoff_files  # nothing lost
    assert (retire.base / "other.nhs.uk").is_dir()
    assert {mode(retire.base / ".retired"), mode(dest.parent), mode(dest)} == {0o700}
    assert mode(dest / "RETIRED") == 0o600
    fingerprint = ":".join(f"{b:02X}" for b in retire.cert.fingerprint(hashes.SHA256()))
    assert record(dest / "RETIRED") == {
        "fqdn": FQDN, "retired_at": "20261130T201500Z", "inventory": "int", "host": "rx-host-1",
        "certificate_serial": "1234ABCD", "certificate_sha256": fingerprint,
        "certificate_subject": f"CN={FQDN}", "certificate_not_after": "Jan  1 12:00:00 2027 GMT",
        "key_directory": f"{retire.base}/{FQDN} -> {dest}/key",
        "handoff_directory": f"{retire.app}/{FQDN} -> {dest}/handoff"}
    listed = retire.run("endpoint_dirs", retire.base, retire.app).stdout.splitlines()
    assert listed == ["@@endpoint other.nhs.uk", f"@@retired {FQDN}/20261130T201500Z"]


def test_retire_with_nothing_on_the_host_changes_nothing(retire):
    result = retire.run("retire", retire.base, retire.app, "gone.nhs.uk", "int")
    assert result.returncode == 0 and result.stdout == "gone.nhs.uk: nothing to retire\n"
    assert not (retire.base / ".retired").exists()


def test_retire_the_key_directory_alone(retire):
    result = retire.run("retire", retire.base, retire.root / "no-app-dir", FQDN, "int")
    assert result.returncode == 0, result.stderr
    dest = retire.base / ".retired" / FQDN / "20261130T201500Z"
    fields = record(dest / "RETIRED")
    assert fields["certificate_serial"] == "1234ABCD" and "handoff_directory" not in fields
    assert (dest / "key" / "archive" / "1" / "cert.pem").is_file() and not (dest / "handoff").exists()
    assert (retire.app / FQDN).is_dir()  # not named: not touched


def test_retire_a_handoff_directory_alone_records_no_certificate(retire):
    shutil.rmtree(retire.base / FQDN)
    result = retire.run("retire", retire.base, retire.app, FQDN, "int")
    assert result.returncode == 0, result.stderr
    dest = retire.base / ".retired" / FQDN / "20261130T201500Z"
    fields = record(dest / "RETIRED")
    assert fields["certificate"] == "none" and "key_directory" not in fields
    assert files(dest / "handoff") == {"archive/1/receiver.pfx": b"pfx", "live": "-> archive/1"}
    assert not (retire.app / FQDN).exists()


def test_retire_interrupted_keeps_the_record_beside_what_moved_and_the_next_run_moves_the_rest(retire):
    (retire.root / "test-stop").write_text("retire:1")  # killed after the record, before any move
    result = retire.run("retire", retire.base, retire.app, FQDN, "int")
    assert result.returncode == -9
    first = retire.base / ".retired" / FQDN / "20261130T201500Z"
    assert (first / "RETIRED").is_file() and (retire.base / FQDN).is_dir() and (retire.app / FQDN).is_dir()
    (retire.root / "test-stop").write_text("retire:2")  # killed after moving the key directory
    again = retire.run("retire", retire.base, retire.app, FQDN, "int")
    assert again.returncode == 1 and f"{first} already exists; run again in a second" in again.stderr
    assert (retire.base / FQDN).is_dir()  # the same second: nothing moved
    result = retire.run("retire", retire.base, retire.app, FQDN, "int", STAMP="20261130T201501Z")
    assert result.returncode == -9
    second = retire.base / ".retired" / FQDN / "20261130T201501Z"
    assert (second / "key" / "archive" / "1" / "cert.pem").is_file() and (retire.app / FQDN).is_dir()
    (retire.root / "test-stop").unlink()
    result = retire.run("retire", retire.base, retire.app, FQDN, "int", STAMP="20261130T201502Z")
    assert result.returncode == 0, result.stderr
    third = retire.base / ".retired" / FQDN / "20261130T201502Z"
    assert files(third / "handoff")["archive/1/receiver.pfx"] == b"pfx" and not (retire.app / FQDN).exists()
    assert record(third / "RETIRED")["certificate"] == "none"


# ---- app_reload.sh: tell the application, check it is active, then record


@pytest.fixture
def app(host: Host) -> Host:
    """systemctl: cat exits $UNIT (0: the unit exists), the action exits $ACTION_RC, is-active
    prints $STATE. Two endpoints with a live hand-off generation, one without."""
    host.stub("systemctl", '''
case $1 in
  cat) exit "${UNIT:-0}" ;;
  restart | reload) exit "${ACTION_RC:-0}" ;;
  is-active) echo "${STATE:-active}"; [ "${STATE:-active}" = active ] || exit 3 ;;
  *) exit 2 ;;
esac''')
    host.apps, host.records = host.root / "app", host.root / "base" / ".app-told"
    for fqdn, n in (("a.nhs.uk", "2"), ("b.nhs.uk", "1")):
        (host.apps / fqdn / "archive" / n).mkdir(parents=True)
        (host.apps / fqdn / "live").symlink_to(f"archive/{n}")
    (host.apps / "c.nhs.uk").mkdir()  # no PFX yet
    return host


def tell(host: Host, action: str = "restart", **env: str) -> subprocess.CompletedProcess:
    return host.run("app_reload", "bars-app.service", action, host.records, host.apps,
                    "b.nhs.uk,c.nhs.uk,a.nhs.uk", **env)


@pytest.mark.parametrize("action", ["restart", "reload"])
def test_app_told_and_active_is_recorded(app, action):
    result = tell(app, action)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"bars-app.service: {action}ed, active\n"
    assert app.calls("systemctl") == ["systemctl cat -- bars-app.service", f"systemctl {action} -- bars-app.service",
                                      "systemctl is-active -- bars-app.service"]
    told = app.records / "bars-app.service"
    assert told.read_text() == "b.nhs.uk=archive/1 a.nhs.uk=archive/2"  # what app_state.sh compares
    assert mode(told) == 0o600 and mode(app.records) == 0o700
    assert sorted(p.name for p in app.records.iterdir()) == ["bars-app.service"]


def test_app_unknown_action_is_refused_before_systemctl(app):
    result = tell(app, "stop")
    assert result.returncode == 1
    assert "bars-app.service: unknown action 'stop' (restart or reload)" in result.stderr
    assert app.calls() == [] and not app.records.exists()


@pytest.mark.parametrize("env, message, actions", [
    ({"UNIT": "1"}, "bars-app.service: no such systemd unit on this host; install the application, or fix app_unit", 0),
    ({"ACTION_RC": "1"}, "bars-app.service: systemctl restart failed (journalctl -u bars-app.service says why)", 1),
    ({"STATE": "failed"},
     "bars-app.service is failed after systemctl restart, not active (journalctl -u bars-app.service says why)", 1),
    ({"STATE": "activating"}, "bars-app.service is activating after systemctl restart, not active", 1),
])
def test_app_not_active_fails_and_records_nothing(app, env, message, actions):
    app.records.mkdir(mode=0o700, parents=True)
    (app.records / "bars-app.service").write_text("b.nhs.uk=archive/0")  # told last time
    result = tell(app, **env)
    assert result.returncode == 1 and message in result.stderr
    assert app.calls("systemctl").count("systemctl restart -- bars-app.service") == actions
    assert (app.records / "bars-app.service").read_text() == "b.nhs.uk=archive/0"  # so the next run tells it again
    assert sorted(p.name for p in app.records.iterdir()) == ["bars-app.service"]


def test_app_a_record_that_cannot_be_written_fails(app):
    app.records.parent.mkdir()
    app.records.write_text("a file where the directory should be\n")
    result = tell(app)
    assert result.returncode == 1
    assert f"bars-app.service: restarted, but the record in {app.records} could not be written" in result.stderr
