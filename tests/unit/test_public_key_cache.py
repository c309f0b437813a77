"""The public-key cache as the install scripts use it (lib.sh: open_key, cached_entry,
public_sha256): an entry written once saves every later ``openssl pkey`` for that key file, and
anything that could make the entry wrong for the key in hand (another key file, another
passphrase file) falls back to openssl.

The scripts run as the deploy sends them, with an ``openssl`` shim in front of the real one that
logs each subcommand, so a test can tell which reads openssl made.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bars_receiver.application import handoff
from bars_receiver.scripts import SCRIPTS, script_text

from lab.ca import new_key

from .test_certificate_install import FQDN, KEY, OTHER_KEY, generation, issued, public_pem, run, stage


class Shell:
    """sh with lib.sh (or a whole script) and an openssl that logs its subcommand."""

    def __init__(self, root: Path):
        self.log = root / "openssl.log"
        shim = root / "shim"
        shim.mkdir()
        (shim / "openssl").write_text(f'#!/bin/sh\necho "$1" >> {self.log}\nexec {shutil.which("openssl")} "$@"\n')
        (shim / "openssl").chmod(0o755)
        self.env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
        self.log.write_text("")

    def lib(self, body: str, *args: str) -> subprocess.CompletedProcess:
        script = f'set -eu\n. "{SCRIPTS / "lib.sh"}"\n{body}'
        return subprocess.run(["sh", "-c", script, "bars", *args], capture_output=True, text=True, env=self.env)

    def script(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", script_text(name), "bars", *args], capture_output=True, text=True,
                              env=self.env)

    def calls(self) -> list[str]:
        calls = self.log.read_text().split()
        self.log.write_text("")
        return calls


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    return Shell(tmp_path)


OPEN = 'open_key "$1" "$2" "$3"; printf "%s\\n%s\\n" "$passin" "$public"'


def pem_of(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def key_dir(tmp_path: Path, passphrase: bytes | None) -> Path:
    directory = tmp_path / "base" / FQDN
    directory.mkdir(parents=True, mode=0o700)
    generation(directory, passphrase=passphrase)
    return directory


@pytest.mark.parametrize("passphrase", [b"key-passphrase", None])
def test_open_key_reads_the_key_once_then_answers_from_the_cache(tmp_path, shell, passphrase):
    directory, cache = key_dir(tmp_path, passphrase), tmp_path / "cache"
    key, pass_file = str(directory / "live" / "key.pem"), str(directory / "live" / "key.pass")
    first = shell.lib(OPEN, key, str(cache), pass_file)
    assert first.returncode == 0, first.stderr
    assert shell.calls() == ["pkey"] and len(list(cache.iterdir())) == 1
    passin, public = first.stdout.split("\n", 1)
    assert passin == (f"file:{pass_file}" if passphrase else "pass:")
    assert public == public_pem(KEY)

    again = shell.lib(OPEN, key, str(cache), pass_file)
    assert again.stdout == first.stdout and shell.calls() == []

    # A hard link (as a staged generation makes) gives the key a new ctime: openssl reads it once
    # more, and from then on the entry applies to both names, $passin naming the file as given.
    staged = directory / ".staging" / "gen"
    staged.mkdir(parents=True)
    os.link(key, staged / "key.pem")
    if passphrase:
        os.link(pass_file, staged / "key.pass")
    linked = shell.lib(OPEN, str(staged / "key.pem"), str(cache), str(staged / "key.pass"))
    assert shell.calls() == ["pkey"] and linked.stdout.split("\n", 1)[1] == public
    linked = shell.lib(OPEN, str(staged / "key.pem"), str(cache), str(staged / "key.pass"))
    assert shell.calls() == [] and linked.stdout.split("\n", 1)[1] == public
    assert linked.stdout.split("\n", 1)[0] == (f"file:{staged / 'key.pass'}" if passphrase else "pass:")
    assert shell.lib(OPEN, key, str(cache), pass_file).stdout == first.stdout and shell.calls() == []


def test_a_passphrase_file_that_is_not_the_one_cached_sends_the_key_back_to_openssl(tmp_path, shell):
    directory, cache = key_dir(tmp_path, b"key-passphrase"), tmp_path / "cache"
    key, pass_file = directory / "live" / "key.pem", directory / "live" / "key.pass"
    assert shell.lib(OPEN, str(key), str(cache), str(pass_file)).returncode == 0
    shell.calls()

    # The same words in a new file (another inode): not the file the entry vouches for.
    replacement = pass_file.with_name("key.pass.new")
    replacement.write_bytes(pass_file.read_bytes())
    replacement.replace(pass_file)
    assert shell.lib(OPEN, str(key), str(cache), str(pass_file)).returncode == 0
    assert shell.calls() == ["pkey"]

    # A passphrase file where the entry was written without one (and the reverse) is a miss too.
    plain = key_dir(tmp_path / "plain", None)
    plain_key = plain / "live" / "key.pem"
    assert shell.lib(OPEN, str(plain_key), str(cache), str(plain / "live" / "key.pass")).returncode == 0
    shell.calls()
    (plain / "live" / "key.pass").write_text("now there is one\n")
    assert shell.lib(OPEN, str(plain_key), str(cache), str(plain / "live" / "key.pass")).returncode == 0
    assert shell.calls() == ["pkey"]


def test_a_wrong_passphrase_is_refused_and_nothing_is_cached(tmp_path, shell):
    directory, cache = key_dir(tmp_path, b"key-passphrase"), tmp_path / "cache"
    (directory / "live" / "key.pass").write_text("wrong\n")
    result = shell.lib(OPEN, str(directory / "live" / "key.pem"), str(cache), str(directory / "live" / "key.pass"))
    assert result.returncode != 0 and not cache.exists()


def test_an_entry_for_another_key_file_is_never_used(tmp_path, shell):
    """The entry is named by the key file's device, inode, mtime, ctime and size: a key rewritten
    in place, with its size and mtime put back, still has a new ctime (no tool sets it back), so
    it never matches the entry written for the old content."""
    directory, cache = key_dir(tmp_path, None), tmp_path / "cache"
    key = directory / "live" / "key.pem"
    assert shell.lib(OPEN, str(key), str(cache), "").returncode == 0
    before = key.stat()
    # Another key whose PEM is no longer than this one's (RSA-2048 PKCS#8 PEMs differ by a few
    # bytes), padded with newlines openssl ignores to exactly the same size.
    other_key = next(candidate for candidate in itertools.chain([OTHER_KEY], (new_key() for _ in range(40)))
                     if len(pem_of(candidate)) <= before.st_size)
    other = pem_of(other_key) + b"\n" * (before.st_size - len(pem_of(other_key)))
    with open(key, "r+b") as handle:  # the same inode
        handle.write(other)
    os.utime(key, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (key.stat().st_ino, key.stat().st_mtime_ns, key.stat().st_size) == \
        (before.st_ino, before.st_mtime_ns, before.st_size)
    shell.calls()
    result = shell.lib(OPEN, str(key), str(cache), "")
    assert shell.calls() == ["pkey"] and result.stdout.split("\n", 1)[1] == public_pem(other_key)


@pytest.mark.parametrize("key", [KEY, OTHER_KEY])
def test_public_der_is_the_public_key_in_der(tmp_path, shell, key):
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = tmp_path / "der"
    result = shell.lib('public_der "$1" > "$2"', public_pem(key).rstrip("\n"), str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == der and shell.calls() == []


def test_switch_reads_the_key_itself_and_a_poisoned_cache_entry_changes_nothing(tmp_path, shell):
    """switch.sh is the last check before a certificate is served: it asks openssl for the key's
    public half every time, so an entry naming another key's public half under this key file's
    identity (a key rewritten in place with its mtime put back) cannot let a stranger in."""
    directory, cache = key_dir(tmp_path, b"key-passphrase"), tmp_path / "cache"
    key, pass_file = directory / "live" / "key.pem", directory / "live" / "key.pass"
    assert shell.lib(OPEN, str(key), str(cache), str(pass_file)).returncode == 0
    (entry,) = cache.iterdir()
    entry.write_text(entry.read_text().replace(public_pem(KEY), public_pem(OTHER_KEY)))
    stranger = issued(tmp_path / "other-project", key=OTHER_KEY)
    stage(directory, stranger)
    shell.calls()
    refused = shell.script("switch", str(directory), "live")
    assert refused.returncode != 0 and "is not for live/key.pem" in refused.stderr
    assert shell.calls() == ["pkey", "x509"] and os.readlink(directory / "live") == "archive/1"

    certificate = issued(tmp_path / "project")
    stage(directory, certificate)
    switched = shell.script("switch", str(directory), "live")
    assert switched.returncode == 0, switched.stderr
    assert shell.calls() == ["pkey", "x509"] and os.readlink(directory / "live") == "archive/2"


def test_pkcs12_built_with_a_cached_key_records_what_openssl_would(tmp_path, shell):
    """build_pfx.sh's pfx.inputs is the same whether the key came from the cache or from openssl;
    with the cache, openssl only builds the PKCS#12 and opens it (od makes the password)."""
    certificate = issued(tmp_path / "project")
    records, passwords = {}, set()
    for cached in (False, True):
        root = tmp_path / ("cached" if cached else "uncached")
        directory, cache, app = key_dir(root, b"key-passphrase"), root / "cache", root / "app" / FQDN
        stage(directory, certificate)
        assert run("switch", str(directory), "live").returncode == 0
        if cached:
            assert shell.lib(OPEN, str(directory / "live" / "key.pem"), str(cache),
                             str(directory / "live" / "key.pass")).returncode == 0
        assert run("prepare", str(app)).returncode == 0
        shell.calls()
        built = shell.script("build_pfx", str(directory), str(app), FQDN, "modern", "generate", "generated", "root",
                             "700", "600", "", str(handoff.HASH_ROUNDS), str(cache) if cached else "")
        assert built.returncode == 0, built.stderr
        calls = shell.calls()
        assert ("pkey" in calls) != cached and calls.count("pkcs12") == 2 and "rand" not in calls
        inputs = dict(line.split(" ", 1) for line in (directory / "pfx.inputs").read_text().splitlines())
        password = (app / "pfx.pass").read_bytes()
        assert re.fullmatch(rb"[0-9a-f]{48}\n", password) and (app / "live" / "pfx.pass").stat().st_mode & 0o777 == 0o600
        assert inputs.pop("password_sha256") == hashlib.sha256(password).hexdigest()
        passwords.add(password)
        records[cached] = inputs
    der = KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert records[True] == records[False] and records[True]["key_sha256"] == hashlib.sha256(der).hexdigest()
    assert records[True]["chain_sha256"] == hashlib.sha256(certificate.chain_pem.encode()).hexdigest()
    assert len(passwords) == 2  # each build made its own


