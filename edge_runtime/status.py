"""The status file: a small JSON object rewritten atomically (write a temp file, then os.replace).

A reader (a monitoring script, `cat`) never sees a half-written file. Keys are the
fields of RunStatus; `write_status` adds `updated_utc`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class RunStatus:
    """Counters of one `edge_runtime run`, mutated by the pipeline (one thread)."""

    state: str = "starting"
    """starting | running | stopping | stopped."""
    started_utc: str = ""
    files_done: int = 0
    """Files (file: and dir: sources) analysed to the end without error."""
    files_failed: int = 0
    """Files refused with an error (corrupt, truncated, empty, non-finite ...)."""
    windows_processed: int = 0
    detections_total: int = 0
    outbox_depth: int = 0
    """Detections committed locally but not yet delivered."""
    dead_letters: int = 0
    """Detections the sink refused for good (4xx); see dead_letter_reason."""
    dead_letter_reason: str = ""
    dropped_total: int = 0
    """Detections dropped by the outbox bound (drop-oldest)."""
    nonfinite_samples: int = 0
    """NaN or infinite samples of raw float PCM (stdin) replaced by 0 (each occurrence is logged)."""
    delivered_total: int = 0
    audio_seconds: float = 0.0
    """Seconds of audio analysed."""
    compute_seconds: float = 0.0
    """Seconds spent in the frontend and the model for that audio."""
    realtime_factor: float = 0.0
    """audio_seconds / compute_seconds: how many times faster than real time."""
    last_error: str = ""
    errors: int = 0
    bundle: str = ""
    model_id: str = ""
    sources: list[str] = dataclasses.field(default_factory=list)

    def add_compute(self, *, audio_seconds: float, compute_seconds: float) -> None:
        self.audio_seconds += audio_seconds
        self.compute_seconds += compute_seconds
        if self.compute_seconds > 0:
            self.realtime_factor = round(self.audio_seconds / self.compute_seconds, 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def write_status(path: Path, status: RunStatus) -> None:
    """Atomically replace `path` with the status as JSON (plus updated_utc)."""
    data = status.to_dict()
    data["updated_utc"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any]:
    """The last status written to `path`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


class StatusWriter:
    """Writes the status at most every `interval_seconds` (maybe_write) and on demand (write).

    A status file that cannot be written (full disk, missing directory, permissions) is logged as a
    warning, once per distinct reason, and never stops the run.
    """

    def __init__(self, path: Path | None, status: RunStatus, *, interval_seconds: float) -> None:
        self.path = path
        self.status = status
        self.interval_seconds = interval_seconds
        self._last = float("-inf")  # the first maybe_write always writes
        self._last_failure: str | None = None

    def due(self) -> bool:
        """True when a status file is configured and interval_seconds passed since the last write."""
        return self.path is not None and time.monotonic() - self._last >= self.interval_seconds

    def maybe_write(self) -> None:
        if self.due():
            self.write()

    def write(self) -> None:
        if self.path is None:
            return
        self._last = time.monotonic()
        try:
            write_status(self.path, self.status)
        except OSError as exc:
            reason = f"{exc.strerror or exc}"
            if reason != self._last_failure:
                log.warning("cannot write the status file %s (%s); the run goes on", self.path, reason)
            self._last_failure = reason
            return
        if self._last_failure is not None:
            log.info("the status file %s is written again", self.path)
        self._last_failure = None
