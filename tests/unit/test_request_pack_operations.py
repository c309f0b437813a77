"""Request packs are written when their operation executes, never while pyinfra collects it
(so --dry writes nothing), only when they differ from what the host holds, in one operation per
host that reads the host back once for every CSR the run made."""

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
from bars_receiver.request_packs import RequestPackError, note_template, pack_plan, packs_name, request_packs

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


def packs_op(receiver, *packs) -> dict:
    """request_packs' arguments for ``packs`` (``pack_plan`` dicts) of ``receiver``."""
    return {"project_dir": receiver.project_dir, "requests_dir": receiver.requests_dir,
            "template": note_template(receiver), "base_dir": receiver.settings.base_dir, "packs": list(packs)}


def plan(receiver, endpoint, action="write", state=None, renewal=False) -> dict:
    return pack_plan(receiver, endpoint, FakeHost.name, action, state, renewal)


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

    commands, noops = collect(request_packs, **packs_op(receiver, plan(receiver, endpoint, state=state)))

    assert len(commands) == 1 and not noops
    assert not Path(receiver.requests_dir).exists()  # what --dry sees: a change, nothing written
    execute(commands)
    assert pack.read_text() == state.csr_pem
    assert collect(request_packs, **packs_op(receiver, plan(receiver, endpoint, state=state))) == ([], [
        "the request packs already match the host"])


def test_the_operation_takes_plain_values_only(receiver):
    """What tasks/request_packs.py hands the operation survives a JSON round trip: no domain object."""
    import json

    endpoint = receiver.endpoints[0]
    arguments = packs_op(receiver, plan(receiver, endpoint, state=host_state(endpoint.fqdn)),
                         plan(receiver, endpoint, "remove_next", renewal=True))
    assert json.loads(json.dumps(arguments)) == arguments


def test_a_pack_that_no_longer_matches_the_host_is_rewritten(receiver):
    endpoint = receiver.endpoints[0]
    execute(collect(request_packs, **packs_op(receiver, plan(receiver, endpoint, state=host_state(endpoint.fqdn))))[0])
    newer = host_state(endpoint.fqdn)
    commands, _ = collect(request_packs, **packs_op(receiver, plan(receiver, endpoint, state=newer)))
    assert len(commands) == 1
    execute(commands)
    assert (Path(receiver.requests_dir) / f"{endpoint.fqdn}.csr").read_text() == newer.csr_pem


def test_a_stale_renewal_pack_is_removed_when_executed(receiver):
    endpoint = receiver.endpoints[0]
    stale = [Path(receiver.requests_dir) / f"{endpoint.fqdn}.next.{suffix}" for suffix in ("csr", "md")]
    remove = packs_op(receiver, plan(receiver, endpoint, "remove_next", renewal=True))
    assert collect(request_packs, **remove)[0] == []
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("old\n")

    commands, _ = collect(request_packs, **remove)

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


def two_endpoints(receiver):
    first = receiver.endpoints[0]
    return first, first.model_copy(update={"fqdn": first.fqdn.replace("BaRS", "BaRS2", 1)})


def test_every_new_csr_of_a_host_is_read_back_in_one_read(receiver):
    """A first run: no CSR known while collecting; at execution one read of the host serves every
    pack (a read per pack made the first run quadratic in endpoints)."""
    first, second = two_endpoints(receiver)
    states = {endpoint.fqdn: host_state(endpoint.fqdn) for endpoint in (first, second)}
    states[first.fqdn].next = host_state(first.fqdn)
    commands, _ = collect(request_packs, **packs_op(receiver, plan(receiver, first), plan(receiver, first, renewal=True),
                                                    plan(receiver, second)))
    assert len(commands) == 1
    reading = ReadingHost(states)
    with ctx_host.use(reading):
        for command in commands:
            command.function(*command.args, **command.kwargs)
    assert reading.fact_reads == 1
    packs = Path(receiver.requests_dir)
    assert (packs / f"{first.fqdn}.csr").read_text() == states[first.fqdn].csr_pem
    assert (packs / f"{first.fqdn}.next.csr").read_text() == states[first.fqdn].next.csr_pem
    assert (packs / f"{second.fqdn}.csr").read_text() == states[second.fqdn].csr_pem