@pytest.mark.parametrize("protection", ["encrypted", "plain"])
def test_a_new_key_and_its_csr_take_two_openssl_and_fill_the_cache(tmp_path, shell, protection):
    """make_key.sh with a CN: genpkey, then one req that signs the CSR and writes the public half
    (cached); a CSR made again later (make_csr.sh) needs openssl only to sign."""
    directory, cache = tmp_path / "base" / FQDN, tmp_path / "cache"
    directory.parent.mkdir()
    assert run("prepare", str(directory)).returncode == 0
    if protection == "encrypted":
        (directory / ".staging" / "gen" / "key.pass").write_text("a passphrase\n")
    made = shell.script("make_key", str(directory), "live", "2048", protection, str(cache), FQDN)
    assert made.returncode == 0, made.stderr
    assert shell.calls() == ["genpkey", "req"]
    request = subprocess.run(["openssl", "req", "-in", str(directory / "csr.pem"), "-noout", "-verify", "-pubkey",
                              "-subject"], capture_output=True, text=True, check=True).stdout
    passin = f"file:{directory / 'key.pass'}" if protection == "encrypted" else "pass:"
    public = subprocess.run(["openssl", "pkey", "-in", str(directory / "key.pem"), "-passin", passin, "-pubout"],
                            capture_output=True, text=True, check=True).stdout
    assert f"CN = {FQDN}" in request and public in request
    assert (directory / "csr.pem").read_text().startswith("-----BEGIN CERTIFICATE REQUEST-----")
    (entry,) = cache.iterdir()
    assert entry.read_text().endswith(public)

    again = shell.script("make_csr", str(directory), "live", FQDN, str(cache))
    assert again.returncode == 0, again.stderr
    assert shell.calls() == ["req"]
