"""Reliability with real processes on 127.0.0.1: the receiver down for part of a stream, the sender SIGKILLed and
restarted several times, and receivers answering 400, 500 or slowly. Every committed detection must arrive exactly
once (the receiver's table is compared with the producer's seeded detections)."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edge_bundle_factory import TONES_HZ, session_bundle, tone_sequence, write_wav
from receiver_process import REPO_ROOT, ReceiverProcess, free_port, python_env
from sample_detections import make_detections

from edge_runtime.bundle import open_bundle
from edge_runtime.outbox import Outbox
from edge_runtime.receiver import DetectionStore

pytestmark = pytest.mark.slow

PRODUCER = Path(__file__).with_name("producer_process.py")
PROCESS_TIMEOUT_S = 60.0
SEED = 2021


class Producer:
    """producer_process.py as a subprocess; lines() yields its stdout."""

    def __init__(self, tmp_path: Path, *, sink: str, count: int, extra: tuple[str, ...] = ()) -> None:
        self.command = [sys.executable, str(PRODUCER), "--outbox", str(tmp_path / "outbox.sqlite3"), "--sink", sink,
                        "--count", str(count), "--progress", str(tmp_path / "progress"), "--seed", str(SEED), *extra]
        self.log_path = tmp_path / "producer.log"

    def start(self) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=log, text=True, env=python_env(),
                                    cwd=REPO_ROOT)

    def run_to_end(self) -> subprocess.CompletedProcess:
        with open(self.log_path, "ab") as log:
            return subprocess.run(self.command, stdout=subprocess.PIPE, stderr=log, text=True, env=python_env(),
                                  cwd=REPO_ROOT, timeout=PROCESS_TIMEOUT_S)


def wait_for_committed(process: subprocess.Popen, at_least: int) -> int:
    """Read the producer's 'committed K' lines until K >= at_least; returns K."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"producer exited early with {process.wait()}")
        if line.startswith("committed ") and int(line.split()[1]) >= at_least:
            return int(line.split()[1])
    raise AssertionError("producer too slow")


def assert_exactly_once(db: Path, count: int) -> list[dict]:
    store = DetectionStore(db)
    try:
        stored = store.detections()
    finally:
        store.close()
    expected = {d.id: d.to_json_dict() for d in make_detections(count, seed=SEED)}
    ids = [d["id"] for d in stored]
    assert len(ids) == len(set(ids)) == count, f"stored {len(ids)} rows, {len(set(ids))} distinct, expected {count}"
    assert {d["id"]: d for d in stored} == expected
    return stored


def test_receiver_down_then_killed_then_back_every_detection_arrives_once(tmp_path):
    count = 200
    port = free_port()
    db = tmp_path / "receiver.sqlite3"
    producer = Producer(tmp_path, sink=f"http://127.0.0.1:{port}", count=count,
                        extra=("--per-add", "4", "--interval-s", "0.03"))
    process = producer.start()
    try:
        wait_for_committed(process, 40)  # the receiver is not there yet: all of this waits in the outbox
        receiver = ReceiverProcess(db, port=port).start()
        wait_for_committed(process, 100)
        receiver.process.send_signal(signal.SIGKILL)  # down again, mid-stream, without a goodbye
        receiver.stop()
        wait_for_committed(process, 150)
        receiver = ReceiverProcess(db, port=port).start()
        assert process.wait(timeout=PROCESS_TIMEOUT_S) == 0
        assert receiver.detections()["count"] == count
        assert receiver.stop() == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    assert_exactly_once(db, count)
    log = producer.log_path.read_text()
    assert "connection refused" in log  # it really was down while detections were produced


