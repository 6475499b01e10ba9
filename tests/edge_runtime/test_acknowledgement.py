"""Delivery counts as done only when the receiver acknowledged the batch in its protocol; an outbox that vanishes
mid-run is an error, never "pending"; flush fails while dead letters remain. Real HTTP on 127.0.0.1, real SQLite."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys

import pytest
from receiver_process import REPO_ROOT, python_env
from sample_detections import make_detections
from scripted_http import scripted_server

from edge_runtime.delivery import Deliverer, DeliverySettings, TransientSendError, make_sink
from edge_runtime.flush import flush
from edge_runtime.outbox import Outbox, OutboxError
from edge_runtime.receiver import ReceiverSettings, start_receiver

FAST = dataclasses.replace(DeliverySettings(), batch_size=10, timeout_s=2.0, backoff_initial_s=0.01,
                           backoff_max_s=0.05)
PORTAL_HTML = b"<html><body>Welcome to Cafe WiFi. Accept the terms to continue.</body></html>"
ATTEMPTS = 5


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/html", PORTAL_HTML, "captive portal"),
        ("application/json", b'{"ok": true}', "not the receiver's answer"),
        ("application/json", b'{"stored": 1, "duplicates": 0}', "answered for 1 of 3"),
        ("application/json", b"", "not the receiver's answer"),
    ],
)
def test_a_2xx_that_is_not_the_protocol_answer_is_a_transient_failure(content_type, body, reason):
    with scripted_server(200, {"Content-Type": content_type}, body=body) as (url, _):
        with pytest.raises(TransientSendError, match=reason):
            make_sink(url).send(make_detections(3, seed=301))


def test_the_protocol_answer_is_an_acknowledgement(tmp_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3")) as running:
        receipt = make_sink(running.url).send(make_detections(3, seed=303))
    assert (receipt.stored, receipt.duplicates) == (3, 0)


def test_a_captive_portal_keeps_every_detection_and_is_logged_once_per_outage(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge_runtime.delivery")
    detections = make_detections(25, seed=307)
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.add(detections)
        with scripted_server(200, {"Content-Type": "text/html"}, body=PORTAL_HTML) as (url, _):
            deliverer = Deliverer(outbox, make_sink(url), settings=FAST)
            results = [deliverer.deliver_once() for _ in range(ATTEMPTS)]
        assert all(r.retry and r.sent == 0 for r in results)
        assert outbox.depth() == 25
        outage_lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(outage_lines) == 1 and "captive portal" in outage_lines[0].getMessage()
        with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3")) as running:
            deliverer.sink = make_sink(running.url)
            assert deliverer.drain(deadline_s=20).remaining == 0
            assert running.server.store.count() == 25
    assert any("delivery restored" in r.getMessage() for r in caplog.records)


def test_jsonl_and_stdout_sinks_keep_acknowledging(tmp_path):
    receipt = make_sink(f"jsonl:{tmp_path / 'd.jsonl'}").send(make_detections(4, seed=311))
    assert receipt.stored == 4
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_an_outbox_deleted_or_replaced_while_open_is_an_error(tmp_path, how):
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        outbox.add(make_detections(5, seed=313))
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
        if how == "replaced":
            Outbox(path).close()
        with pytest.raises(OutboxError, match="deleted or replaced"):
            outbox.add(make_detections(1, seed=317))
        with pytest.raises(OutboxError, match="deleted or replaced"):
            outbox.stats()
        with pytest.raises(OutboxError, match="deleted or replaced"):
            outbox.pending(10)


def test_flush_exits_non_zero_while_dead_letters_remain(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        outbox.add(make_detections(6, seed=319))
        rows = outbox.pending(10)
        outbox.dead_letter([rowid for rowid, _ in rows[:2]], "HTTP 400 (test)")
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3")) as running:
        report = flush(outbox_path=path, sink=running.url, settings=FAST, deadline_s=20)
        assert (report.sent, report.remaining, report.dead_lettered, report.dead_letters_total) == (4, 0, 0, 2)
        assert report.exit_code == 1
        result = subprocess.run(
            [sys.executable, "-m", "edge_runtime", "flush", "--outbox", str(path), "--sink", running.url],
            capture_output=True, text=True, env=python_env(), cwd=REPO_ROOT, timeout=120,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 dead letter" in result.stdout + result.stderr
