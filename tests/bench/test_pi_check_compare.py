"""bench.pi_check.compare: the host-vs-emulated-Pi comparison of two detection lists, on known answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.pi_check.compare import (
    CONFIDENCE_ATOL,
    ComparisonError,
    compare_detections,
    compare_scores,
    only_files,
    read_jsonl,
)

HOST_ROOT = "/home/ci/.cache/birdlab/pi/work/audio"
PI_ROOT = "/pi-check/work/audio"


def det(root: str, file: str, start_s: float, code: str, confidence: float, **extra: Any) -> dict[str, Any]:
    """A detection JSON object as far as the comparison reads it (plus fields it must ignore)."""
    return {"source": f"file:{root}/{file}", "offset_start_s": start_s, "offset_end_s": start_s + 5.0,
            "ebird_code": code, "confidence": confidence, "id": extra.get("id", "x"),
            "device_id": extra.get("device_id", "d"), "start_utc": extra.get("start_utc", "2026-01-01T00:00:00Z")}


def test_same_decisions_under_different_roots_and_ids_are_identical() -> None:
    host = [det(HOST_ROOT, "decoded/a.wav", 0.0, "eurrob1", 0.75, id="1", device_id="host"),
            det(HOST_ROOT, "decoded/a.wav", 5.0, "comcha", 0.5, id="2", device_id="host")]
    pi = [det(PI_ROOT, "decoded/a.wav", 5.0, "comcha", 0.5 + 4e-7, id="3", device_id="pi"),
          det(PI_ROOT, "decoded/a.wav", 0.0, "eurrob1", 0.75 - 1e-7, id="4", device_id="pi")]
    c = compare_detections(host, pi, reference_root=HOST_ROOT, candidate_root=PI_ROOT)
    assert c.identical and c.confidences_within_tolerance and c.passed
    assert (c.reference_detections, c.detections) == (2, 2)
    assert c.max_abs_confidence_diff == pytest.approx(4e-7, abs=1e-12)
    assert c.worst == ("decoded/a.wav", 5.0, 10.0, "comcha")


def test_a_missing_and_an_extra_decision_are_reported_by_side() -> None:
    host = [det(HOST_ROOT, "a.wav", 0.0, "eurrob1", 0.9), det(HOST_ROOT, "a.wav", 5.0, "eurrob1", 0.6)]
    pi = [det(PI_ROOT, "a.wav", 0.0, "eurrob1", 0.9), det(PI_ROOT, "b.wav", 5.0, "eurrob1", 0.6)]
    c = compare_detections(host, pi, reference_root=HOST_ROOT, candidate_root=PI_ROOT)
    assert not c.identical and not c.passed
    assert c.only_reference == (("a.wav", 5.0, 10.0, "eurrob1"),)
    assert c.only_candidate == (("b.wav", 5.0, 10.0, "eurrob1"),)
    assert c.max_abs_confidence_diff == 0.0
    summary = c.to_dict()
    assert summary["identical"] is False and summary["only_reference"] == [["a.wav", 5.0, 10.0, "eurrob1"]]
    json.dumps(summary)


def test_a_species_swap_in_one_window_is_not_identical() -> None:
    host = [det(HOST_ROOT, "a.wav", 0.0, "eurrob1", 0.9)]
    pi = [det(PI_ROOT, "a.wav", 0.0, "comcha", 0.9)]
    assert not compare_detections(host, pi, reference_root=HOST_ROOT, candidate_root=PI_ROOT).identical


def test_confidence_beyond_the_tolerance_fails_with_identical_decisions() -> None:
    host = [det(HOST_ROOT, "a.wav", 0.0, "eurrob1", 0.9), det(HOST_ROOT, "a.wav", 5.0, "eurrob1", 0.7)]
    pi = [det(PI_ROOT, "a.wav", 0.0, "eurrob1", 0.9), det(PI_ROOT, "a.wav", 5.0, "eurrob1", 0.7 + 3 * CONFIDENCE_ATOL)]
    c = compare_detections(host, pi, reference_root=HOST_ROOT, candidate_root=PI_ROOT)
    assert c.identical and not c.confidences_within_tolerance and not c.passed
    assert c.max_abs_confidence_diff == pytest.approx(3 * CONFIDENCE_ATOL)
    assert c.worst == ("a.wav", 5.0, 10.0, "eurrob1")


def test_offsets_equal_to_the_microsecond_are_the_same_window() -> None:
    host = [det(HOST_ROOT, "a.wav", 2.5, "eurrob1", 0.9)]
    pi = [det(PI_ROOT, "a.wav", 2.5 + 1e-9, "eurrob1", 0.9)]
    assert compare_detections(host, pi, reference_root=HOST_ROOT, candidate_root=PI_ROOT).identical


def test_two_empty_runs_are_identical_with_no_confidence_figure() -> None:
    c = compare_detections([], [], reference_root=HOST_ROOT, candidate_root=PI_ROOT)
    assert c.passed and c.max_abs_confidence_diff is None and c.worst is None


def test_a_source_outside_the_audio_root_is_an_error_naming_it() -> None:
    with pytest.raises(ComparisonError, match="/elsewhere/a.wav"):
        compare_detections([det("/elsewhere", "a.wav", 0.0, "eurrob1", 0.9)], [],
                           reference_root=HOST_ROOT, candidate_root=PI_ROOT)


def test_a_decision_made_twice_in_one_run_is_an_error() -> None:
    twice = [det(PI_ROOT, "a.wav", 0.0, "eurrob1", 0.9), det(PI_ROOT, "a.wav", 0.0, "eurrob1", 0.8)]
    with pytest.raises(ComparisonError, match="twice"):
        compare_detections([], twice, reference_root=HOST_ROOT, candidate_root=PI_ROOT)


def test_only_files_keeps_the_detections_of_the_named_files() -> None:
    host = [det(HOST_ROOT, "decoded/a.wav", 0.0, "eurrob1", 0.9), det(HOST_ROOT, "original/a.mp3", 0.0, "eurrob1", 0.9)]
    kept = only_files(host, audio_root=HOST_ROOT, relative_paths=["decoded/a.wav"])
    assert [d["source"] for d in kept] == [f"file:{HOST_ROOT}/decoded/a.wav"]


def test_read_jsonl_reads_a_sink_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    rows = [det(HOST_ROOT, "a.wav", 0.0, "eurrob1", 0.9), det(HOST_ROOT, "a.wav", 5.0, "comcha", 0.6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n", encoding="utf-8")
    assert read_jsonl(path) == rows
    with pytest.raises(ComparisonError, match="absent.jsonl"):
        read_jsonl(tmp_path / "absent.jsonl")


def _scores(rng: np.random.Generator, files: dict[str, int], *, n_labels: int = 4) -> dict[str, np.ndarray]:
    """Arrays as bench.pi_check.scores writes them: files -> window count."""
    out = {}
    for name, n in files.items():
        out[f"{name}|features"] = rng.normal(-40.0, 10.0, (n, 8, 5)).astype(np.float32)
        out[f"{name}|outputs"] = rng.uniform(0.0, 1.0, (n, n_labels)).astype(np.float32)
    return out


def test_equal_scores_are_bit_identical_with_zero_differences(rng: np.random.Generator) -> None:
    ref = _scores(rng, {"a.wav": 3, "b.wav": 2})
    c = compare_scores(ref, {k: v.copy() for k, v in ref.items()}, files=["a.wav", "b.wav"])
    assert (c.windows, c.outputs) == (5, 20)
    assert c.max_abs_output_diff == 0.0 and c.max_abs_log_mel_diff_db == 0.0 and c.log_mel_bit_identical
    assert c.mismatched_files == ()


def test_score_differences_are_measured_per_cell(rng: np.random.Generator) -> None:
    ref = _scores(rng, {"a.wav": 3})
    cand = {k: v.copy() for k, v in ref.items()}
    cand["a.wav|outputs"][2, 1] += np.float32(2.5e-7)
    cand["a.wav|features"][0, 3, 4] = np.nextafter(cand["a.wav|features"][0, 3, 4], np.float32(0.0))
    c = compare_scores(ref, cand, files=["a.wav"])
    expected_out = abs(float(ref["a.wav|outputs"][2, 1]) - float(cand["a.wav|outputs"][2, 1]))
    assert c.max_abs_output_diff == pytest.approx(expected_out, rel=1e-12) and 1e-7 < expected_out < 4e-7
    assert 0.0 < c.max_abs_log_mel_diff_db < 1e-5 and not c.log_mel_bit_identical


def test_files_missing_on_one_side_or_with_other_window_counts_are_mismatched(rng: np.random.Generator) -> None:
    ref = _scores(rng, {"a.wav": 3, "b.wav": 2, "c.wav": 1})
    cand = {k: v for k, v in _scores(rng, {"a.wav": 3, "b.wav": 1}).items()}
    cand["a.wav|features"], cand["a.wav|outputs"] = ref["a.wav|features"], ref["a.wav|outputs"]
    c = compare_scores(ref, cand, files=["a.wav", "b.wav", "c.wav"])
    assert c.mismatched_files == ("b.wav", "c.wav") and c.windows == 3 and c.max_abs_output_diff == 0.0


def test_nothing_compared_is_not_called_bit_identical() -> None:
    c = compare_scores({}, {}, files=[])
    assert c.windows == 0 and c.max_abs_output_diff is None and not c.log_mel_bit_identical
