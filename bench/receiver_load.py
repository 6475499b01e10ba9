"""Bounded load test of the reference receiver on 127.0.0.1: throughput, latency, every id stored once.

    python bench/receiver_load.py [--clients 20] [--batches 200] [--batch-size 50] [--out bench/results/receiver_load.json]

Starts `python -m edge_runtime.receiver` as a subprocess (a fresh SQLite file in a temporary directory), then
`clients` threads each POST `batches` batches of `batch_size` detections, one connection per request as the
device's sender does. Every batch is sent twice, by two different clients (half the detections are
duplicates when they arrive). Afterwards every page of GET /detections is read back. Writes JSON: throughput
(detections and batches per second), latency percentiles in ms, the status counts, and `stored_once` (every id
stored exactly once: count = unique ids, no id listed twice, none missing).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from edge_runtime.detection import Detection, utc_iso  # noqa: E402

HOST = "127.0.0.1"
START = datetime(2026, 5, 1, 5, 30, tzinfo=UTC)
STARTUP_TIMEOUT_S = 30.0


def make_bodies(n_batches: int, batch_size: int) -> tuple[list[bytes], list[str]]:
    """n_batches distinct request bodies of batch_size valid detections each, and every id in them."""
    bodies, ids = [], []
    for b in range(n_batches):
        batch = []
        for k in range(batch_size):
            index = b * batch_size + k
            start = START + timedelta(seconds=5 * index)
            detection = Detection(
                id=str(uuid.UUID(int=index + 1, version=4)), device_id="bench", source="file:/bench.wav",
                start_utc=utc_iso(start), end_utc=utc_iso(start + timedelta(seconds=5)),
                offset_start_s=5.0 * index, offset_end_s=5.0 * index + 5, ebird_code="eurrob1",
                scientific_name="Erithacus rubecula", common_name="European Robin", confidence=0.9,
                model_id="bench", model_sha256="0" * 64, spec_hash="0123",
            )
            batch.append(detection.to_json_dict())
            ids.append(detection.id)
        bodies.append(json.dumps({"detections": batch}).encode("utf-8"))
    return bodies, ids


def start_receiver(db: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime.receiver", "--host", HOST, "--port", "0", "--db", str(db)],
            stdout=subprocess.PIPE, stderr=log_file, env=env, text=True,
        )
    line = process.stdout.readline()
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"the receiver did not start: {line!r}; see {log_path}")
    return process, int(line.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def run_load(*, clients: int, batches: int, batch_size: int) -> dict:
    """The load test; returns the figures (see the module docstring)."""
    if clients < 2 or clients % 2:
        raise SystemExit("--clients must be even and >= 2 (each batch is sent by two clients)")
    slots = clients * batches
    bodies, ids = make_bodies(slots // 2, batch_size)
    latencies_ms: list[list[float]] = [[] for _ in range(clients)]
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="receiver-load-") as tmp:
        process, port = start_receiver(Path(tmp) / "receiver.sqlite3", Path(tmp) / "receiver.log")
        try:
            def client(c: int) -> None:
                for k in range(batches):
                    body = bodies[(c * batches + k) % len(bodies)]  # slot j and j + slots/2 send the same batch
                    t0 = time.perf_counter()
                    try:
                        status, _ = request(port, "POST", "/detections", body)
                    except OSError:
                        status = 0
                    latencies_ms[c].append((time.perf_counter() - t0) * 1000)
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1

            threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed_s = time.perf_counter() - started
            listed: list[str] = []
            offset: int | None = 0
            while offset is not None:
                _, page = request(port, "GET", f"/detections?offset={offset}")
                listed.extend(d["id"] for d in page["detections"])
                offset, count = page["next_offset"], page["count"]
        finally:
            process.terminate()
            process.wait(timeout=30)
            process.stdout.close()
    flat = sorted(x for per_client in latencies_ms for x in per_client)

    def percentile(q: float) -> float:
        return round(flat[min(len(flat) - 1, int(q * len(flat)))], 2)

    sent = slots * batch_size
    return {
        "clients": clients, "batches_per_client": batches, "batch_size": batch_size,
        "detections_sent": sent, "unique_ids": len(ids), "elapsed_s": round(elapsed_s, 3),
        "detections_per_s": round(sent / elapsed_s, 1), "batches_per_s": round(slots / elapsed_s, 1),
        "latency_ms": {"p50": percentile(0.50), "p90": percentile(0.90), "p99": percentile(0.99), "max": round(flat[-1], 2)},
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "stored_count": count, "listed": len(listed),
        "stored_once": count == len(ids) and len(listed) == len(set(listed)) and set(listed) == set(ids),
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--batches", type=int, default=200, help="batches per client")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "receiver_load.json")
    args = parser.parse_args()
    result = run_load(clients=args.clients, batches=args.batches, batch_size=args.batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0 if result["stored_once"] and set(result["statuses"]) == {"200"} else 1


if __name__ == "__main__":
    sys.exit(main())
