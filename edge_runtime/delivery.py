"""Delivery: take batches from the outbox, send them to a sink, and remove them only once acknowledged.

What the `Deliverer` does with a batch, by the sink's outcome (see `edge_runtime.sinks`):
- acknowledged (a 2xx carrying the receiver's `{"stored": n, "duplicates": m}` for the whole batch; a
  jsonl: or stdout write): removed from the outbox (`mark_sent`);
- transient (any other 2xx, e.g. a captive portal; 408, 429, 5xx, 3xx, timeouts, refused connections,
  DNS and TLS failures): kept, and retried after an exponential backoff with jitter (a `Retry-After`
  header is honoured, up to the cap). An outage is logged once as a warning with its reason (again
  only if the reason changes), and its end once ("delivery restored");
- rejected (any other 4xx): moved to the dead-letter table with the reason, not retried.

A crash between sending and `mark_sent` sends the batch again; the receiver deduplicates by
detection id, so delivery is at-least-once with nothing stored twice.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge_runtime.outbox import Outbox, OutboxError
from edge_runtime.setting_field import setting
from edge_runtime.sinks import (  # noqa: F401 - re-exported: callers import the sink API from here too
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOKEN_ENV,
    RECEIVER_PATH,
    HttpSink,
    JsonlSink,
    RejectedBatchError,
    SendReceipt,
    Sink,
    SinkError,
    StdoutSink,
    TransientSendError,
    batch_json,
    load_token,
    make_sink,
    redact_url,
)

log = logging.getLogger(__name__)

_MAX_BACKOFF_EXPONENT = 60

MAX_BATCH_SIZE = 1000
"""Most detections per request (the reference receiver's default max_batch)."""


@dataclass(frozen=True)
class DeliverySettings:
    """How detections leave the device (`EdgeSettings.delivery`; fields declared with `setting(...)` are
    user settings under their own name). Tests shrink the timings with dataclasses.replace."""

    batch_size: int = setting(50, "int", "detections per HTTP POST (1..1000)")
    """Detections per request (the reference receiver accepts up to 1000)."""
    timeout_s: float = setting(DEFAULT_TIMEOUT_S, "float",
                               "longest time one HTTP request may take, connection to last byte",
                               old="http_timeout_seconds")
    """Timeout of one HTTP request (connect and each read), in seconds."""
    backoff_initial_s: float = setting(2.0, "float",
                                       "first retry delay after a failed send; doubles per failure (jittered)",
                                       old="retry_initial_seconds")
    """Delay before the first retry after a transient failure, in seconds."""
    backoff_multiplier: float = 2.0
    """Each further consecutive failure multiplies the delay by this."""
    backoff_max_s: float = setting(300.0, "float", "longest retry delay (also caps a receiver's Retry-After)",
                                   old="retry_max_seconds")
    """Upper bound of the retry delay (also caps a receiver's Retry-After), in seconds."""
    jitter_fraction: float = 0.5
    """The delay is drawn uniformly from [delay * (1 - jitter_fraction), delay], so devices do not retry in step."""
    idle_poll_s: float = 2.0
    """When the outbox is empty, how often the background sender looks again (it is also woken by notify())."""
    token_env: str = setting(DEFAULT_TOKEN_ENV, "str", "environment variable holding the sink's bearer token")
    """Environment variable holding the bearer token (ignored when token_file is set)."""
    token_file: Path | None = setting(None, "path", "file (mode 0600) holding the sink's bearer token",
                                      metavar="PATH")
    """File holding the bearer token; must not be readable by group or others (chmod 600)."""
    ca_file: Path | None = setting(None, "path", "PEM CA certificates for a receiver with a private CA",
                                   metavar="PATH")
    """PEM file of the CA that signed the receiver's certificate, for a private CA; default: the system CAs."""

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise SinkError(f"delivery setting {name}: {what} (got {getattr(self, name)!r})")

        need(1 <= self.batch_size <= MAX_BATCH_SIZE, "batch_size", f"must be in 1..{MAX_BATCH_SIZE}")
        for name in ("timeout_s", "backoff_initial_s", "backoff_max_s", "idle_poll_s"):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, name, "must be > 0")
        need(1.0 <= self.backoff_multiplier <= 10.0, "backoff_multiplier", "must be in [1, 10]")
        need(self.backoff_max_s >= self.backoff_initial_s, "backoff_max_s", "must be >= backoff_initial_s")
        need(0.0 <= self.jitter_fraction <= 1.0, "jitter_fraction", "must be in [0, 1]")


def backoff_delay_s(consecutive_failures: int, *, settings: DeliverySettings, rng: random.Random) -> float:
    """Delay before the next attempt after n >= 1 consecutive failures: exponential, capped, jittered."""
    # the exponent is capped so that days of failures cannot overflow a float (2.0 ** 1024 raises OverflowError)
    exponent = min(max(0, consecutive_failures - 1), _MAX_BACKOFF_EXPONENT)
    delay = min(settings.backoff_max_s, settings.backoff_initial_s * settings.backoff_multiplier**exponent)
    return rng.uniform(delay * (1.0 - settings.jitter_fraction), delay)


