"""A real Debian 12 lab host booted with systemd-nspawn in its own network namespace.

Why: the deploy provisions nginx, nftables rules and certificates, and the
claims worth testing ("the firewall comes back after a reboot") need a real
systemd, a real sshd and a real reboot, not mocks. A container booted by
systemd-nspawn gives all of that in a few seconds, and a private network
namespace keeps every packet on a loopback that nothing else can see.

Layout:
  /var/cache/bars-lab/rootfs-<key>.tar   debootstrap result, reused between labs
  /var/lib/bars-lab/<name>/              one lab: rootfs/, id_ed25519(.pub),
                                         known_hosts, supervisor.pid, nspawn.pid,
                                         console.log

Process model: ``up`` starts a small detached supervisor (this file, run with
the hidden ``_supervise`` command) that runs systemd-nspawn and starts it again
when it exits with status 133, which is how nspawn reports a reboot of the
container. So ``systemctl reboot`` inside the lab (from ``Lab.reboot``, a test
or a deploy) is a real reboot that keeps the same root filesystem. Only the
PIDs recorded in the state dir are ever signalled.

CLI: python3 -m lab.host up|down|status|ssh|reboot [--name NAME]
Stdlib only; must run as root.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

DEFAULT_NAME = "bars-lab"
SUITE = "bookworm"
VARIANT = "minbase"
INCLUDE = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "nginx", "nftables",
    "openssl", "python3", "iproute2", "procps", "libnginx-mod-http-js",
)
CONTROLLER_PACKAGES = (
    "debootstrap", "systemd-container", "nftables", "openssl", "curl",
    "iproute2", "openssh-client",
)
CACHE_DIR = Path("/var/cache/bars-lab")
STATE_ROOT = Path("/var/lib/bars-lab")
LAB_ADDRESS = "127.0.0.1"
UPSTREAM_UNIT = "bars-lab-upstream.service"
PFX_APP_UNIT = "bars-lab-pfx-app@.service"
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
NSPAWN_REBOOT_STATUS = 133
# Units that only slow a boot down or reach for a network the lab does not have.
MASKED_UNITS = (
    "systemd-networkd-wait-online.service",
    "apt-daily.timer", "apt-daily-upgrade.timer",
    "apt-daily.service", "apt-daily-upgrade.service",
    "man-db.timer", "e2scrub_all.timer", "fstrim.timer",
)
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class LabError(Exception):
    """A lab operation failed; the message is one line meant for a person."""


# ---------------------------------------------------------------- small helpers

def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a controller command and turn failure into a one-line LabError.

    Why: callers and the CLI want "debootstrap failed: <reason>", not a traceback.
    """
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("text", True)
    try:
        proc = subprocess.run(argv, **kwargs)
    except FileNotFoundError as exc:
        raise LabError(f"{what} failed: {exc.filename} not found") from exc
    if proc.returncode != 0:
        raise LabError(f"{what} failed: {_last_line(proc.stderr or proc.stdout) or f'exit status {proc.returncode}'}")
    return proc


