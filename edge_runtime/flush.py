"""`flush`: deliver what is pending in an outbox, then exit; non-zero if anything was left undelivered.

    python -m edge_runtime flush [--config FILE.toml] --outbox PATH --sink URL|jsonl:PATH|stdout
                                 [--flush-deadline-s S] [--requeue-dead-letters]

It reads the same settings as `run` (TOML file, EDGE_RUNTIME_* environment, flags; see `edge_runtime.cli`).

(also runnable as `python -m edge_runtime.flush ...`). Exit status: 0 when the outbox is empty at
the end and its dead-letter table is empty; 1 when detections remain pending (sink unreachable until
the deadline) or dead letters remain (refused by the sink, now or earlier); 2 for a usage error (no outbox
at that path, bad sink, unsafe token file).

The runtime may be running on the same outbox at the same time: SQLite serialises the writers,
and a batch both send is stored once by the receiver (it deduplicates by id).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.delivery import Deliverer, DeliverySettings, SinkError, make_sink_from_settings
from edge_runtime.outbox import Outbox, OutboxError
from edge_runtime.settings import EdgeSettings

DEFAULT_DEADLINE_S = 60.0
"""The deadline of flush() called without one (the command uses flush_deadline_s)."""


@dataclass(frozen=True)
class FlushReport:
    """What one flush did."""

    sent: int
    """Detections acknowledged by the sink and removed from the outbox."""
    dead_lettered: int
    """Detections the sink refused for good during this flush (moved to the dead-letter table)."""
    requeued: int
    """Dead letters put back in the queue before sending (--requeue-dead-letters)."""
    remaining: int
    """Detections still pending at the end."""
    dead_letters_total: int
    """Detections in the dead-letter table at the end."""
    dropped_total: int
    """Detections the outbox has ever dropped because it was full."""
    last_error: str | None
    elapsed_s: float

    @property
    def exit_code(self) -> int:
        """0 when everything pending was delivered and no dead letter remains; 1 otherwise."""
        return 0 if self.remaining == 0 and self.dead_lettered == 0 and self.dead_letters_total == 0 else 1

    def describe(self) -> str:
        """One human-readable paragraph."""
        lines = [
            f"flushed {self.sent} detection(s) in {self.elapsed_s:.1f} s; {self.remaining} still pending",
            f"dead-lettered now: {self.dead_lettered}; in the dead-letter table: {self.dead_letters_total}"
            + (f"; requeued first: {self.requeued}" if self.requeued else ""),
        ]
        if self.dead_letters_total:
            lines.append(f"{self.dead_letters_total} dead letter(s) remain: fix the cause (see last error / the "
                         "status file), then run flush --requeue-dead-letters")
        if self.dropped_total:
            lines.append(f"dropped by the outbox bound (ever): {self.dropped_total}")
        if self.last_error:
            lines.append(f"last error: {self.last_error}")
        return "\n".join(lines)


def flush(
    *,
    outbox_path: Path,
    sink: str,
    settings: DeliverySettings = DeliverySettings(),  # noqa: B008 - frozen, so a shared default is safe
    deadline_s: float = DEFAULT_DEADLINE_S,
    requeue_dead_letters: bool = False,
    environ: Mapping[str, str] | None = None,
) -> FlushReport:
    """Deliver the outbox at outbox_path to sink for at most deadline_s seconds (retrying with backoff).

    Raises OutboxError when there is no usable outbox at the path, SinkError for a bad sink or token.
    """
    started = time.monotonic()
    sink_obj = make_sink_from_settings(sink, settings=settings, environ=environ)
    try:
        with Outbox(outbox_path, create=False) as outbox:
            requeued = outbox.requeue_dead_letters() if requeue_dead_letters else 0
            report = Deliverer(outbox, sink_obj, settings=settings).drain(deadline_s=deadline_s)
            stats = outbox.stats()
    finally:
        sink_obj.close()
    return FlushReport(
        sent=report.sent,
        dead_lettered=report.dead_lettered,
        requeued=requeued,
        remaining=stats.depth,
        dead_letters_total=stats.dead_letters,
        dropped_total=stats.dropped,
        last_error=report.last_error,
        elapsed_s=time.monotonic() - started,
    )


def run_flush(settings: EdgeSettings, *, requeue_dead_letters: bool = False,
              environ: Mapping[str, str] | None = None) -> int:
    """Run flush with the run's settings (outbox, sink, delivery, flush_deadline_s), print its report; returns the
    exit status (see the module docstring)."""
    try:
        report = flush(
            outbox_path=settings.outbox, sink=settings.sink, settings=settings.delivery,
            deadline_s=settings.flush_deadline_s, requeue_dead_letters=requeue_dead_letters, environ=environ,
        )
    except (SinkError, OutboxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # with the stdout sink, stdout carries the detections: the report goes to stderr
    print(report.describe(), file=sys.stderr if settings.sink == "stdout" else sys.stdout)
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m edge_runtime.flush ...` = `python -m edge_runtime flush ...`."""
    from edge_runtime.cli import main as cli_main

    return cli_main(["flush", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