def make_sink_from_settings(spec: str, *, settings: DeliverySettings, environ: Mapping[str, str] | None = None) -> Sink:
    """make_sink with the token (file or environment variable), timeout and CA file of settings."""
    token = load_token(token_env=settings.token_env, token_file=settings.token_file, environ=environ)
    return make_sink(spec, token=token, timeout_s=settings.timeout_s, ca_file=settings.ca_file)


# -- the deliverer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one `deliver_once` (one batch)."""

    attempted: int
    """Detections in the batch; 0 when the outbox was empty (nothing was sent)."""
    sent: int = 0
    """Detections acknowledged and removed from the outbox."""
    dead_lettered: int = 0
    """Detections moved to the dead-letter table (the sink refused the batch for good)."""
    retry: bool = False
    """True when the batch failed transiently and stays pending."""
    reason: str | None = None
    """Why the batch failed (transient or rejected); None on success."""
    retry_in_s: float | None = None
    """When retry: the backoff delay before the next attempt, in seconds."""
    stored: int | None = None
    """The receiver's count of newly stored detections, when it reports one."""
    duplicates: int | None = None
    """The receiver's count of detections it already had, when it reports one."""


@dataclass(frozen=True)
class DrainReport:
    """The outcome of `drain` (or of the final flush in `stop`)."""

    sent: int
    dead_lettered: int
    failed_attempts: int
    remaining: int
    """Detections still pending in the outbox at the end."""
    elapsed_s: float
    last_error: str | None

    @property
    def complete(self) -> bool:
        """True when nothing is left pending."""
        return self.remaining == 0


@dataclass(frozen=True)
class DeliveryStats:
    """Counters of one Deliverer since it was made, for the status file."""

    sent_total: int
    dead_lettered_total: int
    failed_attempts: int
    consecutive_failures: int
    last_error: str | None
    last_success_utc: str | None