def test_sender_sigkilled_several_times_and_restarted_loses_nothing_stores_nothing_twice(tmp_path):
    count = 300
    rng = random.Random(SEED)
    db = tmp_path / "receiver.sqlite3"
    outbox_path = tmp_path / "outbox.sqlite3"
    # A slow receiver: a POST is in flight most of the time, so most kills interrupt one, and a backlog builds up.
    with ReceiverProcess(db, args=("--delay-s", "0.2")) as receiver:
        producer = Producer(tmp_path, sink=receiver.url, count=count, extra=("--batch-size", "25"))
        backlog_at_kill = []
        committed_at_kill = []
        for _ in range(4):
            process = producer.start()
            try:
                committed = wait_for_committed(process, (committed_at_kill or [0])[-1] + rng.randint(15, 45))
                time.sleep(rng.uniform(0.0, 0.1))
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait()
                process.stdout.close()
            committed_at_kill.append(committed)
            with Outbox(outbox_path, create=False) as box:
                backlog_at_kill.append(box.depth())
        result = producer.run_to_end()
        assert result.returncode == 0, result.stdout
        assert "done remaining=0 dead_letters=0" in result.stdout
        assert receiver.detections()["count"] == count
    assert committed_at_kill == sorted(committed_at_kill) and committed_at_kill[-1] < count
    assert max(backlog_at_kill) > 0, "no kill left undelivered detections behind: the test proved nothing"
    # a kill during a POST the receiver had stored but not yet answered: the batch was sent again
    resent = [int(m) for m in re.findall(r"stored \d+, duplicates (\d+)", receiver.log_path.read_text())]
    assert sum(resent) > 0, "no kill interrupted a POST in flight: the test proved nothing"
    assert_exactly_once(db, count)


@pytest.mark.parametrize(
    ("receiver_args", "producer_args", "expected_dead"),
    [
        (("--fail-first", "3", "--fail-status", "500"), (), 0),
        (("--fail-first", "1", "--fail-status", "400"), ("--per-add", "10", "--batch-size", "10"), 10),
        (("--delay-s", "0.2"), ("--timeout-s", "1.0"), 0),
    ],
    ids=["500-then-ok", "400-dead-letters-one-batch", "slow"],
)
def test_faulty_receiver_the_sender_goes_on(tmp_path, receiver_args, producer_args, expected_dead):
    count = 60
    db = tmp_path / "receiver.sqlite3"
    with ReceiverProcess(db, args=receiver_args) as receiver:
        result = Producer(tmp_path, sink=receiver.url, count=count, extra=producer_args).run_to_end()
    assert result.returncode == 0, result.stdout
    assert f"done remaining=0 dead_letters={expected_dead}" in result.stdout
    store = DetectionStore(db)
    try:
        stored = {d["id"] for d in store.detections()}
    finally:
        store.close()
    expected = [d.id for d in make_detections(count, seed=SEED)]
    assert stored == set(expected[expected_dead:])  # the refused batch is the first one
    if expected_dead:
        with Outbox(tmp_path / "outbox.sqlite3", create=False) as box:
            assert {x.detection_id for x in box.dead_letters()} == set(expected[:expected_dead])
            assert "HTTP 400" in box.dead_letters()[0].reason


def tone_files(tmp_path: Path, bundle_dir: Path) -> tuple[list[Path], list[tuple[str, float, str]]]:
    """Four WAV files with a tone in each of their 8 windows; returns (paths, expected (file, offset, ebird_code))."""
    bundle = open_bundle(bundle_dir)
    plans = {f"rec{i}.wav": [(i + w) % len(TONES_HZ) for w in range(8)] for i in range(4)}
    for name, plan in plans.items():
        write_wav(tmp_path / name, tone_sequence(plan, spec=bundle.spec), sample_rate_hz=bundle.spec.sample_rate_hz)
    expected = sorted((name, w * bundle.spec.clip_seconds, bundle.labels[k].ebird_code)
                      for name, plan in plans.items() for w, k in enumerate(plan))
    return [tmp_path / name for name in plans], expected


