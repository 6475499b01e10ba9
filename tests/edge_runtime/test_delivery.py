"""The Deliverer over real HTTP on 127.0.0.1: one batch, drain, the background thread; retries with capped,
jittered exponential backoff; dead letters for refused batches; nothing stored twice after timeouts."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time

import pytest
from receiver_process import free_port
from sample_detections import make_detections
from scripted_http import scripted_server

from edge_runtime.delivery import Deliverer, DeliverySettings, SinkError, backoff_delay_s, make_sink
from edge_runtime.outbox import Outbox
from edge_runtime.receiver import DetectionStore, ReceiverSettings, start_receiver

TOKEN = "tok-3f2a9c01-for-tests"
FAST = dataclasses.replace(
    DeliverySettings(), batch_size=10, timeout_s=2.0, backoff_initial_s=0.01, backoff_max_s=0.05, idle_poll_s=0.05
)
SHORT_TIMEOUT_S = 0.3
SLOW_RECEIVER_DELAY_S = 1.0
DRAIN_DEADLINE_S = 20.0
STORE_WAIT_S = 10.0
BACKOFF_REL_TOL = 1e-12


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


@pytest.fixture
def receiver(tmp_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite3")) as running:
        yield running


def stored_ids(db) -> list[str]:
    store = DetectionStore(db)
    try:
        return [d["id"] for d in store.detections()]
    finally:
        store.close()


# -- settings and backoff ------------------------------------------------------------------------------


def test_settings_are_validated():
    with pytest.raises(SinkError, match="delivery setting batch_size: must be in 1..1000"):
        DeliverySettings(batch_size=0)
    with pytest.raises(SinkError, match="jitter_fraction"):
        DeliverySettings(jitter_fraction=1.5)


def test_backoff_grows_exponentially_is_capped_and_jittered():
    settings = DeliverySettings(backoff_initial_s=1.0, backoff_multiplier=2.0, backoff_max_s=30.0, jitter_fraction=0.5)
    rng = random.Random(5)
    for failures, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (40, 30.0), (100_000, 30.0)]:
        draws = [backoff_delay_s(failures, settings=settings, rng=rng) for _ in range(200)]
        assert min(draws) >= nominal * 0.5 and max(draws) <= nominal
        assert max(draws) - min(draws) > nominal * 0.3  # really jittered
    exact = dataclasses.replace(settings, jitter_fraction=0.0)
    assert backoff_delay_s(3, settings=exact, rng=rng) == pytest.approx(4.0, rel=BACKOFF_REL_TOL)


# -- the Deliverer -----------------------------------------------------------------------------------


def test_deliver_once_sends_the_oldest_batch_and_removes_it(outbox, receiver):
    detections = make_detections(25, seed=149)
    outbox.add(detections)
    deliverer = Deliverer(outbox, make_sink(receiver.url), settings=FAST)
    result = deliverer.deliver_once()
    assert (result.attempted, result.sent, result.stored, result.retry) == (10, 10, 10, False)
    assert stored_ids(receiver.server.store.path) == [d.id for d in detections[:10]]
    report = deliverer.drain(deadline_s=DRAIN_DEADLINE_S)
    assert (report.sent, report.remaining, report.complete) == (15, 0, True)
    assert deliverer.deliver_once().attempted == 0
    assert deliverer.stats().sent_total == 25


def test_server_errors_are_retried_with_backoff_until_delivered(outbox, tmp_path):
    detections = make_detections(12, seed=151)
    outbox.add(detections)
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", fail_first=3, fail_status=500)
    with start_receiver(settings) as running:
        deliverer = Deliverer(outbox, make_sink(running.url), settings=FAST, rng=random.Random(1))
        first = deliverer.deliver_once()
        assert first.retry and "HTTP 500" in first.reason and 0 < first.retry_in_s <= FAST.backoff_initial_s
        assert outbox.depth() == 12
        report = deliverer.drain(deadline_s=DRAIN_DEADLINE_S)
    assert report.complete and report.failed_attempts == 2 and report.sent == 12
    assert deliverer.stats().failed_attempts == 3 and deliverer.stats().consecutive_failures == 0
    assert sorted(stored_ids(settings.db)) == sorted(d.id for d in detections)


def test_a_refused_batch_goes_to_the_dead_letters_with_its_reason_and_the_rest_flows(outbox, tmp_path):
    outbox.add(make_detections(3, seed=157))
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", fail_first=1, fail_status=422)
    with start_receiver(settings) as running:
        deliverer = Deliverer(outbox, make_sink(running.url), settings=dataclasses.replace(FAST, batch_size=2))
        report = deliverer.drain(deadline_s=DRAIN_DEADLINE_S)
    assert (report.dead_lettered, report.sent, report.remaining, report.failed_attempts) == (2, 1, 0, 0)
    assert outbox.dead_letter_count() == 2
    assert "HTTP 422" in outbox.dead_letters()[0].reason and "injected failure" in outbox.dead_letters()[0].reason


def test_a_slow_receiver_times_out_then_nothing_is_stored_twice(outbox, tmp_path):
    """Timeouts after the receiver stored the batch: the outbox keeps it, the re-send is a duplicate."""
    detections = make_detections(6, seed=163)
    outbox.add(detections)
    db = tmp_path / "r.sqlite3"
    slow = dataclasses.replace(FAST, timeout_s=SHORT_TIMEOUT_S)
    with start_receiver(ReceiverSettings(port=0, db=db, delay_s=SLOW_RECEIVER_DELAY_S)) as running:
        result = Deliverer(outbox, make_sink(running.url, timeout_s=SHORT_TIMEOUT_S), settings=slow).deliver_once()
        assert result.retry and "no answer within" in result.reason
        deadline = time.monotonic() + STORE_WAIT_S  # the receiver stores, then sleeps before answering
        while running.server.store.count() < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.server.store.count() == 6
    assert outbox.depth() == 6
    with start_receiver(ReceiverSettings(port=0, db=db)) as running:
        deliverer = Deliverer(outbox, make_sink(running.url), settings=FAST)
        first = deliverer.deliver_once()
        assert (first.stored, first.duplicates) == (0, 6)
    assert outbox.depth() == 0
    assert sorted(stored_ids(db)) == sorted(d.id for d in detections)


def test_background_thread_delivers_as_detections_arrive_and_flushes_on_stop(outbox, receiver):
    detections = make_detections(40, seed=167)
    deliverer = Deliverer(outbox, make_sink(receiver.url), settings=FAST)
    deliverer.start()
    for start in range(0, 40, 8):
        outbox.add(detections[start : start + 8])
        deliverer.notify()
    report = deliverer.stop(flush_timeout_s=DRAIN_DEADLINE_S)
    assert report.complete and outbox.depth() == 0
    assert sorted(stored_ids(receiver.server.store.path)) == sorted(d.id for d in detections)


def test_background_thread_stops_in_time_when_the_receiver_is_down(outbox, caplog):
    outbox.add(make_detections(5, seed=173))
    deliverer = Deliverer(outbox, make_sink(f"http://127.0.0.1:{free_port()}", token=TOKEN), settings=FAST)
    with caplog.at_level(logging.DEBUG):
        deliverer.start()
        deliverer.notify()
        report = deliverer.stop(flush_timeout_s=0.3)
    assert report.remaining == 5 and not report.complete and "connection refused" in report.last_error
    assert outbox.depth() == 5 and deliverer.stats().failed_attempts >= 1
    assert "connection refused" in caplog.text and TOKEN not in caplog.text


def test_jsonl_delivery_through_the_outbox(outbox, tmp_path):
    detections = make_detections(13, seed=179)
    outbox.add(detections)
    report = Deliverer(outbox, make_sink(f"jsonl:{tmp_path}/d.jsonl"), settings=FAST).drain(deadline_s=5)
    assert report.complete
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [d.id for d in detections]


def test_the_deliverer_waits_at_least_retry_after_within_the_backoff_cap(outbox):
    outbox.add(make_detections(2, seed=129))
    patient = dataclasses.replace(FAST, backoff_max_s=10.0)
    with scripted_server(503, {"Retry-After": "7"}) as (url, _):
        assert Deliverer(outbox, make_sink(url), settings=patient).deliver_once().retry_in_s == 7.0
        assert Deliverer(outbox, make_sink(url), settings=FAST).deliver_once().retry_in_s == FAST.backoff_max_s