class Deliverer:
    """Moves detections from an outbox to a sink: one batch at a time, a drain, or a background thread.

    The runtime calls `start()` once, `notify()` after each `outbox.add(...)`, and `stop(flush_timeout_s=...)`
    at shutdown; `flush` calls `drain(deadline_s=...)`. Only one thread should call deliver_once/drain
    at a time; stats() may be read from any thread.
    """

    def __init__(
        self,
        outbox: Outbox,
        sink: Sink,
        *,
        settings: DeliverySettings = DeliverySettings(),  # noqa: B008 - frozen, so a shared default is safe
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.sink = sink
        self.settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._lock = threading.Lock()
        self._sent_total = 0
        self._dead_total = 0
        self._failed_attempts = 0
        self._consecutive_failures = 0
        self._last_error: str | None = None
        self._last_success_utc: str | None = None
        self._retry_delay_s = 0.0
        self._outage_reason: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._final_report: DrainReport | None = None
        self._flush_timeout_s = 0.0

    # one batch
    def deliver_once(self, *, timeout_s: float | None = None) -> DeliveryResult:
        """Send the oldest pending batch once (no waiting), the request bounded by timeout_s when given;
        see DeliveryResult. Never raises for send failures."""
        rows = self.outbox.pending(self.settings.batch_size)
        if not rows:
            return DeliveryResult(attempted=0)
        rowids = [rowid for rowid, _ in rows]
        try:
            receipt = self.sink.send([d for _, d in rows], timeout_s=timeout_s)
        except TransientSendError as exc:
            self.outbox.record_failure(rowids, exc.reason)
            with self._lock:
                self._failed_attempts += 1
                self._consecutive_failures += 1
                self._last_error = exc.reason
                delay = backoff_delay_s(self._consecutive_failures, settings=self.settings, rng=self._rng)
                if exc.retry_after_s is not None:
                    delay = max(delay, min(exc.retry_after_s, self.settings.backoff_max_s))
                self._retry_delay_s = delay
                failures = self._consecutive_failures
                new_reason = exc.reason != self._outage_reason
                self._outage_reason = exc.reason
            log.log(
                logging.WARNING if new_reason else logging.DEBUG,
                "delivery of %d detection(s) failed (attempt %d): %s; retrying with backoff (logged once per outage)",
                len(rows), failures, exc.reason,
            )
            return DeliveryResult(attempted=len(rows), retry=True, reason=exc.reason, retry_in_s=delay)
        except RejectedBatchError as exc:
            moved = self.outbox.dead_letter(rowids, exc.reason)
            with self._lock:
                self._dead_total += moved
                self._consecutive_failures = 0
                self._retry_delay_s = 0.0
                self._last_error = exc.reason
            return DeliveryResult(attempted=len(rows), dead_lettered=moved, reason=exc.reason)
        sent = self.outbox.mark_sent(rowids)
        with self._lock:
            self._sent_total += sent
            if self._outage_reason is not None:
                log.info("delivery restored after %d failed attempt(s) (last: %s)", self._consecutive_failures,
                         self._outage_reason)
            self._outage_reason = None
            self._consecutive_failures = 0
            self._retry_delay_s = 0.0
            self._last_success_utc = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log.debug("delivered %d detection(s) to %s", len(rows), self.sink.name)
        return DeliveryResult(
            attempted=len(rows), sent=sent, stored=receipt.stored, duplicates=receipt.duplicates
        )

    def drain(self, *, deadline_s: float, stop_event: threading.Event | None = None) -> DrainReport:
        """Deliver until the outbox is empty or deadline_s seconds have passed (backoff sleeps included).

        The first attempt is immediate. A set stop_event ends the waiting early.
        """
        start = self._clock()
        end = start + deadline_s
        sent = dead = failed = 0
        last_error = None
        while True:
            result = self.deliver_once(timeout_s=max(0.0, end - self._clock()))
            sent += result.sent
            dead += result.dead_lettered
            if result.reason:
                last_error = result.reason
            if result.attempted == 0:
                break
            if result.retry:
                failed += 1
                remaining_s = end - self._clock()
                if remaining_s <= 0:
                    break
                wait_s = min(result.retry_in_s or 0.0, remaining_s)
                if stop_event is not None:
                    if stop_event.wait(wait_s):
                        break
                else:
                    time.sleep(wait_s)
            if self._clock() >= end:
                break
        return DrainReport(
            sent=sent, dead_lettered=dead, failed_attempts=failed, remaining=self.outbox.depth(),
            elapsed_s=self._clock() - start, last_error=last_error,
        )

    # background thread
    def start(self) -> None:
        """Start the background sender thread (daemon). Call notify() after adding to the outbox."""
        if self._thread is not None:
            raise RuntimeError("Deliverer.start: already started")
        self._thread = threading.Thread(target=self._run, name="edge-delivery", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Wake the background sender: new detections were added (cheap; call it after every add)."""
        self._wake.set()

    def stop(self, *, flush_timeout_s: float) -> DrainReport | None:
        """Stop the background sender after trying for up to flush_timeout_s to deliver what is pending.

        Returns the final flush's report (None if the thread was never started).
        """
        if self._thread is None:
            return None
        self._flush_timeout_s = flush_timeout_s
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=flush_timeout_s + self.settings.timeout_s + 5.0)
        if self._thread.is_alive():
            log.error("the delivery thread did not stop within %.0f s; pending detections stay in the outbox",
                      flush_timeout_s + self.settings.timeout_s + 5.0)
        self._thread = None
        return self._final_report

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # a notify() during the attempt below makes the next idle wait return at once
            backoff_s = idle_s = 0.0
            try:
                result = self.deliver_once()
                if result.attempted == 0:
                    idle_s = self.settings.idle_poll_s
                elif result.retry:
                    backoff_s = result.retry_in_s or 0.0
            except OutboxError as exc:
                log.error("delivery: %s", exc)
                backoff_s = self._note_internal_error(str(exc))
            except Exception as exc:  # keep the sender alive: nothing may stop delivery silently
                log.exception("delivery: unexpected error")
                backoff_s = self._note_internal_error(f"{type(exc).__name__}: {exc}")
            if backoff_s > 0:
                self._stopping.wait(backoff_s)  # only stop() cuts a backoff short, not notify()
            elif idle_s > 0:
                self._wake.wait(idle_s)
        try:
            self._final_report = self.drain(deadline_s=self._flush_timeout_s)
            report = self._final_report
            log.info(
                "delivery stopped: flushed %d, dead-lettered %d, %d still pending in the outbox",
                report.sent, report.dead_lettered, report.remaining,
            )
        except OutboxError as exc:
            log.error("delivery stopped without a final flush: %s", exc)
        except Exception:
            log.exception("delivery: final flush failed; pending detections stay in the outbox")

    def _note_internal_error(self, reason: str) -> float:
        with self._lock:
            self._failed_attempts += 1
            self._consecutive_failures += 1
            self._last_error = reason
            return backoff_delay_s(self._consecutive_failures, settings=self.settings, rng=self._rng)

    def stats(self) -> DeliveryStats:
        """Counters since this Deliverer was made (thread-safe)."""
        with self._lock:
            return DeliveryStats(
                sent_total=self._sent_total,
                dead_lettered_total=self._dead_total,
                failed_attempts=self._failed_attempts,
                consecutive_failures=self._consecutive_failures,
                last_error=self._last_error,
                last_success_utc=self._last_success_utc,
            )
