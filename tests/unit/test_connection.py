"""TCP_NODELAY on the SSH socket pyinfra's connector holds, and nothing done to anything else."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from bars_receiver.connection import without_nagle


def host_with(sock) -> SimpleNamespace:
    transport = SimpleNamespace(sock=sock)
    return SimpleNamespace(connector=SimpleNamespace(client=SimpleNamespace(get_transport=lambda: transport)))


@pytest.fixture
def tcp_pair():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    yield client
    for one in (client, server, listener):
        one.close()


def test_a_direct_tcp_connection_gets_nodelay(tcp_pair):
    assert tcp_pair.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    assert without_nagle(host_with(tcp_pair)) is True
    assert tcp_pair.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


@pytest.mark.parametrize("host", [
    SimpleNamespace(),  # no connector
    SimpleNamespace(connector=SimpleNamespace()),  # a connector without an SSH client (@local, @docker)
    SimpleNamespace(connector=SimpleNamespace(client=None)),  # not connected
    host_with(None),
    host_with(SimpleNamespace(send=lambda data: None)),  # a ProxyCommand or a jump host's channel
])
def test_anything_else_is_left_alone(host):
    assert without_nagle(host) is False


def test_a_unix_socket_is_left_alone():
    left, right = socket.socketpair()
    try:
        assert without_nagle(host_with(left)) is False
    finally:
        left.close()
        right.close()