def test_a_csr_that_cannot_be_sent_is_reported_after_the_others_are_written(receiver):
    """One endpoint's bad CSR names it and stops the run's host, but the other packs are written."""
    first, second = two_endpoints(receiver)
    states = {first.fqdn: host_state("someone-else.nhs.uk"), second.fqdn: host_state(second.fqdn)}
    commands, _ = collect(request_packs, **packs_op(receiver, plan(receiver, first), plan(receiver, second)))
    with ctx_host.use(ReadingHost(states)), pytest.raises(RequestPackError, match=first.fqdn) as refused:
        for command in commands:
            command.function(*command.args, **command.kwargs)
    assert second.fqdn not in str(refused.value)
    assert not (Path(receiver.requests_dir) / f"{first.fqdn}.csr").exists()
    assert (Path(receiver.requests_dir) / f"{second.fqdn}.csr").read_text() == states[second.fqdn].csr_pem


def test_a_promoted_pack_replaces_the_live_one_and_removes_the_next(receiver):
    endpoint = receiver.endpoints[0]
    packs = Path(receiver.requests_dir)
    packs.mkdir(parents=True)
    for name in (f"{endpoint.fqdn}.next.csr", f"{endpoint.fqdn}.next.md", f"{endpoint.fqdn}.csr"):
        (packs / name).write_text("old\n")
    renewed = host_state(endpoint.fqdn)
    commands, _ = collect(request_packs, **packs_op(receiver, plan(receiver, endpoint, "promote")))
    with ctx_host.use(ReadingHost({endpoint.fqdn: renewed})):
        for command in commands:
            command.function(*command.args, **command.kwargs)
    assert (packs / f"{endpoint.fqdn}.csr").read_text() == renewed.csr_pem
    assert not list(packs.glob("*.next.*"))


def test_a_pack_that_matches_is_current_so_no_operation_is_declared(receiver):
    from bars_receiver.request_packs import pack_current, renewal_pack_present

    endpoint = receiver.endpoints[0]
    state = host_state(endpoint.fqdn)
    with ctx_host.use(FakeHost()):
        assert not pack_current(receiver, endpoint, state) and not pack_current(receiver, endpoint, None)
    execute(collect(request_packs, **packs_op(receiver, plan(receiver, endpoint, state=state)))[0])
    with ctx_host.use(FakeHost()):
        assert pack_current(receiver, endpoint, state)
        assert not pack_current(receiver, endpoint, host_state(endpoint.fqdn))  # another key: the pack differs
    assert not renewal_pack_present(receiver, endpoint)
    (Path(receiver.requests_dir) / f"{endpoint.fqdn}.next.md").write_text("old\n")
    assert renewal_pack_present(receiver, endpoint)


def test_the_operation_name_says_what_happens_to_which_pack(receiver):
    first, second = two_endpoints(receiver)
    write, renewal = plan(receiver, first), plan(receiver, first, renewal=True)
    assert packs_name([(first.fqdn, write)]) == f"Request pack for {first.fqdn}"
    assert packs_name([(first.fqdn, write), (second.fqdn, plan(receiver, second))]) == \
        f"Request packs for 2 endpoints: {first.fqdn}, {second.fqdn}"
    assert packs_name([(first.fqdn, write), (first.fqdn, renewal),
                       (second.fqdn, plan(receiver, second, "remove_next", renewal=True))]) == \
        f"Request pack for {first.fqdn}; Renewal request pack for {first.fqdn} (next key); " \
        f"No stale renewal request pack for {second.fqdn}"
    assert packs_name([(second.fqdn, plan(receiver, second, "promote"))]) == \
        f"Request pack for {second.fqdn}: the renewed key's CSR is now the live one"


def test_a_pack_that_cannot_be_read_does_not_hide_another_endpoints_problem(receiver):
    """Any failure of one pack (here a public key openssl never made) is reported with the others,
    each naming its endpoint, after every pack that can be written is written."""
    first, second = two_endpoints(receiver)
    broken = host_state(second.fqdn)
    broken.key_public_pem = "not a key"
    states = {first.fqdn: host_state("someone-else.nhs.uk"), second.fqdn: broken}
    commands, _ = collect(request_packs, **packs_op(receiver, plan(receiver, first), plan(receiver, second)))
    with ctx_host.use(ReadingHost(states)), pytest.raises(RequestPackError) as refused:
        for command in commands:
            command.function(*command.args, **command.kwargs)
    assert first.fqdn in str(refused.value) and second.fqdn in str(refused.value)
