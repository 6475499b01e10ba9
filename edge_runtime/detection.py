"""One detection: a species heard in one window of one audio source, as delivered off the device.

A detection is stored in the outbox, sent to the receiver and stored there as the same JSON
object. `Detection.from_json_dict` is the single validator: the outbox, the sinks and the
reference receiver all go through it, so a malformed detection is refused with a message
naming the field, wherever it appears.

JSON form (every key required; unknown keys are ignored by the validator):

    {"id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",   # canonical UUID string, the dedup key
     "device_id": "pi-garden",
     "source": "file:/data/rec.wav",
     "start_utc": "2026-05-01T05:30:00Z", "end_utc": "2026-05-01T05:30:05Z",
     "offset_start_s": 0.0, "offset_end_s": 5.0,      # seconds from the start of the source
     "ebird_code": "eurrob1", "scientific_name": "Erithacus rubecula", "common_name": "European Robin",
     "confidence": 0.93,                              # in [0, 1]
     "model_id": "...", "model_sha256": "<64 hex>", "spec_hash": "<hex>"}
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge_runtime.errors import EdgeRuntimeError

_HEX_RE = re.compile(r"^[0-9a-f]+$")
_SHA256_HEX_CHARS = 64
# Namespace for stable detection ids (uuid5); fixed forever, changing it breaks deduplication across versions.
DETECTION_ID_NAMESPACE = uuid.UUID("6c4f1f0e-5d0b-5b7e-9a35-2f1d8a3c9e11")


class DetectionError(EdgeRuntimeError, ValueError):
    """A detection is malformed; the message names the field and what is expected."""


@dataclass(frozen=True)
class Detection:
    """A species detected in one window of one source. Immutable; validated on construction."""

    id: str
    """Canonical lower-case UUID string; the receiver deduplicates on it, so a re-sent detection is stored once."""
    device_id: str
    """Name of the device that made the detection (settings: device_id)."""
    source: str
    """The audio source, as given on the command line (e.g. 'file:/data/a.wav', 'mic:hw:1,0')."""
    start_utc: str
    """Window start, ISO 8601 with a UTC offset ('Z' or '+00:00')."""
    end_utc: str
    """Window end, ISO 8601 UTC, not before start_utc."""
    offset_start_s: float
    """Window start in seconds from the beginning of the source (>= 0)."""
    offset_end_s: float
    """Window end in seconds from the beginning of the source (>= offset_start_s)."""
    ebird_code: str
    """eBird species code of the label (labels.csv)."""
    scientific_name: str
    """Scientific name of the label (labels.csv)."""
    common_name: str
    """English common name of the label (labels.csv)."""
    confidence: float
    """Model output (sigmoid probability) for this species in this window, in [0, 1]."""
    model_id: str
    """The bundle's model_id (manifest.json)."""
    model_sha256: str
    """sha256 of the bundle's model.tflite, 64 lower-case hex characters."""
    spec_hash: str
    """FeatureSpec.spec_hash of the features the model was fed (lower-case hex)."""

    def __post_init__(self) -> None:
        _check_uuid(self.id)
        for name in ("device_id", "source", "ebird_code", "model_id"):
            _check_str(name, getattr(self, name), allow_empty=False)
        for name in ("scientific_name", "common_name"):
            _check_str(name, getattr(self, name), allow_empty=True)
        _check_hex("model_sha256", self.model_sha256, length=_SHA256_HEX_CHARS)
        _check_hex("spec_hash", self.spec_hash, length=None)
        start = _parse_utc("start_utc", self.start_utc)
        end = _parse_utc("end_utc", self.end_utc)
        if end < start:
            raise DetectionError(f"end_utc: {self.end_utc!r} is before start_utc {self.start_utc!r}")
        for name in ("offset_start_s", "offset_end_s", "confidence"):
            object.__setattr__(self, name, _as_finite_float(name, getattr(self, name)))
        if self.offset_start_s < 0:
            raise DetectionError(f"offset_start_s: {self.offset_start_s} is negative; offsets count from 0")
        if self.offset_end_s < self.offset_start_s:
            raise DetectionError(
                f"offset_end_s: {self.offset_end_s} is before offset_start_s {self.offset_start_s}"
            )
        if not 0.0 <= self.confidence <= 1.0:
            raise DetectionError(f"confidence: {self.confidence} is outside [0, 1]")

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object sent and stored (all fields, JSON-serialisable, key order as declared)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Detection:
        """Validate a JSON object and build a Detection; raises DetectionError naming the field.

        Keys not in the dataclass are ignored (a newer device may add fields).
        """
        if not isinstance(data, Mapping):
            raise DetectionError(f"a detection must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise DetectionError(f"missing field(s) {', '.join(missing)}")
        return cls(**{n: data[n] for n in names})


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with millisecond precision and a 'Z' suffix."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise DetectionError(f"utc_iso needs an aware datetime, got naive {moment!r}; use datetime.now(UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stable_detection_id(
    *, device_id: str, source: str, window_key: str, ebird_code: str, model_sha256: str
) -> str:
    """A deterministic UUID (uuid5) for a detection, so re-processing a window yields the same id.

    When the runtime is killed and re-processes the file it was working on, the detections of
    the re-processed windows get the same ids and the receiver stores them once. window_key
    identifies the window within the source: for files the offset (e.g. f"{offset_start_s:.3f}"),
    for live sources the window's start_utc.
    """
    name = "\x1f".join((device_id, source, window_key, ebird_code, model_sha256))
    return str(uuid.uuid5(DETECTION_ID_NAMESPACE, name))


def _check_uuid(value: Any) -> None:
    if not isinstance(value, str):
        raise DetectionError(f"id: expected a UUID string, got {type(value).__name__}")
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise DetectionError(f"id: {value!r} is not a UUID") from None
    if canonical != value:
        raise DetectionError(f"id: {value!r} is not in canonical form; send {canonical!r}")


def _check_str(name: str, value: Any, *, allow_empty: bool) -> None:
    if not isinstance(value, str):
        raise DetectionError(f"{name}: expected a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DetectionError(f"{name}: must not be empty")


def _check_hex(name: str, value: Any, *, length: int | None) -> None:
    _check_str(name, value, allow_empty=False)
    if not _HEX_RE.match(value):
        raise DetectionError(f"{name}: {value!r} is not lower-case hexadecimal")
    if length is not None and len(value) != length:
        raise DetectionError(f"{name}: expected {length} hex characters, got {len(value)}")


def _parse_utc(name: str, value: Any) -> datetime:
    _check_str(name, value, allow_empty=False)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DetectionError(f"{name}: {value!r} is not ISO 8601 (e.g. '2026-05-01T05:30:00Z')") from None
    offset = moment.utcoffset()
    if moment.tzinfo is None or offset is None:
        raise DetectionError(f"{name}: {value!r} has no time zone; append 'Z' (UTC)")
    if offset.total_seconds() != 0:
        raise DetectionError(f"{name}: {value!r} is not UTC; convert it and append 'Z'")
    return moment


def _as_finite_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DetectionError(f"{name}: expected a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise DetectionError(f"{name}: {value} is not finite")
    return result
