"""Request packs are written when their operations execute, never while pyinfra collects them
(so --dry writes nothing), and only when they differ from what the host holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host

from bars_receiver.inventory.loader import load_hosts
from bars_receiver.keys.facts import EndpointState
from bars_receiver.request_packs import HostReadback, no_renewal_pack, request_pack

REPO = Path(__file__).resolve().parents[2]


class FakeHost:
    name = "bars-int-1"
    print_prefix = "[bars-int-1] "

    def __init__(self):
        self.noops: list[str] = []

    def noop(self, description):
        self.noops.append(description)


@pytest.fixture
def receiver(tmp_path):
    for name in ("group_data", "files", "inventories"):
        shutil.copytree(REPO / name, tmp_path / name)
    [(_, data)] = load_hosts(tmp_path / "inventories" / "int.yml")
    return data["receiver"]


def host_state(fqdn: str) -> EndpointState:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return EndpointState(key_public_pem=public, csr_pem=csr)


def collect(operation, **kwargs):
    fake = FakeHost()
    with ctx_host.use(fake):
        commands = list(operation._inner(**kwargs))
    return commands, fake.noops


def execute(commands):
    for command in commands:
        assert isinstance(command, FunctionCommand)
        with ctx_host.use(FakeHost()):
            command.function(*command.args, **command.kwargs)


def test_collecting_writes_nothing_and_executing_writes_the_pack(receiver):
    endpoint = receiver.endpoints[0]
    state = host_state(endpoint.fqdn)
    pack = Path(receiver.requests_dir) / f"{endpoint.fqdn}.csr"

    commands, noops = collect(request_pack, receiver=receiver, endpoint=endpoint, state=state)

    assert len(commands) == 1 and not noops
    assert not Path(receiver.requests_dir).exists()  # what --dry sees: a change, nothing written
    execute(commands)
    assert pack.read_text() == state.csr_pem
    assert collect(request_pack, receiver=receiver, endpoint=endpoint, state=state) == ([], [
        f"request pack {endpoint.fqdn}.csr already matches the host"])


def test_a_pack_that_no_longer_matches_the_host_is_rewritten(receiver):
    endpoint = receiver.endpoints[0]
    execute(collect(request_pack, receiver=receiver, endpoint=endpoint, state=host_state(endpoint.fqdn))[0])
    newer = host_state(endpoint.fqdn)
    commands, _ = collect(request_pack, receiver=receiver, endpoint=endpoint, state=newer)
    assert len(commands) == 1
    execute(commands)
    assert (Path(receiver.requests_dir) / f"{endpoint.fqdn}.csr").read_text() == newer.csr_pem


def test_a_stale_renewal_pack_is_removed_when_executed(receiver):
    endpoint = receiver.endpoints[0]
    stale = [Path(receiver.requests_dir) / f"{endpoint.fqdn}.next.{suffix}" for suffix in ("csr", "md")]
    assert collect(no_renewal_pack, receiver=receiver, endpoint=endpoint)[0] == []
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("old\n")

    commands, _ = collect(no_renewal_pack, receiver=receiver, endpoint=endpoint)

    assert all(path.exists() for path in stale)
    execute(commands)
    assert not any(path.exists() for path in stale)


class ReadingHost(FakeHost):
    """A host whose endpoint files are read by get_fact: each call counted."""

    def __init__(self, states):
        super().__init__()
        self.states, self.fact_reads = states, 0

    def get_fact(self, fact, **kwargs):
        self.fact_reads += 1
        return self.states


def test_every_new_csr_of_a_host_is_read_back_in_one_read(receiver):
    """A first run: no CSR known while collecting; at execution one read of the host serves every
    pack (a read per pack made the first run quadratic in endpoints)."""
    endpoint = receiver.endpoints[0]
    state = host_state(endpoint.fqdn)
    state.next = host_state(endpoint.fqdn)
    readback = HostReadback(receiver.settings.base_dir)
    commands = [command for renewal in (False, True)
                for command in collect(request_pack, receiver=receiver, endpoint=endpoint, state=None,
                                       renewal=renewal, readback=readback)[0]]
    assert len(commands) == 2
    reading = ReadingHost({endpoint.fqdn: state})
    with ctx_host.use(reading):
        for command in commands:
            command.function(*command.args, **command.kwargs)
    assert reading.fact_reads == 1 and readback.reads == 1
    packs = Path(receiver.requests_dir)
    assert (packs / f"{endpoint.fqdn}.csr").read_text() == state.csr_pem
    assert (packs / f"{endpoint.fqdn}.next.csr").read_text() == state.next.csr_pem


def test_a_pack_that_matches_is_current_so_no_operation_is_declared(receiver):
    from bars_receiver.request_packs import pack_current, renewal_pack_present

    endpoint = receiver.endpoints[0]
    state = host_state(endpoint.fqdn)
    with ctx_host.use(FakeHost()):
        assert not pack_current(receiver, endpoint, state) and not pack_current(receiver, endpoint, None)
    execute(collect(request_pack, receiver=receiver, endpoint=endpoint, state=state)[0])
    with ctx_host.use(FakeHost()):
        assert pack_current(receiver, endpoint, state)
        assert not pack_current(receiver, endpoint, host_state(endpoint.fqdn))  # another key: the pack differs
    assert not renewal_pack_present(receiver, endpoint)
    (Path(receiver.requests_dir) / f"{endpoint.fqdn}.next.md").write_text("old\n")
    assert renewal_pack_present(receiver, endpoint)
