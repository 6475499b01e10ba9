"""flush: deliver what is pending and exit 0, or exit non-zero when anything remains (real receiver, real outbox)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from receiver_process import REPO_ROOT, free_port, python_env
from sample_detections import make_detections

from edge_runtime.delivery import DeliverySettings
from edge_runtime.flush import flush
from edge_runtime.outbox import Outbox, OutboxError
from edge_runtime.receiver import ReceiverSettings, start_receiver

FAST = dataclasses.replace(DeliverySettings(), backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=2.0)
DEADLINE_S = 20.0
SHORT_DEADLINE_S = 0.3


@pytest.fixture
def outbox_path(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as box:
        box.add(make_detections(120, seed=191))
    return path


def test_flush_delivers_everything_and_reports_success(tmp_path, outbox_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3")) as running:
        report = flush(outbox_path=outbox_path, sink=running.url, settings=FAST, deadline_s=DEADLINE_S)
        assert running.server.store.count() == 120
    assert (report.sent, report.remaining, report.exit_code) == (120, 0, 0)
    assert "flushed 120 detection(s)" in report.describe()


def test_flush_with_the_receiver_down_keeps_everything_and_fails(outbox_path):
    report = flush(outbox_path=outbox_path, sink=f"http://127.0.0.1:{free_port()}", settings=FAST,
                   deadline_s=SHORT_DEADLINE_S)
    assert (report.sent, report.remaining, report.exit_code) == (0, 120, 1)
    assert "connection refused" in report.last_error
    with Outbox(outbox_path, create=False) as box:
        assert box.depth() == 120


def test_dead_letters_fail_the_flush_and_can_be_requeued_after_the_fix(tmp_path, outbox_path):
    token = "right-token"
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", token=token)) as running:
        wrong = flush(outbox_path=outbox_path, sink=running.url, settings=FAST, deadline_s=DEADLINE_S,
                      environ={FAST.token_env: "wrong-token"})
        assert (wrong.dead_lettered, wrong.remaining, wrong.exit_code) == (120, 0, 1)
        assert "HTTP 401" in wrong.last_error
        fixed = flush(outbox_path=outbox_path, sink=running.url, settings=FAST, deadline_s=DEADLINE_S,
                      requeue_dead_letters=True, environ={FAST.token_env: token})
        assert (fixed.requeued, fixed.sent, fixed.dead_letters_total, fixed.exit_code) == (120, 120, 0, 0)
        assert running.server.store.count() == 120


def test_flush_refuses_a_missing_outbox(tmp_path):
    with pytest.raises(OutboxError, match="no outbox there"):
        flush(outbox_path=tmp_path / "nope.sqlite3", sink="stdout", settings=FAST)
    assert not (tmp_path / "nope.sqlite3").exists()


@pytest.mark.parametrize("module", ["edge_runtime", "edge_runtime.flush"])
def test_command_line_exit_status(tmp_path, outbox_path, module):
    prefix = [sys.executable, "-m", module] + (["flush"] if module == "edge_runtime" else [])

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, env=python_env(), cwd=REPO_ROOT,
                              timeout=120)

    down = run("--outbox", str(outbox_path), "--sink", f"http://127.0.0.1:{free_port()}", "--deadline-s", "0.2")
    assert down.returncode == 1 and "120 still pending" in down.stdout
    missing = run("--outbox", str(tmp_path / "missing.sqlite3"), "--sink", "stdout")
    assert missing.returncode == 2 and "no outbox there" in missing.stderr
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3")) as running:
        up = run("--outbox", str(outbox_path), "--sink", running.url)
        assert up.returncode == 0, up.stderr
        assert "flushed 120 detection(s)" in up.stdout and "0 still pending" in up.stdout
        assert running.server.store.count() == 120
