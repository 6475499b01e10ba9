"""The pipeline: sources -> sliding windows -> WASM log-mel -> TFLite -> detections -> outbox.

Each source runs in its own producer thread (reading and windowing audio); one consumer
(the caller's thread) runs the frontend and the model on each window, turns the model
output into detections (thresholds global and per species, include/exclude lists,
top-N) and commits them to the outbox before anything is sent. A stop event (SIGTERM,
SIGINT) lets the current window finish; then the caller flushes and exits.

A source that fails for good (its producer raised, or died without a word; a live stream broke)
ends the run: `Pipeline.source_failure` holds the reason, the stop event is set. A bad file is
not a source failure: it is counted in files_failed and the run goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Protocol

import numpy as np

from edge_runtime.audio import AudioError
from edge_runtime.bundle import Bundle
from edge_runtime.decisions import DetectionPolicy, make_detections
from edge_runtime.inference import TFLiteModel
from edge_runtime.outbox import Outbox
from edge_runtime.settings import EdgeSettings
from edge_runtime.sources import AudioItem, DoneFiles, SourceError, SourceSpec, items_of, parse_source
from edge_runtime.spec import FeatureSpec
from edge_runtime.status import RunStatus, StatusWriter
from edge_runtime.windows import SlidingWindows, Window, sliding_windows, step_samples_for

log = logging.getLogger("edge_runtime.pipeline")

QUEUE_WINDOWS = 16
"""Windows buffered between the producers and the consumer (bounds memory: 16 x 640 kB at 32 kHz)."""
PRODUCER_JOIN_SECONDS = 2.0
"""How long to wait for a producer thread at the end (stdin may block in read forever)."""


class Frontend(Protocol):
    """What the pipeline needs from a log-mel frontend (edge_runtime.frontend.MelFrontend)."""

    def log_mel(self, samples: np.ndarray) -> np.ndarray:  # float32 (n,) -> float32 (n_mels, n_frames)
        ...


class WindowAnalyzer:
    """Frontend + model for one window, with the time spent in each (seconds, cumulative)."""

    def __init__(self, *, frontend: Frontend, model: TFLiteModel, spec: FeatureSpec) -> None:
        self.frontend = frontend
        self.model = model
        self.spec = spec
        self.frontend_seconds = 0.0
        self.model_seconds = 0.0

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """samples: float32 (clip_samples,). Returns float32 (n_outputs,), every value finite.

        Raises ValueError when the features or the model outputs hold NaN or infinity (e.g. samples at 1e30
        overflow the power spectrum): the window fails with that reason instead of giving no detection.
        """
        t0 = time.perf_counter()
        features = self.frontend.log_mel(np.ascontiguousarray(samples, dtype=np.float32))
        t1 = time.perf_counter()
        expected = self.spec.input_shape[:2]
        if features.shape != expected:
            raise ValueError(f"frontend returned shape {features.shape}, the model needs {expected}")
        if not np.isfinite(features).all():
            peak = float(np.max(np.abs(samples))) if samples.size else 0.0
            raise ValueError(f"{int(np.count_nonzero(~np.isfinite(features)))} non-finite log-mel values (sample peak "
                             f"{peak:.3g}; audio is expected in [-1, 1]): the recording or its converter is faulty")
        out = self.model.predict(features[np.newaxis, :, :, np.newaxis])[0]
        if not np.isfinite(out).all():
            raise ValueError(f"the model gave {int(np.count_nonzero(~np.isfinite(out)))} non-finite outputs")
        t2 = time.perf_counter()
        self.frontend_seconds += t1 - t0
        self.model_seconds += t2 - t1
        return out


# -- producers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WindowEvent:
    item: AudioItem
    window: Window
    start_utc: datetime | None = None
    """Wall-clock time of the window's first sample for live sources read in real time (else None)."""


@dataclass(frozen=True)
class _ItemDone:
    item: AudioItem
    error: Exception | None


@dataclass(frozen=True)
class _SourceDone:
    spec: SourceSpec
    error: BaseException | None


