"""Detection: the JSON round trip, and a clear error naming the field for each kind of bad value."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sample_detections import make_detections

from edge_runtime.detection import Detection, DetectionError, stable_detection_id, utc_iso


def _valid_dict() -> dict:
    return make_detections(1, seed=7)[0].to_json_dict()


def test_json_round_trip_is_identical():
    for detection in make_detections(8, seed=1):
        text = json.dumps(detection.to_json_dict())
        assert Detection.from_json_dict(json.loads(text)) == detection


def test_numpy_scalars_become_plain_floats():
    data = _valid_dict() | {"confidence": np.float32(0.75), "offset_end_s": np.int64(10)}
    detection = Detection.from_json_dict(data)
    assert type(detection.confidence) is float and detection.confidence == 0.75
    json.dumps(detection.to_json_dict())  # serialisable


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", "not-a-uuid", "id: 'not-a-uuid' is not a UUID"),
        ("id", "1B4E28BA-2FA1-41D2-883F-0016D3CCA427", "not in canonical form"),
        ("device_id", "", "device_id: must not be empty"),
        ("source", 3, "source: expected a string, got int"),
        ("start_utc", "2026-05-01 05:30", "start_utc: '2026-05-01 05:30' has no time zone"),
        ("start_utc", "yesterday", "start_utc: 'yesterday' is not ISO 8601"),
        ("end_utc", "2026-05-01T07:30:05+02:00", "end_utc: '2026-05-01T07:30:05+02:00' is not UTC"),
        ("end_utc", "2000-01-01T00:00:00Z", "end_utc: '2000-01-01T00:00:00Z' is before start_utc"),
        ("offset_start_s", -1.0, "offset_start_s: -1.0 is negative"),
        ("offset_end_s", float("nan"), "offset_end_s: nan is not finite"),
        ("confidence", 1.5, "confidence: 1.5 is outside [0, 1]"),
        ("confidence", True, "confidence: expected a number, got bool"),
        ("confidence", "0.9", "confidence: expected a number, got str"),
        ("model_sha256", "abc", "model_sha256: expected 64 hex characters, got 3"),
        ("spec_hash", "XYZ", "spec_hash: 'XYZ' is not lower-case hexadecimal"),
    ],
)
def test_bad_field_is_named(field, value, message):
    with pytest.raises(DetectionError) as excinfo:
        Detection.from_json_dict(_valid_dict() | {field: value})
    assert message in str(excinfo.value)


def test_missing_fields_are_listed_and_unknown_ignored():
    data = _valid_dict()
    del data["ebird_code"], data["spec_hash"]
    with pytest.raises(DetectionError, match="missing field\\(s\\) ebird_code, spec_hash"):
        Detection.from_json_dict(data)
    assert Detection.from_json_dict(_valid_dict() | {"added_in_v2": 1}) == make_detections(1, seed=7)[0]
    with pytest.raises(DetectionError, match="must be a JSON object, got list"):
        Detection.from_json_dict([1, 2])


def test_utc_iso_converts_and_refuses_naive():
    paris = timezone(timedelta(hours=2))
    assert utc_iso(datetime(2026, 5, 1, 7, 30, 0, 120000, tzinfo=paris)) == "2026-05-01T05:30:00.120Z"
    with pytest.raises(DetectionError, match="naive"):
        utc_iso(datetime(2026, 5, 1))
    assert datetime.fromisoformat(utc_iso(datetime.now(UTC))).tzinfo is not None


def test_stable_id_is_deterministic_and_distinguishes_windows():
    parts = dict(device_id="pi", source="file:a.wav", window_key="5.000", ebird_code="eurrob1", model_sha256="0" * 64)
    first = stable_detection_id(**parts)
    assert first == stable_detection_id(**parts)
    assert first != stable_detection_id(**(parts | {"window_key": "10.000"}))
    assert first != stable_detection_id(**(parts | {"ebird_code": "eurbla"}))
    assert first != stable_detection_id(**(parts | {"source": "file:b.wav"}))
    assert Detection.from_json_dict(_valid_dict() | {"id": first}).id == first
