"""`python -m edge_runtime run`: check the bundle, wire the pipeline to the outbox and the sink, run, shut down.

Exit status: 0 after a normal end (all file: sources done, stdin closed) or a SIGTERM/SIGINT
(the current window finishes, pending detections get `flush_deadline_s` to be delivered,
the status file is written); 1 when the outbox cannot be written mid-run (or was deleted); 2 for a
usage error or a refused bundle; 3 when a source failed for good (its reader died, a live stream
broke: the run stops, flushes and exits so that systemd restarts it). A bad audio file is not
an exit: it is logged, counted in files_failed and the run goes on.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any, BinaryIO, TypeAlias

from edge_runtime.bundle import BundleError, open_bundle
from edge_runtime.check import check_bundle
from edge_runtime.decisions import DetectionPolicy
from edge_runtime.delivery import Deliverer, DeliverySettings, SinkError, make_sink_from_settings
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.inference import InferenceError, TFLiteModel
from edge_runtime.outbox import Outbox, OutboxError
from edge_runtime.pipeline import Pipeline, WindowAnalyzer
from edge_runtime.settings import EdgeSettings
from edge_runtime.sources import SourceError, parse_source
from edge_runtime.spec import FeatureSpec
from edge_runtime.status import RunStatus, StatusWriter

log = logging.getLogger("edge_runtime.run")

EXIT_OK = 0
EXIT_OUTBOX_FAILED = 1
"""The outbox could not be written mid-run (e.g. the disk is full); systemd restarts the runtime."""
EXIT_USAGE = 2
EXIT_SOURCE_FAILED = 3
"""A source failed for good (its producer died, a live stream broke); systemd restarts the runtime."""


class UsageError(EdgeRuntimeError):
    """A setting that prevents the run from starting; the message says what to fix."""


def delivery_settings(settings: EdgeSettings) -> DeliverySettings:
    """The delivery part of the runtime settings (settings.delivery)."""
    return settings.delivery


_SignalHandler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
"""What signal.signal takes and returns: a function, SIG_DFL/SIG_IGN, or None (installed outside Python)."""


@dataclass
class _Signals:
    """SIGTERM/SIGINT set `stop`; the previous handlers come back on restore()."""

    stop: threading.Event
    previous: dict[int, _SignalHandler]

    @classmethod
    def install(cls, stop: threading.Event) -> _Signals:
        previous: dict[int, _SignalHandler] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda n, _f: cls._on_signal(stop, n))
        return cls(stop, previous)

    @staticmethod
    def _on_signal(stop: threading.Event, signum: int) -> None:
        log.warning("%s received: finishing the current window, then flushing", signal.Signals(signum).name)
        stop.set()

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _validate(settings: EdgeSettings) -> None:
    if not settings.bundle:
        raise UsageError("no bundle: give --bundle DIR_OR_TAR_GZ (or 'bundle' in the config file)")
    if not settings.sources:
        raise UsageError("no source: give at least one --source (mic[:DEVICE], file:PATH, dir:PATH or stdin)")
    if any(parse_source(t).kind == "mic" for t in settings.sources) and shutil.which(settings.mic_command) is None:
        raise UsageError(f"mic source: the capture program {settings.mic_command!r} is not installed; "
                         "sudo apt install alsa-utils (or set mic_command)")
    if sum(parse_source(t).kind == "stdin" for t in settings.sources) > 1:
        raise UsageError("stdin can be a source only once")


MIN_STEP_S = 0.25
"""Consecutive windows must start at least this far apart (overlap_s <= clip - MIN_STEP_S)."""


def _check_overlap(settings: EdgeSettings, spec: FeatureSpec) -> None:
    clip_s = spec.clip_samples / spec.sample_rate_hz
    if clip_s - settings.overlap_s < MIN_STEP_S:
        raise UsageError(f"overlap_s={settings.overlap_s:g}: windows of {clip_s:g} s must advance by at "
                         f"least {MIN_STEP_S} s; give an overlap of at most {clip_s - MIN_STEP_S:g} s")


def run(settings: EdgeSettings, *, stop: threading.Event | None = None, stdin_stream: BinaryIO | None = None) -> int:
    """Run the edge runtime with `settings` until its sources end or `stop` is set; returns the exit status."""
    stop = stop or threading.Event()
    try:
        _validate(settings)
    except (UsageError, SourceError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE

    report = check_bundle(settings.bundle, interpreter=settings.interpreter, num_threads=settings.num_threads,
                          frontend_timeout_seconds=settings.frontend_timeout_s)
    if not report.ok:
        log.error("bundle refused: %s", report.verdict)
        return EXIT_USAGE
    from edge_runtime.frontend import FrontendError, MelFrontend, default_module_cache_dir

    try:
        bundle = open_bundle(settings.bundle)
        _check_overlap(settings, bundle.spec)
        DetectionPolicy.from_settings(settings, bundle=bundle)
        model = TFLiteModel.load(bundle.model_path, num_threads=settings.num_threads, backend=settings.interpreter)
        sink = make_sink_from_settings(settings.sink, settings=delivery_settings(settings))
    except (BundleError, InferenceError, SinkError, UsageError, ValueError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    try:
        outbox = Outbox.open(settings.outbox, settings=settings.outbox_limits)
    except OutboxError as exc:
        log.error("%s", exc)
        sink.close()
        return EXIT_USAGE
    try:
        frontend = MelFrontend.load(bundle.wasm_path, spec=bundle.spec, cache_dir=default_module_cache_dir(),
                                    timeout_s=settings.frontend_timeout_s)
    except FrontendError as exc:
        log.error("%s", exc)
        outbox.close()
        sink.close()
        return EXIT_USAGE
    deliverer = Deliverer(outbox, sink, settings=delivery_settings(settings))
    status = RunStatus(started_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), bundle=str(settings.bundle),
                       model_id=bundle.model_id, sources=list(settings.sources))
    writer = StatusWriter(settings.status, status, interval_seconds=settings.status_interval_s)
    pipeline = Pipeline(settings=settings, bundle=bundle,
                        analyzer=WindowAnalyzer(frontend=frontend, model=model, spec=bundle.spec),
                        outbox=outbox, status=status, status_writer=writer, stop=stop, after_commit=deliverer.notify,
                        stdin_stream=stdin_stream)
    signals = _Signals.install(stop)
    log.info("running %s (%s, %s) on %s -> %s", bundle.model_id, bundle.variant, model.backend,
             ", ".join(settings.sources), sink.name)
    writer.write()
    deliverer.start()
    exit_code = EXIT_OK
    try:
        pipeline.run()
        if pipeline.source_failure is not None:
            status.last_error = pipeline.source_failure
            exit_code = EXIT_SOURCE_FAILED
    except OutboxError as exc:  # the disk is full or the file is gone: stop, keep what is committed
        log.error("%s", exc)
        status.last_error = str(exc)
        exit_code = EXIT_OUTBOX_FAILED
    finally:
        status.state = "stopping"
        writer.write()
        flushed = deliverer.stop(flush_timeout_s=settings.flush_deadline_s)
        try:
            pipeline.refresh_outbox_counters()
        except OutboxError:  # already reported; nothing is pending in a file that is gone
            flushed = None
        if flushed is not None and flushed.remaining:
            log.warning("%d detection(s) still pending in %s; they are sent on the next run or by "
                        "`python -m edge_runtime flush`", flushed.remaining, settings.outbox)
        status.state = "stopped"
        writer.write()
        signals.restore()
        frontend.close()
        outbox.close()
        sink.close()
    log.info("stopped: %d file(s) done, %d failed, %d window(s), %d detection(s), realtime factor %.0f",
             status.files_done, status.files_failed, status.windows_processed, status.detections_total,
             status.realtime_factor)
    return exit_code