def _last_line(text: str | None) -> str:
    """The last non-empty line of some output, which is usually the reason."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tail(path: Path, lines: int = 15) -> str:
    """The end of a log file, to put into an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # the console is coloured
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a small file with the given permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as mounts:
        points = [line.split()[4].replace("\\040", " ") for line in mounts]
    return sorted({p for p in points if (p + "/").startswith(prefix)}, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Delete a directory tree, but never through a mount inside it.

    Why: an interrupted debootstrap leaves proc, sys and sometimes bind mounts
    of the host's /dev inside its target; deleting through those would delete
    the host's files. Such mounts are unmounted first, and if one stays, the
    tree is left alone with an error instead.
    """
    if not path.exists():
        return
    for point in _mounts_under(path):
        if subprocess.run(["umount", point], stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
    busy = _mounts_under(path)
    if busy:
        raise LabError(f"{busy[0]} is still mounted; not deleting {path}")
    shutil.rmtree(path)


def _require_root() -> None:
    """Everything here (netns, nspawn, /var/lib) needs root; say so up front."""
    if os.geteuid() != 0:
        raise LabError("must run as root")


def _check_name(name: str) -> str:
    """The name becomes a netns, a machine name, a hostname and a directory."""
    if not NAME_RE.match(name or ""):
        raise LabError(f"invalid lab name {name!r}: use lowercase letters, digits and '-', 1-31 chars")
    return name


def _package_installed(package: str) -> bool:
    """True when dpkg says the package is installed."""
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    return proc.returncode == 0 and proc.stdout.strip() == "install ok installed"


def ensure_controller_packages() -> None:
    """Install what the lab needs on this machine; a fresh CI machine has none of it."""
    missing = [p for p in CONTROLLER_PACKAGES if not _package_installed(p)]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run(["apt-get", "update"], "apt-get update", env=env)
    _run(["apt-get", "install", "-y", "--no-install-recommends", *missing],
         f"apt-get install {' '.join(missing)}", env=env)


# ---------------------------------------------------------------- processes

def _pid_alive(pid: int | None) -> bool:
    """True when the process exists and is not a zombie waiting to be reaped."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    """A process's argv, or [] when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _read_pid(path: Path, *markers: str) -> int | None:
    """The PID recorded in a file, if that process still runs what we started.

    Why the markers: PIDs get reused, and we must never signal a process we did
    not start, so the recorded PID only counts while its command line still
    holds every marker as an argument (e.g. 'systemd-nspawn' and this lab's
    rootfs path).
    """
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    argv = _cmdline(pid)
    if not _pid_alive(pid) or not all(m in argv for m in markers):
        return None
    return pid


def _wait_gone(pids: list[int], timeout: float) -> bool:
    """Wait until none of the PIDs is alive; False when the time ran out."""
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _signal(pid: int | None, sig: int) -> None:
    """Signal one recorded PID, ignoring that it may just have exited."""
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# ---------------------------------------------------------------- network namespace

def _netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def _netns_create(name: str) -> None:
    """A private network namespace with only loopback up: nothing leaves the machine."""
    _run(["ip", "netns", "add", name], f"ip netns add {name}")
    _run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], "bringing up lo in the lab netns")


def _netns_delete(name: str) -> None:
    if _netns_exists(name):
        _run(["ip", "netns", "del", name], f"ip netns del {name}")


# ---------------------------------------------------------------- root filesystem cache

def apt_mirror(suite: str = SUITE) -> str:
    """The Debian mirror this machine itself uses for `suite`.

    Why: read at run time so the repo never names a mirror, and the lab is
    built from wherever this machine is allowed to fetch packages.
    """
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        mirror = _mirror_from_deb822(Path(path).read_text(errors="replace"), suite)
        if mirror:
            return mirror
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        with contextlib.suppress(OSError):
            mirror = _mirror_from_one_line(Path(path).read_text(errors="replace"), suite)
            if mirror:
                return mirror
    raise LabError(f"no apt source for {suite} found in /etc/apt/sources.list(.d)")


