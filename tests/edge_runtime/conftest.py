"""Issue 13.8: the edge tests contact only 127.0.0.1, by its literal address. This guard makes every other
connection or name lookup from the test process an error (subprocesses are given 127.0.0.1 URLs only)."""

from __future__ import annotations

import socket

import pytest

ALLOWED_HOST = "127.0.0.1"


class ForeignAddressError(AssertionError):
    """A test tried to reach something other than 127.0.0.1 (or to resolve a name)."""


def _check(address: object) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if host != ALLOWED_HOST:
        raise ForeignAddressError(f"the test reached for {address!r}; tests may contact only {ALLOWED_HOST}")


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host not in (ALLOWED_HOST, b"127.0.0.1", None):
            raise ForeignAddressError(f"the test resolved {host!r}; tests may contact only {ALLOWED_HOST}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):  # noqa: ANN001, ANN202
        _check(address)
        return real_connect(self, address)

    def connect_ex(self, address):  # noqa: ANN001, ANN202
        _check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)

