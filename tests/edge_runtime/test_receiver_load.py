"""The receiver's load benchmark, bounded: concurrent clients over real HTTP on 127.0.0.1, every batch sent twice,
every id stored exactly once (the full-size run is `python bench/receiver_load.py`)."""

from __future__ import annotations

import json
import subprocess
import sys

from receiver_process import REPO_ROOT, python_env


def test_concurrent_clients_with_duplicates_store_every_id_once(tmp_path):
    out = tmp_path / "load.json"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "receiver_load.py"), "--clients", "6", "--batches", "8",
         "--batch-size", "25", "--out", str(out)],
        capture_output=True, text=True, env=python_env(), cwd=REPO_ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert figures["statuses"] == {"200": 6 * 8}
    assert figures["detections_sent"] == 6 * 8 * 25 and figures["unique_ids"] == 6 * 8 * 25 // 2
    assert figures["stored_count"] == figures["listed"] == figures["unique_ids"]
    assert figures["stored_once"] is True
    assert 0 < figures["latency_ms"]["p50"] <= figures["latency_ms"]["p99"] <= figures["latency_ms"]["max"]
