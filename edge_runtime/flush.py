"""`flush`: deliver what is pending in an outbox, then exit; non-zero if anything was left undelivered.

    python -m edge_runtime flush --outbox PATH --sink URL|jsonl:PATH|stdout [--deadline-s S] [--requeue-dead-letters]

(also runnable as `python -m edge_runtime.flush ...`). Exit status: 0 when the outbox is empty at
the end and its dead-letter table is empty; 1 when detections remain pending (sink unreachable until
the deadline) or dead letters remain (refused by the sink, now or earlier); 2 for a usage error (no outbox
at that path, bad sink, unsafe token file).

The runtime may be running on the same outbox at the same time: SQLite serialises the writers,
and a batch both send is stored once by the receiver (it deduplicates by id).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.delivery import DEFAULT_TOKEN_ENV, Deliverer, DeliverySettings, SinkError, make_sink_from_settings
from edge_runtime.outbox import Outbox, OutboxError

DEFAULT_DEADLINE_S = 60.0


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


def add_flush_arguments(parser: argparse.ArgumentParser) -> None:
    """The flush command's flags, for `python -m edge_runtime flush` and `python -m edge_runtime.flush`."""
    defaults = DeliverySettings()
    parser.add_argument("--outbox", type=Path, required=True, help="the runtime's SQLite outbox")
    parser.add_argument("--sink", required=True, metavar="URL|jsonl:PATH|stdout", help="where to deliver")
    parser.add_argument("--deadline-s", type=float, default=DEFAULT_DEADLINE_S,
                        help="give up after this many seconds, retries included (default %(default)s)")
    parser.add_argument("--requeue-dead-letters", action="store_true",
                        help="first put dead-lettered detections back in the queue (after fixing the cause)")
    parser.add_argument("--token-env", default=defaults.token_env,
                        help="environment variable holding the bearer token (default %(default)s)")
    parser.add_argument("--token-file", type=Path, default=None, help="file (mode 0600) holding the bearer token")
    parser.add_argument("--ca-file", type=Path, default=None, help="PEM CA certificates for a private-CA receiver")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="detections per request (default %(default)s)")
    parser.add_argument("--timeout-s", type=float, default=defaults.timeout_s,
                        help="timeout of one request in seconds (default %(default)s)")


def run_flush(args: argparse.Namespace, *, environ: Mapping[str, str] | None = None) -> int:
    """Run flush from parsed arguments, print its report; returns the exit status (see the module docstring)."""
    try:
        settings = dataclasses.replace(
            DeliverySettings(),
            batch_size=args.batch_size,
            timeout_s=args.timeout_s,
            token_env=args.token_env or DEFAULT_TOKEN_ENV,
            token_file=args.token_file,
            ca_file=args.ca_file,
        )
        report = flush(
            outbox_path=args.outbox, sink=args.sink, settings=settings, deadline_s=args.deadline_s,
            requeue_dead_letters=args.requeue_dead_letters, environ=environ,
        )
    except (SinkError, OutboxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # with the stdout sink, stdout carries the detections: the report goes to stderr
    print(report.describe(), file=sys.stderr if args.sink == "stdout" else sys.stdout)
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_runtime.flush", description=__doc__.splitlines()[0])
    add_flush_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run_flush(args)


if __name__ == "__main__":
    sys.exit(main())
