"""The conftest guard of issue 13.8 is active: a name lookup or another address fails the test that tries it."""

from __future__ import annotations

import socket

import pytest


def test_the_guard_refuses_names_and_other_addresses() -> None:
    with pytest.raises(AssertionError, match="tests may contact only 127.0.0.1"):
        socket.getaddrinfo("localhost", 80)
    with socket.socket() as sock, pytest.raises(AssertionError, match="tests may contact only 127.0.0.1"):
        sock.connect(("10.0.0.1", 9))
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", 9)) != 0  # the literal address is allowed (nothing listens on 9)