def runtime_env(tmp_path: Path) -> dict[str, str]:
    """The runtime's environment: no stray EDGE_RUNTIME_* settings, its caches under tmp_path."""
    env = {k: v for k, v in python_env().items() if not k.startswith("EDGE_RUNTIME_")}
    env["EDGE_RUNTIME_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def outbox_depth(path: Path) -> int:
    """Pending detections in the outbox at path; 0 while it does not exist yet."""
    if not path.exists():
        return 0
    with Outbox(path, create=False) as box:
        return box.depth()


def received_windows(detections: list[dict]) -> list[tuple[str, float, str]]:
    return sorted((Path(d["source"]).name, d["offset_start_s"], d["ebird_code"]) for d in detections)


def test_the_runtime_rides_out_a_receiver_outage_and_a_receiver_crash(tmp_path_factory, tmp_path):
    """`python -m edge_runtime run` with the receiver down at first, then up, SIGKILLed, and up again."""
    bundle_dir = session_bundle(tmp_path_factory)
    files, expected = tone_files(tmp_path, bundle_dir)
    port = free_port()
    db = tmp_path / "receiver.sqlite3"
    outbox_path = tmp_path / "outbox.sqlite3"
    command = [sys.executable, "-m", "edge_runtime", "run", "--bundle", str(bundle_dir),
               *[a for path in files for a in ("--source", f"file:{path}")],
               "--sink", f"http://127.0.0.1:{port}", "--outbox", str(outbox_path), "--batch-size", "3",
               "--retry-initial-seconds", "0.05", "--retry-max-seconds", "0.2", "--shutdown-flush-seconds", "40"]
    with open(tmp_path / "runtime.log", "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=runtime_env(tmp_path), cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while outbox_depth(outbox_path) < len(expected):  # all of them wait in the outbox: nobody listens
            assert process.poll() is None and time.monotonic() < deadline, "the runtime did not queue its detections"
            time.sleep(0.05)
        receiver = ReceiverProcess(db, port=port, args=("--delay-s", "0.1")).start()
        while receiver.detections()["count"] < 9:
            assert time.monotonic() < deadline, "nothing delivered once the receiver was up"
            time.sleep(0.05)
        receiver.process.send_signal(signal.SIGKILL)
        receiver.stop()
        time.sleep(0.3)
        receiver = ReceiverProcess(db, port=port).start()
        assert process.wait(timeout=PROCESS_TIMEOUT_S) == 0, (tmp_path / "runtime.log").read_text()[-3000:]
        received = receiver.detections()["detections"]
        receiver.stop()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    ids = [d["id"] for d in received]
    assert len(ids) == len(set(ids)) == len(expected)
    assert received_windows(received) == expected
    assert "connection refused" in (tmp_path / "runtime.log").read_text()


def test_the_runtime_sigkilled_and_restarted_delivers_every_detection_exactly_once(tmp_path_factory, tmp_path):
    """`python -m edge_runtime run` over four files, SIGKILLed three times while delivering, then run to the end.

    A restart re-processes the files: the detection ids are deterministic, so the re-sent detections are
    recognised as duplicates by the receiver.
    """
    bundle_dir = session_bundle(tmp_path_factory)
    files, expected = tone_files(tmp_path, bundle_dir)
    env = runtime_env(tmp_path)
    outbox_path = tmp_path / "outbox.sqlite3"
    db = tmp_path / "receiver.sqlite3"
    rng = random.Random(SEED)
    backlog_at_kill = []
    # slow answers: a batch is in flight most of the time, and the runtime is still delivering when killed
    with ReceiverProcess(db, args=("--delay-s", "0.15")) as receiver:
        command = [sys.executable, "-m", "edge_runtime", "run", "--bundle", str(bundle_dir),
                   *[a for path in files for a in ("--source", f"file:{path}")],
                   "--sink", receiver.url, "--outbox", str(outbox_path), "--batch-size", "3",
                   "--retry-initial-seconds", "0.05", "--retry-max-seconds", "0.2", "--shutdown-flush-seconds", "30"]
        stored_before = 0
        with open(tmp_path / "runtime.log", "ab") as log:
            for _ in range(3):
                process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=REPO_ROOT)
                try:
                    deadline = time.monotonic() + PROCESS_TIMEOUT_S
                    while receiver.detections()["count"] <= stored_before:  # wait for progress in this run
                        assert process.poll() is None, f"runtime exited early: {process.returncode}"
                        assert time.monotonic() < deadline, "no detection delivered"
                        time.sleep(0.05)
                    time.sleep(rng.uniform(0.0, 0.2))
                finally:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                stored_before = receiver.detections()["count"]
                with Outbox(outbox_path, create=False) as box:
                    backlog_at_kill.append(box.depth())
            final = subprocess.run(command, stdout=log, stderr=log, env=env, cwd=REPO_ROOT, timeout=PROCESS_TIMEOUT_S)
        received = receiver.detections()["detections"]
    assert final.returncode == 0, (tmp_path / "runtime.log").read_text()[-3000:]
    assert stored_before < len(expected), "the runtime finished before the last kill: the test proved nothing"
    assert max(backlog_at_kill) > 0, "no kill left undelivered detections behind: the test proved nothing"
    ids = [d["id"] for d in received]
    assert len(ids) == len(set(ids)) == len(expected)
    assert received_windows(received) == expected
    resent = [int(m) for m in re.findall(r"stored \d+, duplicates (\d+)", receiver.log_path.read_text())]
    assert sum(resent) > 0  # re-processed windows were sent again and recognised
    with Outbox(outbox_path, create=False) as box:
        assert box.depth() == 0 and box.dead_letter_count() == 0
