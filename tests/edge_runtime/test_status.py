"""The status file is replaced atomically: a reader polling it never sees a partial file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from edge_runtime.status import RunStatus, StatusWriter, read_status, write_status

REWRITES = 300
REQUIRED_KEYS = ("files_done", "files_failed", "windows_processed", "detections_total", "outbox_depth",
                 "dead_letters", "realtime_factor", "last_error")


def test_status_has_the_required_keys(tmp_path: Path) -> None:
    status = RunStatus()
    status.add_compute(audio_seconds=50.0, compute_seconds=0.1)
    write_status(tmp_path / "status.json", status)
    data = read_status(tmp_path / "status.json")
    for key in REQUIRED_KEYS:
        assert key in data
    assert data["realtime_factor"] == 500.0 and data["updated_utc"].endswith("Z")
    assert list(tmp_path.iterdir()) == [tmp_path / "status.json"], "no temporary file left behind"


def test_a_polling_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    status = RunStatus(last_error="x" * 20000)  # large enough that a non-atomic write would be seen half done
    write_status(path, status)
    seen, bad = [], []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                seen.append(json.loads(path.read_text())["windows_processed"])
            except (json.JSONDecodeError, KeyError) as exc:
                bad.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(REWRITES):
            status.windows_processed = i
            write_status(path, status)
    finally:
        done.set()
        thread.join()
    assert bad == [] and len(seen) > 0
    assert seen == sorted(seen), "the reader sees the rewrites in order"


def test_writer_interval(tmp_path: Path) -> None:
    writer = StatusWriter(tmp_path / "s.json", RunStatus(), interval_seconds=3600)
    assert writer.due()
    writer.maybe_write()
    assert (tmp_path / "s.json").exists() and not writer.due()
    assert not StatusWriter(None, RunStatus(), interval_seconds=1).due(), "no path, nothing to write"
