"""The demo's edge step reads back every detection the receiver stored, page by page."""

from __future__ import annotations

from sample_detections import make_detections

from birdlab.agreement.edge_demo import received_detections
from edge_runtime.receiver import ReceiverSettings, start_receiver


def test_received_detections_follows_the_receivers_pages(tmp_path):
    sent = [d.to_json_dict() for d in make_detections(7, seed=3)]
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite3", page_size=3)) as receiver:
        receiver.server.store.store(sent)
        got = received_detections(receiver.url)
    assert [d["id"] for d in got] == [d["id"] for d in sent], "all 7 detections over 3 pages, in arrival order"
