"""Parsing the batched fact's output: one command describes every endpoint directory."""

import shutil
from pathlib import Path

import pytest

from bars_receiver.keys.facts import EndpointFiles

PUBLIC = ["-----BEGIN PUBLIC KEY-----", "MIIBIjAN", "-----END PUBLIC KEY-----"]
CSR = ["-----BEGIN CERTIFICATE REQUEST-----", "MIICnjCC", "-----END CERTIFICATE REQUEST-----"]


def test_parses_each_endpoint():
    output = [
        "@@endpoint BaRS-INT-A01.Acme.thirdparty.nhs.uk",
        "@@dir 700 0 0",
        "@@key 600 0 0",
        "@@key_public", *PUBLIC,
        "@@csr", *CSR,
        "@@endpoint BaRS-INT-A02.Acme.thirdparty.nhs.uk",
        "@@dir 755 0 0",
    ]
    states = EndpointFiles().process(output)
    first = states["BaRS-INT-A01.Acme.thirdparty.nhs.uk"]
    assert first.dir.root_only and first.key.mode == "600"
    assert first.key_public_pem == "\n".join(PUBLIC) + "\n"
    assert first.csr_pem == "\n".join(CSR) + "\n"
    second = states["BaRS-INT-A02.Acme.thirdparty.nhs.uk"]
    assert second.key is None and second.csr_pem is None
    assert not second.dir.root_only


def test_unreadable_key_has_no_public_key():
    output = ["@@endpoint X.nhs.uk", "@@dir 700 0 0", "@@key 600 0 0", "@@key_public", "@@key_unreadable"]
    state = EndpointFiles().process(output)["X.nhs.uk"]
    assert state.key_unreadable and state.key_public_pem is None


def test_group_or_world_bits_are_not_root_only():
    output = ["@@endpoint X.nhs.uk", "@@dir 700 0 0", "@@key 640 0 0"]
    assert not EndpointFiles().process(output)["X.nhs.uk"].key.root_only


def test_empty_output_means_no_endpoints():
    assert EndpointFiles().process([]) == {}


def test_public_keys_are_cached_by_the_key_files_identity(tmp_path):
    """With a cache directory, openssl reads each key once: an unchanged host is described with
    no openssl at all, identically; a key or passphrase file that changed is read again."""
    import os
    import shutil
    import subprocess

    from bars_receiver.scripts import script_text

    base, cache, shim, log = tmp_path / "base", tmp_path / "cache", tmp_path / "bin", tmp_path / "openssl.log"
    shim.mkdir()
    (shim / "openssl").write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {shutil.which("openssl")} "$@"\n')
    (shim / "openssl").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}

    def fact(write: str = "yes") -> tuple[dict, int]:
        log.write_text("")
        result = subprocess.run(["sh", "-c", script_text("endpoint_files"), "bars", str(base), str(cache), write],
                                capture_output=True, text=True, env=env, check=True)
        return EndpointFiles().process(result.stdout.splitlines()), len(log.read_text().splitlines())

    for name, passphrase in (("a.nhs.uk", "pass-a"), ("b.nhs.uk", None)):
        generation = base / name / "archive" / "1"
        generation.mkdir(parents=True)
        (base / name / "live").symlink_to("archive/1")
        options = []
        if passphrase:
            (generation / "key.pass").write_text(passphrase + "\n")
            options = ["-aes-256-cbc", "-pass", f"file:{generation / 'key.pass'}"]
        subprocess.run(["openssl", "genpkey", "-quiet", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                        *options, "-out", str(generation / "key.pem")], check=True)

    dry, dry_calls = fact("no")  # a --dry run reads keys but leaves no cache behind
    assert dry_calls > 0 and not cache.exists()
    first, first_calls = fact()
    assert first == dry
    again, again_calls = fact()
    assert first_calls > 0 and again_calls == 0
    assert again == first and all(state.key_public_pem for state in first.values())
    assert first["a.nhs.uk"].key_pass is not None and first["b.nhs.uk"].key_pass is None
    assert {oct(path.stat().st_mode & 0o777) for path in cache.iterdir()} == {"0o600"}

    os.utime(base / "a.nhs.uk" / "archive" / "1" / "key.pass", (1, 1))  # the passphrase file is not the same
    changed, calls = fact()
    assert calls > 0 and changed == first


