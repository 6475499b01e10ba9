"""Delivery: take batches from the outbox, send them to a sink, and remove them only once acknowledged.

Sinks (`make_sink`):
- `http://...` / `https://...`: POST `{"detections": [...]}` as JSON with `Authorization: Bearer
  <token>`, TLS verification on (system CAs, or `ca_file` for a private CA), redirects not
  followed. A URL with no path posts to `/detections` (the reference receiver's endpoint).
- `jsonl:PATH`: append one JSON object per line, fsynced.
- `stdout`: one JSON object per line on standard output.

Outcome of a send, and what the `Deliverer` does with the batch:
- 2xx: acknowledged -> removed from the outbox (`mark_sent`).
- 408, 429, 5xx, 3xx, timeouts, refused connections, DNS and TLS failures: transient -> kept,
  retried after an exponential backoff with jitter (a `Retry-After` header is honoured).
- any other 4xx: rejected for good -> moved to the dead-letter table with the reason, not retried.

A crash between sending and `mark_sent` sends the batch again; the receiver deduplicates by
detection id, so delivery is at-least-once with nothing stored twice. The bearer token is read
from an environment variable or a file of mode 0600 (`load_token`) and never logged.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import random
import socket
import ssl
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Protocol

from edge_runtime.detection import Detection
from edge_runtime.outbox import Outbox, OutboxError

log = logging.getLogger(__name__)

DEFAULT_TOKEN_ENV = "EDGE_RUNTIME_TOKEN"
RECEIVER_PATH = "/detections"
RETRYABLE_4XX = (408, 429)
_MAX_RESPONSE_BYTES = 64 * 1024
_REASON_BODY_CHARS = 300
_USER_AGENT = "birdlab-edge-runtime"
_MAX_BACKOFF_EXPONENT = 60


class SinkError(Exception):
    """A sink or token setting is unusable (bad URL, unsafe token file); the message says what to do."""


class TransientSendError(Exception):
    """The batch was not delivered but may be later (network, 5xx, 408, 429): keep it and retry."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class RejectedBatchError(Exception):
    """The sink refused the batch for good (4xx other than 408/429): dead-letter it."""

    def __init__(self, reason: str, *, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class DeliverySettings:
    """How detections leave the device. Tests shrink the timings with dataclasses.replace."""

    batch_size: int = 50
    """Detections per request (the reference receiver accepts up to 1000)."""
    timeout_s: float = 10.0
    """Timeout of one HTTP request (connect and each read), in seconds."""
    backoff_initial_s: float = 2.0
    """Delay before the first retry after a transient failure, in seconds."""
    backoff_multiplier: float = 2.0
    """Each further consecutive failure multiplies the delay by this."""
    backoff_max_s: float = 300.0
    """Upper bound of the retry delay (also caps a receiver's Retry-After), in seconds."""
    jitter_fraction: float = 0.5
    """The delay is drawn uniformly from [delay * (1 - jitter_fraction), delay], so devices do not retry in step."""
    idle_poll_s: float = 2.0
    """When the outbox is empty, how often the background sender looks again (it is also woken by notify())."""
    token_env: str = DEFAULT_TOKEN_ENV
    """Environment variable holding the bearer token (ignored when token_file is set)."""
    token_file: Path | None = None
    """File holding the bearer token; must not be readable by group or others (chmod 600)."""
    ca_file: Path | None = None
    """PEM file of the CA that signed the receiver's certificate, for a private CA; default: the system CAs."""

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise SinkError(f"delivery setting {name}: {what} (got {getattr(self, name)!r})")

        need(1 <= self.batch_size <= 1000, "batch_size", "must be in 1..1000")
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


# -- the token -----------------------------------------------------------------------------------


def load_token(
    *, token_env: str | None = DEFAULT_TOKEN_ENV, token_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The bearer token from token_file (if given) or else the environment variable token_env; None if neither.

    The file must be a regular file not readable or writable by group or others (mode 0600 or 0400);
    otherwise SinkError says how to fix it. Surrounding whitespace is stripped. The token is never logged.
    """
    if token_file is not None:
        path = Path(token_file)
        try:
            info = path.stat()
        except OSError as exc:
            raise SinkError(f"token file {path}: cannot read it ({exc.strerror}); check --token-file") from None
        if not stat.S_ISREG(info.st_mode):
            raise SinkError(f"token file {path}: not a regular file")
        if info.st_mode & 0o077:
            raise SinkError(
                f"token file {path}: readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {path}`"
            )
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SinkError(f"token file {path}: cannot read it ({exc})") from None
        if not token:
            raise SinkError(f"token file {path}: empty; write the receiver's token into it")
        _check_token_chars(token, origin=f"token file {path}")
        return token
    if token_env:
        env = os.environ if environ is None else environ
        token = env.get(token_env, "").strip()
        if token:
            _check_token_chars(token, origin=f"${token_env}")
            return token
    return None


def _check_token_chars(token: str, *, origin: str) -> None:
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise SinkError(f"{origin}: the token holds spaces or non-ASCII characters; a bearer token cannot")


# -- sinks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendReceipt:
    """What a sink reported for an accepted batch (None where it does not say)."""

    stored: int | None = None
    duplicates: int | None = None


class Sink(Protocol):
    """Where batches go. `send` returns on acknowledgement, or raises TransientSendError / RejectedBatchError."""

    name: str
    """Safe to log: no token, no password."""

    def send(self, detections: Sequence[Detection]) -> SendReceipt: ...

    def close(self) -> None: ...


def batch_json(detections: Sequence[Detection]) -> bytes:
    """The request body for a batch: UTF-8 JSON {"detections": [detection JSON objects]}."""
    return json.dumps({"detections": [d.to_json_dict() for d in detections]}, ensure_ascii=False).encode("utf-8")


def redact_url(url: str) -> str:
    """The URL without user:password@ (for logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected POST into a GET whose 200 would look like an acknowledgement: never follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class HttpSink:
    """POST batches as JSON to an HTTP(S) receiver (see the module docstring for the outcome rules)."""

    def __init__(
        self, url: str, *, token: str | None = None, timeout_s: float = DeliverySettings.timeout_s,
        ca_file: Path | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SinkError(f"sink {redact_url(url)!r}: expected http(s)://HOST[:PORT][/PATH]")
        if parts.path in ("", "/"):
            parts = parts._replace(path=RECEIVER_PATH)
        self.url = urllib.parse.urlunsplit(parts)
        self.name = redact_url(self.url)
        self.timeout_s = timeout_s
        self._token = token
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"ca_file {ca_file}: cannot load it ({exc}); give a PEM file of CA certificates") from None
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
        if token and parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            log.warning("sink %s: the bearer token travels unencrypted over plain HTTP; use https://", self.name)

    def __repr__(self) -> str:
        return f"HttpSink({self.name!r}, token={'set' if self._token else 'none'})"

    def send(self, detections: Sequence[Detection]) -> SendReceipt:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=batch_json(detections), headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status = response.status
                body = response.read(_MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            try:
                text = _read_snippet(exc)
            finally:
                exc.close()
            self._raise_for_status(exc.code, text, exc.headers)
            raise TransientSendError(f"{self.name}: unexpected HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise TransientSendError(f"{self.name}: {_describe_network_error(exc.reason, self.timeout_s)}") from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts while reading, resets, bad status lines
            raise TransientSendError(f"{self.name}: {_describe_network_error(exc, self.timeout_s)}") from None
        if not 200 <= status < 300:
            self._raise_for_status(status, body.decode("utf-8", "replace")[:_REASON_BODY_CHARS], {})
        return _parse_receipt(body)

    def _raise_for_status(self, status: int, text: str, headers: Mapping[str, str]) -> None:
        if self._token:  # a receiver that echoes the request must not put the token into logs and dead letters
            text = text.replace(self._token, "<token>")
        detail = f" ({text.strip()})" if text.strip() else ""
        if 200 <= status < 300:
            return
        if status in RETRYABLE_4XX or status >= 500:
            raise TransientSendError(
                f"{self.name}: HTTP {status}{detail}", retry_after_s=_retry_after_s(headers.get("Retry-After"))
            )
        if 300 <= status < 400:
            target = headers.get("Location", "?")
            raise TransientSendError(
                f"{self.name}: HTTP {status} redirect to {redact_url(target)}, not followed; set the sink to the final URL"
            )
        raise RejectedBatchError(f"{self.name}: HTTP {status}{detail}", status=status)

    def close(self) -> None:
        self._opener.close()


def _read_snippet(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(_MAX_RESPONSE_BYTES).decode("utf-8", "replace")[:_REASON_BODY_CHARS]
    except (OSError, ValueError):
        return ""


def _describe_network_error(reason: object, timeout_s: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s (timeout)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the receiver running?)"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({reason.verify_message}); fix the certificate or set ca_file"
    if isinstance(reason, socket.gaierror):
        return f"host name not resolved ({reason.strerror})"
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _parse_receipt(body: bytes) -> SendReceipt:
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return SendReceipt()
    if not isinstance(data, dict):
        return SendReceipt()
    stored, duplicates = data.get("stored"), data.get("duplicates")
    return SendReceipt(
        stored=stored if isinstance(stored, int) else None,
        duplicates=duplicates if isinstance(duplicates, int) else None,
    )


class JsonlSink:
    """Append each detection as one JSON line to a file, flushed and fsynced before acknowledging.

    A crash after the write and before the outbox is updated writes those lines again on restart
    (at-least-once): readers should deduplicate by id.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{self.path}"

    def send(self, detections: Sequence[Detection]) -> SendReceipt:
        lines = "".join(json.dumps(d.to_json_dict(), ensure_ascii=False) + "\n" for d in detections)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise TransientSendError(f"{self.name}: cannot append ({exc.strerror or exc})") from None
        return SendReceipt(stored=len(detections))

    def close(self) -> None:
        pass


class StdoutSink:
    """Write each detection as one JSON line to standard output (or the given stream)."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def send(self, detections: Sequence[Detection]) -> SendReceipt:
        stream = self._stream or sys.stdout
        try:
            for detection in detections:
                stream.write(json.dumps(detection.to_json_dict(), ensure_ascii=False) + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            raise TransientSendError(f"stdout: cannot write ({exc})") from None
        return SendReceipt(stored=len(detections))

    def close(self) -> None:
        pass


def make_sink(
    spec: str, *, token: str | None = None, timeout_s: float = DeliverySettings.timeout_s, ca_file: Path | None = None
) -> Sink:
    """A sink from its command-line form: 'http(s)://...', 'jsonl:PATH' or 'stdout'. Raises SinkError."""
    if spec == "stdout":
        return StdoutSink()
    if spec.startswith("jsonl:"):
        path = spec[len("jsonl:") :]
        if not path:
            raise SinkError("sink 'jsonl:': give a file path, e.g. jsonl:/var/lib/birdlab/detections.jsonl")
        return JsonlSink(Path(path).expanduser())
    if spec.startswith(("http://", "https://")):
        return HttpSink(spec, token=token, timeout_s=timeout_s, ca_file=ca_file)
    raise SinkError(f"sink {redact_url(spec)!r}: expected an http(s):// URL, jsonl:PATH or stdout")


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
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._final_report: DrainReport | None = None
        self._flush_timeout_s = 0.0

    # one batch
    def deliver_once(self) -> DeliveryResult:
        """Send the oldest pending batch once (no waiting); see DeliveryResult. Never raises for send failures."""
        rows = self.outbox.pending(self.settings.batch_size)
        if not rows:
            return DeliveryResult(attempted=0)
        rowids = [rowid for rowid, _ in rows]
        try:
            receipt = self.sink.send([d for _, d in rows])
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
            log.warning(
                "delivery of %d detection(s) failed (attempt %d): %s; retrying in %.1f s",
                len(rows), failures, exc.reason, delay,
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
            result = self.deliver_once()
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