def _put(events: queue.Queue, event: Any, stop: threading.Event) -> bool:
    """Put unless stopping; False when the stop event was set first."""
    while not stop.is_set():
        try:
            events.put(event, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def timed_windows(item: AudioItem, *, clip_samples: int, step_samples: int,
                   rate_hz: int) -> Iterator[tuple[Window, datetime | None]]:
    """The item's windows; for a real-time source each with the wall-clock time of its first sample.

    A chunk of a live capture arrives when its last sample was recorded, so sample s of the stream
    was recorded at arrival - (samples so far - s) / rate. Anchoring every window to the arrival
    of its chunks keeps timestamps on the system clock over months, whatever the sound card's drift.
    """
    if not item.realtime:
        yield from ((w, None) for w in sliding_windows(item.read_chunks(), clip_samples=clip_samples,
                                                       step_samples=step_samples))
        return
    windower = SlidingWindows(clip_samples=clip_samples, step_samples=step_samples)
    received = 0
    for chunk in item.read_chunks():
        arrival = datetime.now(UTC)
        received += chunk.size
        for w in windower.push(chunk):
            yield w, arrival - timedelta(seconds=(received - w.start_sample) / rate_hz)
    arrival = datetime.now(UTC)
    for w in windower.finish():
        yield w, arrival - timedelta(seconds=(received - w.start_sample) / rate_hz)


def _produce(spec: SourceSpec, events: queue.Queue, stop: threading.Event, *, settings: EdgeSettings,
             bundle: Bundle, done: DoneFiles | None, stdin_stream: BinaryIO | None) -> None:
    """Producer thread of one source: items -> windows -> events."""
    rate = bundle.spec.sample_rate_hz
    clip = bundle.spec.clip_samples
    step = step_samples_for(clip_samples=clip, overlap_seconds=settings.overlap_s, sample_rate_hz=rate)
    try:
        items = items_of(spec, sample_rate_hz=rate, stop=stop, done=done, poll_seconds=settings.dir_poll_s,
                         stdin_rate_hz=settings.stdin_rate_hz, stdin_format=settings.stdin_format,
                         stdin_channels=settings.stdin_channels, mic_rate_hz=settings.mic_rate_hz,
                         mic_command=settings.mic_command, stdin_stream=stdin_stream)
        for item in items:
            error: Exception | None = None
            try:
                for window, start_utc in timed_windows(item, clip_samples=clip, step_samples=step, rate_hz=rate):
                    if not _put(events, _WindowEvent(item, window, start_utc), stop):
                        return
            except (AudioError, SourceError, OSError) as exc:
                error = exc
            if not _put(events, _ItemDone(item, error), stop):
                return
    except SourceError as exc:
        _put(events, _SourceDone(spec, exc), stop)
        return
    except BaseException as exc:  # noqa: BLE001 - a producer must always report, or the run would wait forever
        log.error("source %s failed (%s: %s)", spec.text, type(exc).__name__, exc,
                  exc_info=not isinstance(exc, SystemExit | KeyboardInterrupt))
        _put(events, _SourceDone(spec, exc), stop)
        return
    _put(events, _SourceDone(spec, None), stop)


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """One run of the pipeline over `sources`, committing detections to `outbox`.

    `after_commit` (optional) is called after detections were committed, e.g. to wake the sender.
    """

    settings: EdgeSettings
    bundle: Bundle
    analyzer: WindowAnalyzer
    outbox: Outbox
    status: RunStatus
    status_writer: StatusWriter
    stop: threading.Event
    after_commit: Callable[[], None] | None = None
    stdin_stream: BinaryIO | None = None
    source_failure: str | None = None
    """Why the run ended early: a source failed for good (None when it did not)."""

    def run(self) -> RunStatus:
        """Process every source until all are exhausted or `stop` is set; returns the status."""
        specs = [parse_source(text) for text in self.settings.sources]
        policy = DetectionPolicy.from_settings(self.settings, bundle=self.bundle)
        device_id = self.settings.resolved_device_id
        done = DoneFiles(self.settings.resolved_state) if any(s.kind == "dir" for s in specs) else None
        events: queue.Queue = queue.Queue(maxsize=QUEUE_WINDOWS)
        threads = [
            threading.Thread(target=_produce, name=f"source {s.text}", daemon=True, args=(s, events, self.stop),
                             kwargs={"settings": self.settings, "bundle": self.bundle, "done": done,
                                     "stdin_stream": self.stdin_stream})
            for s in specs
        ]
        self.status.state = "running"
        for thread in threads:
            thread.start()
        finished: set[int] = set()
        failed_items: set[int] = set()
        try:
            while len(finished) < len(specs) and not self.stop.is_set():
                self._idle_work()
                try:
                    event = events.get(timeout=0.25)
                except queue.Empty:
                    self._check_producers(specs, threads, finished, events)
                    continue
                if isinstance(event, _WindowEvent):
                    # after a failed window the rest of a file is skipped (the file counts as failed);
                    # a live stream goes on with its next window
                    if id(event.item) not in failed_items and not self._window(event, policy, device_id):
                        if event.item.is_file:
                            failed_items.add(id(event.item))
                elif isinstance(event, _ItemDone):
                    self._item_done(event, failed=id(event.item) in failed_items)
                    failed_items.discard(id(event.item))
                    if event.error is not None and not event.item.is_file:
                        self._fail_source(f"source {event.item.source}: {event.error}")
                else:
                    finished.add(specs.index(event.spec))
                    if event.error is not None:
                        error = event.error
                        self._fail_source(f"source {event.spec.text}: {type(error).__name__}: {error}"
                                          if not isinstance(error, SourceError) else f"source {event.spec.text}: {error}")
        finally:
            self.status.state = "stopping"
            for thread in threads:
                thread.join(timeout=PRODUCER_JOIN_SECONDS)
            if done is not None:
                done.close()
            self.refresh_outbox_counters()
        return self.status

    def _fail_source(self, message: str) -> None:
        """A source failed for good: report it and end the run."""
        self._error(message + "; stopping the run")
        self.source_failure = message
        self.stop.set()

    def _check_producers(self, specs: list[SourceSpec], threads: list[threading.Thread], finished: set[int],
                         events: queue.Queue) -> None:
        """A producer thread that ended without reporting (nothing left in the queue from it) failed silently.

        (On stop, producers end without reporting: that is not a failure.)
        """
        for index, thread in enumerate(threads):
            if index not in finished and not thread.is_alive() and events.empty():
                if self.stop.is_set():  # checked after the death was seen: a stop set before it explains it
                    return
                finished.add(index)
                self._fail_source(f"source {specs[index].text}: its reader thread ended without a word")

    def _idle_work(self) -> None:
        self.outbox.check_present()  # a deleted outbox ends the run (OutboxError), even while no detection comes
        if self.status_writer.due():
            self.refresh_outbox_counters()
            self.status_writer.write()

    def _window(self, event: _WindowEvent, policy: DetectionPolicy, device_id: str) -> bool:
        """Analyse one window and commit its detections; False (error logged) when the window failed."""
        item, window = event.item, event.window
        before = self.analyzer.frontend_seconds + self.analyzer.model_seconds
        try:
            probabilities = self.analyzer.probabilities(window.samples)
        except Exception as exc:  # noqa: BLE001 - a bad window must not stop the device; the error is reported
            self._error(f"{item.source}: window at {window.start_sample / self.bundle.spec.sample_rate_hz:.2f} s "
                        f"failed ({type(exc).__name__}: {exc})")
            return False
        detections = make_detections(policy.select(probabilities, self.bundle.labels), item=item, window=window,
                                     bundle=self.bundle, device_id=device_id, start_utc=event.start_utc)
        if detections:
            self.outbox.add(detections)
            if self.after_commit is not None:
                self.after_commit()
        spent = self.analyzer.frontend_seconds + self.analyzer.model_seconds - before
        self.status.windows_processed += 1
        self.status.detections_total += len(detections)
        self.status.add_compute(audio_seconds=window.valid_samples / self.bundle.spec.sample_rate_hz,
                                compute_seconds=spent)
        for d in detections:
            log.info("detection %s %.3f %s +%.1fs", d.ebird_code, d.confidence, d.source, d.offset_start_s)
        return True

    def _item_done(self, event: _ItemDone, *, failed: bool) -> None:
        item = event.item
        self.status.nonfinite_samples += item.repairs.nonfinite
        ok = event.error is None and not failed
        if event.error is not None:
            self._error(f"{event.error}" if isinstance(event.error, AudioError) else f"{item.source}: {event.error}")
        if item.is_file:
            if ok:
                self.status.files_done += 1
                log.info("done %s", item.source)
            else:
                self.status.files_failed += 1
            if item.on_done is not None:
                item.on_done(ok)

    def _error(self, message: str) -> None:
        log.error("%s", message)
        self.status.errors += 1
        self.status.last_error = message

    def refresh_outbox_counters(self) -> None:
        stats = self.outbox.stats()
        self.status.outbox_depth = stats.depth
        self.status.dead_letters = stats.dead_letters
        self.status.dead_letter_reason = stats.last_dead_letter_reason or ""
        self.status.dropped_total = stats.dropped
        self.status.delivered_total = stats.sent
