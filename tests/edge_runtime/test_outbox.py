"""Outbox: durable (WAL, synchronous=FULL, survives SIGKILL), ordered, deduplicated, bounded with a counted
drop-oldest policy, and a dead-letter table with reasons."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sample_detections import make_detections

from edge_runtime.outbox import Outbox, OutboxError, OutboxSettings

TESTS_DIR = Path(__file__).resolve().parent


def json_bytes(detection) -> bytes:
    """The bytes the outbox stores for a detection (compact JSON)."""
    return json.dumps(detection.to_json_dict(), separators=(",", ":"), ensure_ascii=False).encode()


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "state" / "outbox.sqlite3")
    yield box
    box.close()


def test_journal_is_wal_and_commits_are_synchronous_full(outbox):
    assert outbox.journal_settings() == {"journal_mode": "wal", "synchronous": "full"}


def test_queue_order_round_trip_and_acknowledgement(outbox):
    detections = make_detections(12, seed=3)
    assert outbox.add(detections[:7]) == 7
    assert outbox.add(detections[7:]) == 5
    first = outbox.pending(5)
    assert [d for _, d in first] == detections[:5]
    assert outbox.mark_sent([rowid for rowid, _ in first]) == 5
    rest = outbox.pending(100)
    assert [d for _, d in rest] == detections[5:]
    stats = outbox.stats()
    assert (stats.depth, stats.added, stats.sent, stats.dropped, stats.dead_letters) == (7, 12, 5, 0, 0)
    assert stats.pending_bytes == sum(len(json_bytes(d)) for d in detections[5:])


def test_pending_duplicate_ids_are_queued_once(outbox):
    detections = make_detections(4, seed=5)
    outbox.add(detections)
    assert outbox.add(detections[1:3] + make_detections(1, seed=5, first_index=4)) == 1
    assert outbox.depth() == 5


def test_reopen_keeps_everything(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    detections = make_detections(6, seed=11)
    with Outbox(path) as box:
        box.add(detections)
        box.mark_sent([box.pending(2)[0][0]])
    with Outbox(path, create=False) as box:
        assert [d for _, d in box.pending(10)] == detections[1:]
        assert box.stats().sent == 1


def test_add_is_on_disk_when_it_returns_even_if_the_process_is_killed(tmp_path):
    """A child adds detections, reports it, then SIGKILLs itself: the committed rows must be there."""
    path = tmp_path / "outbox.sqlite3"
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from sample_detections import make_detections
        from edge_runtime.outbox import Outbox
        box = Outbox({str(path)!r})
        for i in range(5):
            box.add(make_detections(10, seed=2, first_index=10 * i))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", child], timeout=60)
    assert result.returncode == -signal.SIGKILL
    with Outbox(path, create=False) as box:
        assert [d for _, d in box.pending(100)] == make_detections(50, seed=2)


def test_row_bound_drops_oldest_logs_and_counts(tmp_path, caplog):
    detections = make_detections(8, seed=13)
    with Outbox(tmp_path / "o.sqlite3", max_rows=5) as box, caplog.at_level(logging.WARNING, "edge_runtime.outbox"):
        box.add(detections[:4])
        box.add(detections[4:])
        assert [d for _, d in box.pending(10)] == detections[3:]
        assert box.dropped_count() == 3
        assert box.depth() == 5
    assert "dropped the 3 oldest undelivered detection(s)" in caplog.text
    assert "3 dropped in total (drop-oldest policy)" in caplog.text


def test_byte_bound_drops_oldest(tmp_path):
    settings = OutboxSettings(max_bytes=64 * 1024)
    detections = make_detections(300, seed=17)
    sizes = [len(json_bytes(d)) for d in detections]
    with Outbox.open(tmp_path / "o.sqlite3", settings=settings) as box:
        for start in range(0, 300, 50):
            box.add(detections[start : start + 50])
        kept = [d for _, d in box.pending(1000)]
        assert box.pending_bytes() <= settings.max_bytes
        assert box.pending_bytes() == sum(sizes[len(detections) - len(kept) :])
        assert kept == detections[len(detections) - len(kept) :]
        assert box.dropped_count() == len(detections) - len(kept) > 0
        # one more of the oldest would have fitted: the policy drops no more than needed
        assert box.pending_bytes() + sizes[len(detections) - len(kept) - 1] > settings.max_bytes


def test_dead_letters_keep_reason_can_be_requeued_and_are_bounded(tmp_path, caplog):
    detections = make_detections(10, seed=19)
    with Outbox(tmp_path / "o.sqlite3", max_dead_letters=4) as box:
        box.add(detections)
        rows = box.pending(3)
        with caplog.at_level(logging.ERROR, "edge_runtime.outbox"):
            assert box.dead_letter([r for r, _ in rows], "HTTP 400: detections[1].confidence: 1.5 is outside [0, 1]") == 3
        assert "dead-lettered 3 detection(s): HTTP 400" in caplog.text
        assert box.depth() == 7 and box.dead_letter_count() == 3
        letters = box.dead_letters()
        assert [x.detection_id for x in letters] == [d.id for d in reversed(detections[:3])]
        assert box.stats().last_dead_letter_reason.startswith("HTTP 400")
        with caplog.at_level(logging.WARNING, "edge_runtime.outbox"):
            box.dead_letter([r for r, _ in box.pending(3)], "HTTP 422: second batch")
        assert box.dead_letter_count() == 4  # bounded: the two oldest dead letters dropped
        assert "dead-letter table full (max_dead_letters=4): dropped its 2 oldest entries" in caplog.text
        assert box.requeue_dead_letters() == 4
        assert box.dead_letter_count() == 0
        assert sorted(d.id for _, d in box.pending(100)) == sorted(d.id for d in detections[2:])


def test_acknowledging_dropped_or_unknown_rows_is_harmless(outbox):
    outbox.add(make_detections(3, seed=23))
    rowids = [r for r, _ in outbox.pending(3)]
    assert outbox.mark_sent(rowids + [10_000]) == 3
    assert outbox.mark_sent(rowids) == 0
    assert outbox.dead_letter(rowids, "late") == 0
    assert outbox.stats().sent == 3


def test_failed_attempts_are_recorded(outbox, tmp_path):
    outbox.add(make_detections(2, seed=29))
    rowids = [r for r, _ in outbox.pending(2)]
    outbox.record_failure(rowids, "connection refused")
    outbox.record_failure(rowids[:1], "HTTP 503")
    with sqlite3.connect(outbox.path) as conn:
        rows = conn.execute("SELECT attempts, last_error FROM pending ORDER BY seq").fetchall()
    assert rows == [(2, "HTTP 503"), (1, "connection refused")]


def test_a_damaged_row_is_dead_lettered_not_blocking(outbox):
    detections = make_detections(3, seed=31)
    outbox.add(detections)
    with sqlite3.connect(outbox.path) as conn:
        conn.execute("UPDATE pending SET payload = '{\"id\": 1}' WHERE seq = (SELECT MIN(seq) FROM pending)")
    assert [d for _, d in outbox.pending(10)] == detections[1:]
    assert outbox.dead_letter_count() == 1
    assert "unreadable outbox row: missing field(s) device_id, source" in outbox.dead_letters()[0].reason


def test_not_a_database_and_missing_file_are_clear_errors(tmp_path):
    garbage = tmp_path / "outbox.sqlite3"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError, match="outbox.sqlite3: not a usable outbox database .*move the file away"):
        Outbox(garbage)
    with pytest.raises(OutboxError, match="missing.sqlite3: no outbox there"):
        Outbox(tmp_path / "missing.sqlite3", create=False)
    with pytest.raises(OutboxError, match=r"max_rows: must be at least 1 \(got 0\)"):
        OutboxSettings(max_rows=0)


def test_threads_adding_and_consuming_lose_nothing(outbox):
    detections = make_detections(400, seed=37)
    delivered: list[str] = []

    def produce(part):
        for start in range(0, len(part), 10):
            outbox.add(part[start : start + 10])

    threads = [threading.Thread(target=produce, args=(detections[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) or outbox.depth():
        batch = outbox.pending(25)
        delivered.extend(d.id for _, d in batch)
        outbox.mark_sent([r for r, _ in batch])
    for t in threads:
        t.join()
    assert sorted(delivered) == sorted(d.id for d in detections)
    assert outbox.stats().sent == 400 and outbox.depth() == 0 and os.path.exists(str(outbox.path) + "-wal")
