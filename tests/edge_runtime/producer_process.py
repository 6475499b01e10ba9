"""A stand-in for the runtime's delivery path, run as a real process by the reliability tests.

It does what `edge_runtime.runner` does with detections: commit each batch to the Outbox, notify
the background Deliverer, and on exit stop it with a final flush. Its detections come from
`sample_detections.make_detections` (seeded: detection i is always the same), and it remembers in
a progress file how many it has committed, as the runtime remembers finished files, so a restarted
producer continues where it was (re-committing at most the batch in flight when it was killed).

    python tests/edge_runtime/producer_process.py --outbox O --sink URL --count N --progress P [...]

Prints 'committed K' after each batch (K = total committed so far). Exit status 0 when all N are
committed and the final flush left nothing pending, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

from sample_detections import make_detections

from edge_runtime.delivery import Deliverer, DeliverySettings
from edge_runtime.outbox import Outbox
from edge_runtime.sinks import make_sink


def read_progress(path: Path) -> int:
    try:
        return int(path.read_text())
    except FileNotFoundError:
        return 0


def write_progress(path: Path, committed: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(str(committed))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--count", type=int, required=True, help="detections to produce in all")
    parser.add_argument("--progress", type=Path, required=True, help="file holding how many are committed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-add", type=int, default=5, help="detections per outbox commit (one 'window')")
    parser.add_argument("--interval-s", type=float, default=0.02, help="pause between commits")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    parser.add_argument("--flush-timeout-s", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")

    settings = dataclasses.replace(
        DeliverySettings(), batch_size=args.batch_size, timeout_s=args.timeout_s,
        backoff_initial_s=0.05, backoff_max_s=0.2, idle_poll_s=0.05,
    )
    outbox = Outbox(args.outbox)
    deliverer = Deliverer(outbox, make_sink(args.sink, timeout_s=args.timeout_s), settings=settings)
    deliverer.start()
    committed = read_progress(args.progress)
    while committed < args.count:
        n = min(args.per_add, args.count - committed)
        outbox.add(make_detections(n, seed=args.seed, first_index=committed))
        deliverer.notify()
        committed += n
        write_progress(args.progress, committed)
        print(f"committed {committed}", flush=True)
        time.sleep(args.interval_s)
    report = deliverer.stop(flush_timeout_s=args.flush_timeout_s)
    stats = outbox.stats()
    outbox.close()
    print(f"done remaining={stats.depth} dead_letters={stats.dead_letters} sent={report.sent if report else 0}",
          flush=True)
    return 0 if stats.depth == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