@pytest.mark.parametrize("protection", ["plain", "encrypted"])
def test_new_keys_are_in_the_cache_so_the_read_back_runs_no_openssl(tmp_path, protection):
    """make_keys.sh puts each new key's public half in the cache: the request packs' read-back of the
    same run (endpoint_files.sh) describes every new key without opening one, exactly as openssl
    would."""
    import os
    import shutil
    import subprocess

    from bars_receiver.scripts import script_text

    base, cache, shim, log = tmp_path / "base", tmp_path / "cache", tmp_path / "bin", tmp_path / "openssl.log"
    scripts = tmp_path / "scripts"
    for path in (base, shim, scripts):
        path.mkdir()
    (shim / "openssl").write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {shutil.which("openssl")} "$@"\n')
    (shim / "openssl").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    (scripts / "make_key.sh").write_text(script_text("make_key"))
    directories = [str(base / f"e{i}.nhs.uk") for i in range(3)]

    def run(name: str, *args: str) -> str:
        result = subprocess.run(["sh", "-c", script_text(name), "bars", *args], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("prepare", directories[0])
    if protection == "encrypted":
        (Path(directories[0]) / ".staging" / "gen" / "key.pass").write_text("a passphrase\n")
    run("make_keys", str(scripts / "make_key.sh"), "live", "1024", protection, str(cache),
        *(value for directory in directories for value in (directory, directory.rsplit("/", 1)[1])))
    assert len(list(cache.iterdir())) == 3

    log.write_text("")
    cached = EndpointFiles().process(run("endpoint_files", str(base), str(cache)).splitlines())
    assert log.read_text() == ""
    uncached = EndpointFiles().process(run("endpoint_files", str(base)).splitlines())
    assert log.read_text() != ""
    assert cached == uncached and len(cached) == 3
    assert all(state.key_public_pem and (state.key_pass is not None) == (protection == "encrypted")
               for state in cached.values())


def test_only_a_key_that_needs_care_gets_an_operation():
    from bars_receiver.keys.facts import EndpointState, FileMeta
    from bars_receiver.keys.operations import key_needs_care

    tight, loose = FileMeta("600", 0, 0), FileMeta("644", 0, 0)
    assert not key_needs_care(EndpointState(dir=FileMeta("700", 0, 0), key=tight, key_pass=tight))
    assert key_needs_care(EndpointState(dir=FileMeta("755", 0, 0), key=tight))
    assert key_needs_care(EndpointState(dir=FileMeta("700", 0, 0), key=loose))
    assert key_needs_care(EndpointState(dir=FileMeta("700", 0, 0), key=tight, key_pass=FileMeta("600", 1000, 0)))
    assert key_needs_care(EndpointState(dir=FileMeta("700", 0, 0), key=tight, key_unreadable=True))


def test_the_endpoint_facts_read_on_every_core_say_what_one_reader_says(tmp_path):
    """endpoint_files.sh and certificate_files.sh split the endpoint directories between the host's
    cores (lib.sh on_every_core, with nproc standing in here): each endpoint is read exactly once,
    and the facts are the same as one reader's."""
    import os
    import subprocess

    from bars_receiver.certificates.facts import CertificateFiles
    from bars_receiver.keys.facts import EndpointFiles
    from bars_receiver.scripts import script_text

    from .test_certificate_install import KEY, OTHER_KEY, generation, issued, run, stage

    base, app = tmp_path / "base", tmp_path / "app"
    app.mkdir()
    certificate = issued(tmp_path / "project")
    for index in range(7):
        directory = base / f"e{index}.nhs.uk"
        directory.mkdir(parents=True)
        generation(directory, key=KEY if index % 2 else OTHER_KEY, passphrase=b"p" if index % 3 else None)
        if index % 2:
            stage(directory, certificate)
            assert run("switch", str(directory), "live").returncode == 0
    shim, scratch = tmp_path / "shim", tmp_path / "scratch"
    shim.mkdir()
    scratch.mkdir()

    def read(name: str, cores: int, *args: str) -> list[str]:
        (shim / "nproc").write_text(f"#!/bin/sh\necho {cores}\n")
        (shim / "nproc").chmod(0o755)
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "TMPDIR": str(scratch)}
        result = subprocess.run(["sh", "-c", script_text(name), "bars", *args], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    for cores in (1, 3):
        keys = read("endpoint_files", cores, str(base))
        assert sorted(line for line in keys if line.startswith("@@endpoint ")) == \
            sorted(f"@@endpoint e{index}.nhs.uk" for index in range(7))
        certs = read("certificate_files", cores, str(base), str(app), "generated", "")
        assert len([line for line in certs if line.startswith("@@sum ")]) == 3 * 3  # e1, e3, e5
        if cores == 1:
            one = (EndpointFiles().process(keys), CertificateFiles().process(certs))
        else:
            assert (EndpointFiles().process(keys), CertificateFiles().process(certs)) == one
    assert not list(scratch.iterdir())  # each read's shares were removed


def test_a_share_that_dies_fails_the_fact_and_leaves_no_files(tmp_path):
    """A share killed part-way (as the OOM killer would) must not pass for a host with fewer
    endpoints: the fact fails, and the shares' files are removed all the same."""
    import os
    import subprocess

    from bars_receiver.scripts import script_text

    from .test_certificate_install import generation

    base, shim, scratch = tmp_path / "base", tmp_path / "shim", tmp_path / "scratch"
    for path in (shim, scratch):
        path.mkdir()
    for index in range(4):
        directory = base / f"e{index}.nhs.uk"
        directory.mkdir(parents=True)
        generation(directory, passphrase=None)
    (shim / "nproc").write_text("#!/bin/sh\necho 2\n")
    # stat of e2's key kills the share reading it (its parent shell), once.
    (shim / "stat").write_text(f"""#!/bin/sh
case "$*" in *e2.nhs.uk/archive/1/key.pem*) kill -KILL $PPID ;; esac
exec {shutil.which("stat")} "$@"
""")
    for tool in ("nproc", "stat"):
        (shim / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "TMPDIR": str(scratch)}
    result = subprocess.run(["sh", "-c", script_text("endpoint_files"), "bars", str(base)], capture_output=True,
                            text=True, env=env)
    assert result.returncode != 0, result.stdout
    assert not list(scratch.iterdir())
    # The same with no share killed: the fact reads all four.
    (shim / "stat").unlink()
    result = subprocess.run(["sh", "-c", script_text("endpoint_files"), "bars", str(base)], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0 and result.stdout.count("@@endpoint ") == 4
