"""`python -m edge_runtime run` when things go wrong around it: files it must not read, an outbox that vanishes,
inputs that would hang it or pass silently. Real bundle (tone detector), real wasm, real SQLite, real files."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from edge_bundle_factory import session_bundle, tone_sequence, write_wav
from receiver_process import REPO_ROOT, python_env
from sample_detections import make_detections

from edge_runtime.bundle import open_bundle
from edge_runtime.flush import flush
from edge_runtime.outbox import Outbox
from edge_runtime.runner import EXIT_OUTBOX_FAILED, EXIT_SOURCE_FAILED, EXIT_USAGE, run
from edge_runtime.settings import EdgeSettings

RUN_WAIT_S = 60.0
POLL_S = 0.1


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_bundle(tmp_path_factory)


@pytest.fixture
def settings(tmp_path: Path, bundle_dir: Path) -> EdgeSettings:
    """The production defaults, pointed at temporary files and a jsonl sink."""
    return dataclasses.replace(EdgeSettings(), bundle=str(bundle_dir), sink=f"jsonl:{tmp_path / 'out.jsonl'}",
                               outbox=tmp_path / "outbox.sqlite", status=tmp_path / "status.json",
                               device_id="pi-test", flush_deadline_s=1.0, dir_poll_s=0.1)


def delivered(settings: EdgeSettings) -> list[dict]:
    path = Path(settings.sink.removeprefix("jsonl:"))
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wav_header(*, sample_rate_hz: int, data_bytes: int) -> bytes:
    """A 44-byte mono 16-bit PCM WAV header declaring data_bytes (0xFFFFFFFF: unknown, as streaming writers do)."""
    riff = 0xFFFFFFFF if data_bytes == 0xFFFFFFFF else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate_hz,
            2 * sample_rate_hz, 2, 16) + b"data" + struct.pack("<I", data_bytes))


class RunThread:
    """run(settings) in a thread, with its exit status."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.stop = threading.Event()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._target, args=(settings,), daemon=True)
        self.thread.start()

    def _target(self, settings: EdgeSettings) -> None:
        self.code = run(settings, stop=self.stop)

    def wait(self, timeout_s: float = RUN_WAIT_S) -> int | None:
        self.thread.join(timeout_s)
        return self.code