def _mirror_from_deb822(text: str, suite: str) -> str | None:
    """First URI of a deb822 stanza of type deb whose Suites include `suite`."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if (fields.get("enabled", "yes").lower() != "no"
                and "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
                and fields.get("uris")):
            return fields["uris"].split()[0]
    return None


def _mirror_from_one_line(text: str, suite: str) -> str | None:
    """URI of the first `deb URI suite ...` line of a classic sources.list."""
    for line in text.splitlines():
        line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] == "deb" and line[2] == suite:
            return line[1]
    return None


def cache_tarball() -> Path:
    """Where the debootstrap result for this suite and package list lives."""
    key = json.dumps({"suite": SUITE, "variant": VARIANT, "include": sorted(INCLUDE)}, sort_keys=True)
    return CACHE_DIR / f"rootfs-{SUITE}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.tar"


def ensure_rootfs_cache() -> Path:
    """Return the cached rootfs tarball, building it first if needed (~65 s).

    Why the lock and the temp dir: two labs may come up at once, and a build
    that is interrupted must never leave a tarball that looks complete. The
    tarball only appears by an atomic rename once it is whole.
    """
    tarball = cache_tarball()
    if tarball.exists():
        return tarball
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():  # someone else built it while we waited
            return tarball
        for stale in CACHE_DIR.glob("build-*"):
            _remove_tree(stale)
        build = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
        try:
            _debootstrap(build / "rootfs")
            part = build / "rootfs.tar"
            _run(["tar", "-C", str(build / "rootfs"), "--numeric-owner", "--xattrs",
                  "--xattrs-include=*", "-cf", str(part), "."], "packing the rootfs cache")
            os.rename(part, tarball)
        finally:
            _remove_tree(build)
    return tarball


def _debootstrap(target: Path) -> None:
    """Build a minimal Debian with systemd, sshd, nginx and nftables into `target`."""
    mirror = apt_mirror()
    log = CACHE_DIR / "debootstrap.log"
    argv = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(INCLUDE)}",
            SUITE, str(target), mirror]
    with open(log, "w") as out:
        status = _run_process_group(argv, stdout=out)
    if status != 0:
        raise LabError(f"debootstrap failed: {_last_line(_tail(log, 5))} (see {log})")


def _run_process_group(argv: list[str], stdout) -> int:
    """Run a command in a process group of its own and wait for it.

    Why: debootstrap is a shell script with many children (dpkg, chroot...).
    If we are interrupted, stopping only its first PID would leave the others
    writing into the build dir we are about to delete, so the group we
    started is stopped as a whole: SIGTERM, then SIGKILL.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait()
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if not _group_alive(proc.pid):
                break
        raise


def _group_alive(pgid: int) -> bool:
    """True while any live process is still in process group `pgid`."""
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = Path(stat).read_text().rsplit(")", 1)[-1].split()
            if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                return True
    return False


# ---------------------------------------------------------------- per-lab rootfs setup

