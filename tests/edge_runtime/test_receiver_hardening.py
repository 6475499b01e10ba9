"""The reference receiver under attack or misuse, over raw sockets on 127.0.0.1: what it must refuse before it reads a
body, what it must not let pin its threads, what it must never store or answer 200 for."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
from sample_detections import make_detections
from test_receiver import get, post

from edge_runtime.receiver import ReceiverSettings, start_receiver
from edge_runtime.sinks import batch_json

TOKEN = "s3cret-token-for-tests"
ANSWER_WAIT_S = 5.0
"""How long a test waits for an answer that a hardened receiver gives at once (the unfixed one never answers)."""
REQUEST_TIMEOUT_S = 0.5
MAX_CONNECTIONS = 8
IDLE_CONNECTIONS = 40
PAGE_SIZE = 10


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def raw_request(url: str, data: bytes, *, wait_s: float = ANSWER_WAIT_S) -> bytes:
    """Send raw bytes (keeping our side open), return what the server answers before closing or wait_s."""
    with socket.create_connection(_host_port(url), timeout=wait_s) as conn:
        conn.sendall(data)
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    """The HTTP status of a raw answer; None when the server answered nothing."""
    if not answer.startswith(b"HTTP/"):
        return None
    return int(answer.split(b" ", 2)[1])


def post_head(content_length: str | None, *, token: str | None = None, path: str = "/detections") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@pytest.fixture
def receiver(tmp_path):
    settings = ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite3", max_batch=50, token=TOKEN,
                                request_timeout_s=REQUEST_TIMEOUT_S, max_connections=MAX_CONNECTIONS,
                                page_size=PAGE_SIZE)
    with start_receiver(settings) as running:
        yield running


@pytest.mark.parametrize(
    ("content_length", "status"),
    [(None, 411), ("-1", 400), ("+12", 400), ("1_0", 400), (" 0x10", 400), ("1e3", 400), ("99999999999999999999", 413)],
)
def test_a_bad_content_length_is_refused_before_any_body_is_read(receiver, content_length, status):
    # no body follows: a receiver that tries to read one waits until our side gives up
    started = time.monotonic()
    answer = raw_request(receiver.url, post_head(content_length, token=TOKEN))
    assert status_of(answer) == status, answer[:200]
    assert time.monotonic() - started < ANSWER_WAIT_S


def test_the_token_is_checked_before_the_body_is_read(receiver):
    answer = raw_request(receiver.url, post_head("4000", token="wrong"))
    assert status_of(answer) == 401, answer[:200]
    answer = raw_request(receiver.url, post_head("4000", token=TOKEN, path="/elsewhere"))
    assert status_of(answer) == 404, answer[:200]


def test_idle_connections_neither_pin_threads_nor_lock_senders_out(receiver):
    threads_before = threading.active_count()
    idle = [socket.create_connection(_host_port(receiver.url), timeout=ANSWER_WAIT_S) for _ in range(IDLE_CONNECTIONS)]
    try:
        time.sleep(0.3)
        assert threading.active_count() - threads_before <= MAX_CONNECTIONS + 1
        for conn in idle:  # each is answered at once (503 over the cap) or closed after the request timeout
            try:
                answer = conn.recv(65536)
            except ConnectionResetError:
                answer = b""
            assert answer == b"" or status_of(answer) in (408, 503), answer[:100]
        body = batch_json(make_detections(3, seed=211))
        assert post(receiver.url, body, token=TOKEN) == (200, {"stored": 3, "duplicates": 0})
    finally:
        for conn in idle:
            conn.close()


def test_a_slowloris_client_is_cut_off(receiver):
    head = post_head("10", token=TOKEN)
    started = time.monotonic()
    with socket.create_connection(_host_port(receiver.url), timeout=ANSWER_WAIT_S) as conn:
        try:
            for byte in head:  # one byte every 0.1 s: each read succeeds, the whole request never arrives
                conn.sendall(bytes([byte]))
                time.sleep(0.1)
                if time.monotonic() - started > 4 * REQUEST_TIMEOUT_S + ANSWER_WAIT_S:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            conn.recv(65536)
        except (TimeoutError, ConnectionResetError):
            pass
    assert time.monotonic() - started < 4 * REQUEST_TIMEOUT_S + 1.0


def test_deeply_nested_json_is_a_400_not_a_dropped_connection(receiver):
    body = b'{"detections": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, answer = post(receiver.url, body, token=TOKEN)
    assert status == 400 and "nest" in answer["error"]


@pytest.mark.parametrize("value", [b"1" * 400, b"1e999", b"NaN", b"-Infinity"])
def test_huge_or_non_finite_numbers_are_refused(receiver, value):
    item = json.dumps(make_detections(1, seed=223)[0].to_json_dict())
    body = b'{"detections": [' + item[:-1].encode() + b', "extra": ' + value + b"}]}"
    status, answer = post(receiver.url, body, token=TOKEN)
    assert status == 400, answer
    assert get(receiver.url, token=TOKEN)[1]["count"] == 0


def test_unknown_keys_are_not_stored(receiver):
    detection = make_detections(1, seed=227)[0]
    body = json.dumps({"detections": [detection.to_json_dict() | {"note": "x" * 1000, "nested": {"a": [1, 2]}}]})
    assert post(receiver.url, body.encode(), token=TOKEN) == (200, {"stored": 1, "duplicates": 0})
    assert get(receiver.url, token=TOKEN)[1]["detections"] == [detection.to_json_dict()]


def test_get_detections_is_paginated_by_default(receiver):
    detections = make_detections(25, seed=229)
    assert post(receiver.url, batch_json(detections), token=TOKEN)[0] == 200
    status, page = get(receiver.url, token=TOKEN)
    assert status == 200 and page["count"] == 25
    assert [d["id"] for d in page["detections"]] == [d.id for d in detections[:PAGE_SIZE]]
    assert page["next_offset"] == PAGE_SIZE
    status, page = get(receiver.url, f"/detections?limit=1000&offset={2 * PAGE_SIZE}", token=TOKEN)
    assert [d["id"] for d in page["detections"]] == [d.id for d in detections[2 * PAGE_SIZE :]]
    assert page["next_offset"] is None


def test_the_request_line_is_escaped_in_the_log(receiver, caplog):
    caplog.set_level(logging.INFO, logger="edge_runtime.receiver")
    raw_request(receiver.url, b"GET /\x1b[31mred\x1b[0m\x07 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    deadline = time.monotonic() + ANSWER_WAIT_S
    while "red" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "red" in caplog.text
    assert "\x1b" not in caplog.text and "\x07" not in caplog.text
    assert "\\x1b[31mred" in caplog.text


def test_malformed_requests_are_answered_4xx(receiver):
    for data in (b"BREW /pot HTCPCP/1.0\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 40,
                 b"GET " + b"/a" * 40_000 + b" HTTP/1.1\r\n\r\n"):
        status = status_of(raw_request(receiver.url, data))
        assert status is not None and 400 <= status < 500, data[:40]


def test_a_database_deleted_while_running_is_a_503_never_a_200(receiver):
    body = batch_json(make_detections(4, seed=233))
    assert post(receiver.url, body[: len(body)], token=TOKEN)[0] == 200
    db = receiver.server.store.path
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    status, answer = post(receiver.url, batch_json(make_detections(2, seed=239)), token=TOKEN)
    assert status == 503 and "receiver.sqlite3" in answer["error"]
    assert get(receiver.url, "/health", token=TOKEN)[0] == 503