def wait_for(condition, timeout_s: float = RUN_WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def test_an_outbox_deleted_while_running_ends_the_run_with_an_error(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    watched = tmp_path / "incoming"
    watched.mkdir()
    settings = dataclasses.replace(settings, sources=(f"dir:{watched}",))
    running = RunThread(settings)
    try:
        assert wait_for(lambda: settings.outbox.exists() and "running" in caplog.text)
        for path in (settings.outbox, settings.outbox.with_name(settings.outbox.name + "-wal"),
                     settings.outbox.with_name(settings.outbox.name + "-shm")):
            path.unlink(missing_ok=True)
        code = running.wait(timeout_s=30)
    finally:
        running.stop.set()
        running.wait()
    assert code == EXIT_OUTBOX_FAILED
    assert "deleted or replaced" in caplog.text
    assert "still pending" not in caplog.text
    assert "Traceback" not in caplog.text


# -- no silent hangs or stalls (issue 13.5) -----------------------------------------------------------------


@pytest.mark.parametrize("overlap_s", [4.9, 5.0, 7.0])
def test_an_overlap_that_leaves_no_real_step_is_a_usage_error(settings, tmp_path, overlap_s, caplog):
    spec = open_bundle(settings.bundle).spec
    wav = write_wav(tmp_path / "a.wav", tone_sequence([0, 1], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    settings = dataclasses.replace(settings, sources=(f"file:{wav}",), overlap_s=overlap_s)
    started = time.monotonic()
    assert run(settings) == EXIT_USAGE
    assert time.monotonic() - started < RUN_WAIT_S
    assert "overlap_s" in caplog.text and "0.25 s" in caplog.text


class ClosedStream(io.RawIOBase):
    """A stdin whose reads fail as a closed or broken stream's do (fault injection: `exc` is raised)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self.exc


@pytest.mark.parametrize("exc", [ValueError("I/O operation on closed file"), SystemExit(3)])
def test_a_producer_that_dies_ends_the_run_with_its_error(settings, tmp_path, exc, caplog):
    watched = tmp_path / "incoming"
    watched.mkdir()  # a second, live source: without the fix the run would go on (or wait) forever
    settings = dataclasses.replace(settings, sources=("stdin", f"dir:{watched}"))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(run(settings, stdin_stream=ClosedStream(exc))),
                              daemon=True)
    thread.start()
    thread.join(RUN_WAIT_S)
    assert result == [EXIT_SOURCE_FAILED]
    assert "stdin" in caplog.text and type(exc).__name__ in caplog.text
    assert json.loads(settings.status.read_text())["state"] == "stopped"


def test_a_fifo_in_a_watched_directory_is_skipped_and_blocks_nothing(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    spec = open_bundle(settings.bundle).spec
    watched = tmp_path / "incoming"
    watched.mkdir()
    os.mkfifo(watched / "0-pipe.wav")  # sorted first: opening it would block the watcher forever
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(watched / "1-socket.wav"))
        write_wav(watched / "2-real.wav", tone_sequence([2], spec=spec), sample_rate_hz=spec.sample_rate_hz)
        running = RunThread(dataclasses.replace(settings, sources=(f"dir:{watched}",)))
        try:
            assert wait_for(lambda: any(d["ebird_code"] for d in delivered(settings)), timeout_s=RUN_WAIT_S)
        finally:
            running.stop.set()
            assert running.wait() == 0
    assert [(d["offset_start_s"], d["source"].rsplit("/", 1)[1]) for d in delivered(settings)] == [(0.0, "2-real.wav")]
    assert "0-pipe.wav: not a regular file" in caplog.text and "1-socket.wav: not a regular file" in caplog.text


def test_a_wav_still_being_written_is_read_once_when_complete(settings, tmp_path):
    """A streaming writer leaves the WAV size unknown until it ends; a pause longer than the polls must not
    get the first part analysed, and the whole file analysed again under different ids."""
    spec = open_bundle(settings.bundle).spec
    watched = tmp_path / "incoming"
    watched.mkdir()
    pcm = (tone_sequence([0, None, 1, 3], spec=spec) * 32767).astype("<i2").tobytes()
    half = len(pcm) // 2
    header = bytearray(wav_header(sample_rate_hz=spec.sample_rate_hz, data_bytes=0xFFFFFFFF))
    running = RunThread(dataclasses.replace(settings, sources=(f"dir:{watched}",)))
    try:
        path = watched / "stream.wav"
        with open(path, "wb") as f:
            f.write(header + pcm[:half])
            f.flush()
            time.sleep(20 * settings.dir_poll_s)  # the writer pauses for many polls
            f.write(pcm[half:])
            struct.pack_into("<I", header, 4, 36 + len(pcm))
            struct.pack_into("<I", header, 40, len(pcm))
            f.seek(0)
            f.write(header)  # the writer ends: sizes patched
        assert wait_for(lambda: len(delivered(settings)) >= 3)
        time.sleep(20 * settings.dir_poll_s)
    finally:
        running.stop.set()
        assert running.wait() == 0
    found = sorted((d["offset_start_s"], d["ebird_code"]) for d in delivered(settings))
    codes = [label.ebird_code for label in open_bundle(settings.bundle).labels]
    assert found == [(0.0, codes[0]), (10.0, codes[1]), (15.0, codes[3])]


TRICKLE_BYTE_S = 0.2
FLUSH_DEADLINE_S = 1.0
FLUSH_SLACK_S = 3.0


class TricklingHandler(socketserver.BaseRequestHandler):
    """Answers one byte of a never-ending header every TRICKLE_BYTE_S: each read succeeds, no answer completes."""

    def handle(self) -> None:
        self.request.recv(65536)
        answer = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 10_000
        for byte in answer:
            try:
                self.request.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(TRICKLE_BYTE_S)


def test_flush_returns_by_its_deadline_against_a_trickling_receiver(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        outbox.add(make_detections(5, seed=331))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), TricklingHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        started = time.monotonic()
        report = flush(outbox_path=path, sink=f"http://127.0.0.1:{server.server_address[1]}", deadline_s=FLUSH_DEADLINE_S)
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert elapsed < FLUSH_DEADLINE_S + FLUSH_SLACK_S
    assert (report.sent, report.remaining, report.exit_code) == (0, 5, 1)


@pytest.mark.parametrize("threads", ["0", "100000", "-1"])
def test_absurd_num_threads_is_refused_not_a_crash(settings, threads):
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "check", "--bundle", settings.bundle, "--num-threads", threads],
        capture_output=True, text=True, env=python_env(), cwd=REPO_ROOT, timeout=120,
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert "num_threads" in result.stderr