def _keygen(path: Path, comment: str) -> str:
    """Make an ed25519 keypair without a passphrase; return the public key line."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], "ssh-keygen")
    return path.with_name(path.name + ".pub").read_text().strip()


def _prepare_rootfs(lab: "Lab") -> None:
    """Give a fresh rootfs its identity: hostname, machine-id, SSH keys, quiet boot.

    Why fresh host keys made here: the controller then knows the host key before
    the first connection, so strict host key checking works without trusting
    whatever answers first.
    """
    root = lab.rootfs
    name = lab.name
    _write(root / "etc/hostname", f"{name}\n")
    _write(root / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n"
           "::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root / "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)

    # Client key: the controller logs in as root with it.
    client_pub = _keygen(lab.ssh_key, f"controller@{name}")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    _write(ssh_dir / "authorized_keys", client_pub + "\n", 0o600)

    # Host key: replace whatever debootstrap generated (shared by every lab via the cache).
    for old in (root / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    host_pub = _keygen(host_key, f"root@{name}")
    os.chmod(host_key, 0o600)
    key_type, key_b64 = host_pub.split()[:2]
    _write(lab.known_hosts, f"{LAB_ADDRESS} {key_type} {key_b64}\n")
    _write(root / "etc/ssh/sshd_config.d/00-bars-lab.conf",
           "# Written by lab/host.py: only the host key the controller knows; root by key only.\n"
           "HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\n")

    systemd = root / "etc/systemd/system"
    _enable(systemd, "multi-user.target", "ssh.service")
    _install_upstream(root, systemd)
    for unit in MASKED_UNITS:
        link = systemd / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")


def _install_upstream(root: Path, systemd: Path) -> None:
    """The stand-in application on 127.0.0.1:8080 that nginx proxies to (lab/upstream.py)."""
    target = root / "usr/local/lib/bars-lab/upstream.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("upstream.py"), target)
    _write(systemd / UPSTREAM_UNIT,
           "[Unit]\nDescription=BaRS lab stand-in application (lab/upstream.py)\n\n"
           "[Service]\nExecStart=/usr/bin/python3 /usr/local/lib/bars-lab/upstream.py --port 8080\n"
           "Restart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n")
    _enable(systemd, "multi-user.target", UPSTREAM_UNIT)
    # A stand-in for an application that reads the PFX (lab/pfx_app.py); started by the deploy
    # (app_unit: bars-lab-pfx-app@<fqdn>.service), not at boot.
    shutil.copyfile(Path(__file__).with_name("pfx_app.py"), target.with_name("pfx_app.py"))
    _write(systemd / PFX_APP_UNIT,
           "[Unit]\nDescription=BaRS lab application reading the PKCS#12 of %i (lab/pfx_app.py)\n\n"
           "[Service]\nEnvironmentFile=/etc/bars-receiver-app/%i/kestrel.env\n"
           "ExecStart=/usr/bin/python3 /usr/local/lib/bars-lab/pfx_app.py --port 9443\n")


def _enable(systemd: Path, target: str, unit: str) -> None:
    """Enable a unit offline, the way `systemctl enable` would, if not yet enabled."""
    wants = systemd / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not (link.is_symlink() or link.exists()):
        link.symlink_to(f"/lib/systemd/system/{unit}")


# ---------------------------------------------------------------- supervisor (runs detached)

def _nspawn_argv(lab: "Lab") -> list[str]:
    """How the lab is booted.

    --register=no and --keep-unit: this machine's PID 1 may not be systemd, so
    there is no machined or unit to register with. CAP_NET_ADMIN lets nft work
    inside. --link-journal=no keeps the lab's journal inside the lab.
    """
    return [
        "systemd-nspawn", "-D", str(lab.rootfs),
        f"--network-namespace-path=/run/netns/{lab.name}",
        "--capability=CAP_NET_ADMIN", "--register=no", "--keep-unit",
        "--link-journal=no", "-b", "-M", lab.name,
    ]


def _supervise(name: str) -> None:
    """Launcher for the supervisor: fork, record the child's PID, return.

    Why a fork: the supervisor must outlive the caller (the CLI exits; a test
    process must not be left with a child to reap), so it detaches into its
    own session and is adopted by init.
    """
    lab = Lab(name)
    pid = os.fork()
    if pid:
        _write(lab.state_dir / "supervisor.pid", f"{pid}\n")
        os._exit(0)
    os.setsid()
    os.chdir("/")  # do not hold the caller's (maybe temporary) working directory
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(lab.console_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    try:
        _supervise_loop(lab)
    except BaseException:  # the supervisor has no caller to report to but the log
        traceback.print_exc()
    finally:
        os._exit(0)


def _supervise_loop(lab: "Lab") -> None:
    """Run nspawn; start it again after a container reboot (exit status 133).

    SIGTERM/SIGINT are passed on to nspawn, which turns them into an orderly
    shutdown of the container, and then the supervisor exits.
    """
    stopping = False
    child: subprocess.Popen | None = None

    def on_stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.returncode is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while not stopping:
        child = subprocess.Popen(_nspawn_argv(lab), stdin=subprocess.DEVNULL)
        _write(lab.state_dir / "nspawn.pid", f"{child.pid}\n")
        if stopping:  # a signal arrived before `child` was set
            child.send_signal(signal.SIGTERM)
        status = child.wait()
        print(f"[lab supervisor] systemd-nspawn exited with status {status}", flush=True)
        if status != NSPAWN_REBOOT_STATUS:
            break
        print("[lab supervisor] container rebooted; starting it again", flush=True)


# ---------------------------------------------------------------- the lab

class Lab:
    """One lab host: a booted Debian 12 container reachable by SSH at 127.0.0.1
    inside the network namespace named after it."""

    def __init__(self, name: str = DEFAULT_NAME):
        self.name = _check_name(name)
        self.state_dir = STATE_ROOT / name
        self.rootfs = self.state_dir / "rootfs"
        self.ssh_key = self.state_dir / "id_ed25519"
        self.known_hosts = self.state_dir / "known_hosts"
        self.console_log = self.state_dir / "console.log"
        self.system_state = ""  # what `systemctl is-system-running` said at the last boot

    def __repr__(self) -> str:
        return f"Lab(name={self.name!r})"

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *_exc) -> None:
        self.down()

    # ---- life cycle

    @classmethod
    def up(cls, name: str = DEFAULT_NAME, timeout: float = BOOT_TIMEOUT) -> "Lab":
        """Build (or reuse) the rootfs cache, make a fresh copy, boot it, wait for SSH.

        A lab that is already running is an error (it would not be clean);
        leftovers of a lab that is not running are removed first.
        """
        _require_root()
        lab = cls(name)
        if lab.is_running():
            raise LabError(f"lab {name!r} is already running; run `python3 -m lab.host down --name {name}` first")
        lab.down()
        ensure_controller_packages()
        tarball = ensure_rootfs_cache()
        try:
            lab.rootfs.mkdir(parents=True)
            os.chmod(lab.state_dir, 0o700)
            _run(["tar", "-C", str(lab.rootfs), "--numeric-owner", "--xattrs",
                  "--xattrs-include=*", "-xpf", str(tarball)], "unpacking the rootfs")
            _prepare_rootfs(lab)
            _netns_create(name)
            lab.console_log.write_text("")
            lab._start()
            lab.wait_ready(timeout)
        except BaseException:
            with contextlib.suppress(LabError):
                lab.down()
            raise
        return lab

    @classmethod
    def existing(cls, name: str = DEFAULT_NAME) -> "Lab":
        """Attach to a lab that is running (e.g. one brought up by the CLI)."""
        lab = cls(name)
        if not lab.is_running():
            raise LabError(f"lab {name!r} is not running; start it with `python3 -m lab.host up --name {name}`")
        return lab

    def _start(self) -> None:
        """Start the detached supervisor, which boots the container."""
        (self.state_dir / "supervisor.pid").unlink(missing_ok=True)
        _run([sys.executable, str(Path(__file__).resolve()), "_supervise", "--name", self.name],
             "starting the lab supervisor", stdin=subprocess.DEVNULL, timeout=30)
        if not self._supervisor_pid():
            raise LabError(f"the lab supervisor did not start:\n{_tail(self.console_log)}")

    def _supervisor_pid(self) -> int | None:
        return _read_pid(self.state_dir / "supervisor.pid", "_supervise", self.name)

    def _nspawn_pid(self) -> int | None:
        return _read_pid(self.state_dir / "nspawn.pid", "systemd-nspawn", str(self.rootfs))

    def is_running(self) -> bool:
        """True while the supervisor and the container it started are alive."""
        return bool(self._supervisor_pid() and self._nspawn_pid())

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait for SSH to answer and for systemd to settle; return the system state.

        Why both: tests should start on a settled host, not one still starting
        units. 'running' and 'degraded' are both accepted.
        """
        deadline = time.monotonic() + timeout
        ssh_error = ""
        while True:
            if not self._supervisor_pid():
                raise LabError(f"lab {self.name!r} stopped while booting; console.log ends:\n{_tail(self.console_log)}")
            try:
                probe = self.ssh("true", check=False, timeout=10, connect_timeout=2)
                if probe.returncode == 0:
                    break
                ssh_error = _last_line(probe.stderr)
            except subprocess.TimeoutExpired:
                ssh_error = "ssh timed out"
            if time.monotonic() > deadline:
                raise LabError(f"lab {self.name!r}: SSH did not answer within {timeout:.0f} s "
                               f"(last ssh error: {ssh_error or 'none'}); console.log ends:\n{_tail(self.console_log)}")
            time.sleep(0.3)
        remaining = max(5.0, deadline - time.monotonic())
        try:
            state = self.ssh("systemctl is-system-running --wait", check=False, timeout=remaining).stdout.strip()
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"lab {self.name!r}: systemd did not settle within {timeout:.0f} s") from exc
        if state not in ("running", "degraded"):
            raise LabError(f"lab {self.name!r}: systemd is {state or 'unreachable'!r} after boot")
        self.system_state = state
        return state

    def reboot(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Reboot the container's systemd for real, keeping the same rootfs.

        `systemctl reboot` inside makes nspawn exit with status 133; the
        supervisor then boots the same rootfs again.
        """
        _require_root()
        old = self._nspawn_pid()
        if not (old and self._supervisor_pid()):
            raise LabError(f"lab {self.name!r} is not running")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ssh("systemctl reboot", check=False, timeout=30)
        if not _wait_gone([old], timeout):
            raise LabError(f"lab {self.name!r} did not shut down within {timeout:.0f} s for the reboot")
        self.wait_ready(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut the container down, as if the host were powered off; keep its rootfs and netns.

        Why: a fleet test needs a host that is down for one run and back for the next. Only the
        PIDs recorded in the state dir are signalled: SIGTERM first (an orderly shutdown), then
        SIGKILL to those same PIDs if they outstay `timeout`.
        """
        _require_root()
        supervisor, nspawn = self._supervisor_pid(), self._nspawn_pid()
        _signal(supervisor or nspawn, signal.SIGTERM)
        pids = [p for p in (supervisor, nspawn) if p]
        if not _wait_gone(pids, timeout):
            _signal(nspawn, signal.SIGKILL)
            _signal(supervisor, signal.SIGKILL)
            if not _wait_gone(pids, 10):
                raise LabError(f"lab {self.name!r}: processes {pids} did not exit")

    def start(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Boot a stopped lab again from the same rootfs (see ``stop``) and wait for SSH."""
        _require_root()
        if self.is_running():
            raise LabError(f"lab {self.name!r} is already running")
        if not self.rootfs.is_dir() or not _netns_exists(self.name):
            raise LabError(f"lab {self.name!r} has no rootfs or netns to start; bring it up first")
        self._start()
        self.wait_ready(timeout)

    def down(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut the container down, delete its netns and state dir.

        Safe to call twice and on a half-built lab.
        """
        self.stop(timeout)
        _netns_delete(self.name)
        self._remove_state_dir()

    def _remove_state_dir(self) -> None:
        _remove_tree(self.state_dir)

    # ---- reaching the lab

    def netns_prefix(self) -> list[str]:
        """Prefix that runs a controller command inside the lab's network namespace."""
        return ["ip", "netns", "exec", self.name]

    def netns_run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a controller-side command (curl, openssl, pyinfra...) inside the lab's netns."""
        return subprocess.run(self.netns_prefix() + list(argv), **kwargs)

    def ssh_argv(self, connect_timeout: int = 10) -> list[str]:
        """The ssh command (up to and including the destination) that reaches the lab."""
        return self.netns_prefix() + [
            "ssh", "-F", "/dev/null", "-i", str(self.ssh_key), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={connect_timeout}", "-o", "LogLevel=ERROR",
            f"root@{LAB_ADDRESS}",
        ]

    def ssh(self, command: str, check: bool = True, timeout: float = 60,
            connect_timeout: int = 10) -> subprocess.CompletedProcess:
        """Run a shell command on the lab as root; text output is captured.

        Raises subprocess.CalledProcessError (check=True) or TimeoutExpired like
        subprocess.run does.
        """
        return subprocess.run(self.ssh_argv(connect_timeout) + ["--", command], check=check,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def host_data(self) -> dict:
        """pyinfra host data for this lab (pyinfra must itself run inside the netns)."""
        return {
            "ssh_hostname": LAB_ADDRESS,
            "ssh_port": 22,
            "ssh_user": "root",
            "ssh_key": str(self.ssh_key),
            "ssh_known_hosts_file": str(self.known_hosts),
            "ssh_strict_host_key_checking": "yes",
        }


# ---------------------------------------------------------------- CLI

def _describe(lab: Lab) -> str:
    """What a person needs to reach a running lab."""
    ssh = " ".join(lab.ssh_argv())
    return (
        f"lab {lab.name!r} is running (systemd: {lab.system_state or 'unknown'})\n"
        f"  state dir: {lab.state_dir}\n"
        f"  shell:     python3 -m lab.host ssh --name {lab.name}\n"
        f"  ssh:       {ssh}\n"
        f"  anything inside its network: ip netns exec {lab.name} CMD (e.g. curl -s http://127.0.0.1/)\n"
        f"  pyinfra host data (run pyinfra under `ip netns exec {lab.name}`):\n"
        f"{json.dumps(lab.host_data(), indent=2)}"
    )


def _cmd_up(args) -> int:
    lab = Lab.up(args.name, timeout=args.timeout)
    print(json.dumps(lab.host_data()) if args.json else _describe(lab))
    return 0


def _cmd_status(args) -> int:
    lab = Lab(args.name)
    if not lab.is_running():
        print(f"lab {args.name!r} is not running")
        return 3
    try:
        lab.system_state = lab.ssh("systemctl is-system-running", check=False, timeout=15).stdout.strip()
    except subprocess.TimeoutExpired:
        lab.system_state = "no answer over SSH"
    print(json.dumps(lab.host_data()) if args.json else _describe(lab))
    return 0


def _cmd_down(args) -> int:
    Lab(args.name).down()
    print(f"lab {args.name!r} is down")
    return 0


def _cmd_reboot(args) -> int:
    lab = Lab.existing(args.name)
    lab.reboot(timeout=args.timeout)
    print(f"lab {args.name!r} rebooted (systemd: {lab.system_state})")
    return 0


def _cmd_ssh(args) -> int:
    lab = Lab.existing(args.name)
    argv = lab.ssh_argv()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command:
        argv += ["--", " ".join(command)]
    elif sys.stdin.isatty():
        argv.insert(len(lab.netns_prefix()) + 1, "-t")
    return subprocess.run(argv).returncode


def _cmd_supervise(args) -> int:
    _supervise(args.name)
    return 0


def _exit_on_sigterm(signum, _frame):
    """Turn SIGTERM into SystemExit so `finally`/cleanup code runs."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.host", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,down,status,ssh,reboot}")
    for cmd, func, help_text in (
        ("up", _cmd_up, "build (cached) and boot a fresh lab, wait for SSH"),
        ("down", _cmd_down, "shut the lab down and delete it"),
        ("status", _cmd_status, "say whether the lab is running (exit 3 if not)"),
        ("ssh", _cmd_ssh, "open a root shell on the lab, or run CMD"),
        ("reboot", _cmd_reboot, "reboot the lab's systemd, same rootfs"),
        ("_supervise", _cmd_supervise, argparse.SUPPRESS),
    ):
        p = sub.add_parser(cmd, help=help_text)
        p.set_defaults(func=func)
        p.add_argument("--name", default=DEFAULT_NAME, help=f"lab name (default {DEFAULT_NAME})")
        if cmd in ("up", "reboot"):
            p.add_argument("--timeout", type=float, default=BOOT_TIMEOUT, help="seconds to wait for the boot")
        if cmd in ("up", "status"):
            p.add_argument("--json", action="store_true", help="print only the pyinfra host data as JSON")
        if cmd == "ssh":
            p.add_argument("command", nargs=argparse.REMAINDER, help="command to run (default: a shell)")
    # _supervise is hidden from the list of choices
    sub._choices_actions = [a for a in sub._choices_actions if a.help != argparse.SUPPRESS]
    args = parser.parse_args(argv)
    # A SIGTERM (CI timeout, kill) should clean up a half-started lab like Ctrl-C does.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _require_root()
        return args.func(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
