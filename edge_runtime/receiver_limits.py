"""What the reference receiver refuses before it trusts a request: Content-Length, JSON shape and size, slow clients.

Standard library only. Used by `edge_runtime.receiver`.
"""

from __future__ import annotations

import io
import json
import math
import re
import socket
import time
from typing import Any

from edge_runtime.errors import EdgeRuntimeError

MAX_JSON_DEPTH = 8
"""Deepest nesting of arrays and objects accepted in a request body (a batch needs 3)."""
MAX_NUMBER_CHARS = 32
"""Longest number literal accepted in a request body (a detection's numbers need about 20)."""
_DECIMAL_RE = re.compile(r"[0-9]+")
_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_INNERMOST_RE = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")


class RequestRefused(EdgeRuntimeError):
    """A request the receiver answers with `status` and `message` (a JSON {"error": message})."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(text: str | None, *, max_bytes: int) -> int:
    """The body size a request announces: 411 when missing, 400 unless plain decimal digits, 413 above max_bytes."""
    if text is None:
        raise RequestRefused(411, "Content-Length required")
    if not _DECIMAL_RE.fullmatch(text.strip()):
        raise RequestRefused(400, f"bad Content-Length {text[:40]!r}: expected decimal digits")
    digits = text.strip().lstrip("0") or "0"
    if len(digits) > len(str(max_bytes)) or int(digits) > max_bytes:
        raise RequestRefused(413, f"body of {digits[:40]} bytes, at most {max_bytes}; send smaller batches")
    return int(digits)


def _nesting_within(body: bytes, depth: int) -> bool:
    """True when arrays and objects in body nest at most `depth` deep (strings ignored; linear passes in C)."""
    text = _STRING_RE.sub(b'""', body)
    for _ in range(depth):
        text, n = _INNERMOST_RE.subn(b"0", text)
        if n == 0:
            break
    return not any(c in text for c in b"[]{}")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"number {text[:12]}... has {len(text)} characters, at most {MAX_NUMBER_CHARS}")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"number {text[:12]}... has {len(text)} characters, at most {MAX_NUMBER_CHARS}")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is not finite")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send finite numbers")


def parse_json_body(body: bytes) -> Any:
    """The parsed body; RequestRefused(400) for invalid JSON, nesting deeper than MAX_JSON_DEPTH, long or
    non-finite numbers (NaN, Infinity, 1e999)."""
    if not _nesting_within(body, MAX_JSON_DEPTH):
        raise RequestRefused(400, f"body is not JSON nested at most {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(body, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestRefused(400, f"body is not JSON ({exc})") from None


def printable(text: str) -> str:
    """text with control and other non-printable characters escaped (\\x1b, \\n), safe for one log line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class DeadlineReader(io.RawIOBase):
    """A socket's input that ends in TimeoutError once `deadline` (time.monotonic()) has passed.

    Each read waits at most for the time left, so a client that drips a byte at a time cannot
    hold the connection past the deadline.
    """

    def __init__(self, sock: socket.socket, *, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)
