"""Compare two runs' detections: the same decisions, confidences within a tolerance.

A detection (the JSON object of edge_runtime/detection.py, one line of a `jsonl:` sink) is keyed by what
the runtime decided: the audio file (relative to the run's audio root, since the host and the emulated Pi
see the same files under different paths), the window offsets and the species. Ids, device names and
UTC times are not compared: ids hash the source path and the device id, which differ by design.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIDENCE_ATOL = 1e-6
"""Largest |confidence difference| accepted between the host and the emulated Pi for the same decision."""
OFFSET_DECIMALS = 6
"""Window offsets are compared after rounding to this many decimals of a second (microseconds)."""

DetectionKey = tuple[str, float, float, str]
"""(audio file relative to the audio root, offset_start_s, offset_end_s, ebird_code)."""


class ComparisonError(ValueError):
    """A detection list cannot be compared (a source outside the audio root, a duplicate decision)."""


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a candidate run's detections with a reference run's."""

    reference_detections: int
    """Number of detections of the reference run (the host)."""
    detections: int
    """Number of detections of the candidate run (the emulated Pi)."""
    only_reference: tuple[DetectionKey, ...]
    """Decisions the reference made and the candidate did not, sorted."""
    only_candidate: tuple[DetectionKey, ...]
    """Decisions the candidate made and the reference did not, sorted."""
    max_abs_confidence_diff: float | None
    """Largest |confidence difference| over the decisions both made; None when there is none."""
    tolerance: float = CONFIDENCE_ATOL
    """The confidence tolerance the comparison was made with."""
    worst: DetectionKey | None = field(default=None)
    """The common decision with the largest confidence difference; None when there is none."""

    @property
    def identical(self) -> bool:
        """True when both runs made exactly the same decisions."""
        return not self.only_reference and not self.only_candidate

    @property
    def confidences_within_tolerance(self) -> bool:
        """True when every common decision's confidences differ by at most `tolerance`."""
        return self.max_abs_confidence_diff is None or self.max_abs_confidence_diff <= self.tolerance

    @property
    def passed(self) -> bool:
        """Identical decisions and confidences within the tolerance."""
        return self.identical and self.confidences_within_tolerance

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (at most 20 differing decisions listed per side)."""
        return {
            "detections": self.detections,
            "reference_detections": self.reference_detections,
            "identical": self.identical,
            "max_abs_confidence_diff": self.max_abs_confidence_diff,
            "confidence_tolerance": self.tolerance,
            "confidences_within_tolerance": self.confidences_within_tolerance,
            "passed": self.passed,
            "only_reference": [list(k) for k in self.only_reference[:20]],
            "only_candidate": [list(k) for k in self.only_candidate[:20]],
            "worst": list(self.worst) if self.worst else None,
        }


def detection_key(detection: Mapping[str, Any], *, audio_root: str) -> DetectionKey:
    """The decision a detection records, with its file relative to audio_root.

    detection: a detection's JSON object with a `file:` source under audio_root (a POSIX path).
    """
    prefix = "file:" + audio_root.rstrip("/") + "/"
    source = detection["source"]
    if not source.startswith(prefix):
        raise ComparisonError(f"detection source {source!r} is not a file under {audio_root!r}")
    return (source[len(prefix):], round(float(detection["offset_start_s"]), OFFSET_DECIMALS),
            round(float(detection["offset_end_s"]), OFFSET_DECIMALS), detection["ebird_code"])


def confidences_by_key(detections: Iterable[Mapping[str, Any]], *, audio_root: str) -> dict[DetectionKey, float]:
    """{decision: confidence}; raises ComparisonError on a decision made twice."""
    out: dict[DetectionKey, float] = {}
    for d in detections:
        key = detection_key(d, audio_root=audio_root)
        if key in out:
            raise ComparisonError(f"decision {key} appears twice in one run")
        out[key] = float(d["confidence"])
    return out


def compare_detections(reference: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]], *,
                       reference_root: str, candidate_root: str, tolerance: float = CONFIDENCE_ATOL) -> Comparison:
    """Compare the candidate's detections with the reference's.

    reference, candidate: detection JSON objects; *_root: the audio root each run's sources are under.
    """
    ref = confidences_by_key(reference, audio_root=reference_root)
    cand = confidences_by_key(candidate, audio_root=candidate_root)
    common = ref.keys() & cand.keys()
    diffs = {k: abs(ref[k] - cand[k]) for k in common}
    worst = max(diffs, key=lambda k: (diffs[k], k)) if diffs else None
    max_diff = diffs[worst] if worst is not None else None
    if max_diff is not None and not math.isfinite(max_diff):
        max_diff = math.inf
    return Comparison(reference_detections=len(ref), detections=len(cand),
                      only_reference=tuple(sorted(ref.keys() - cand.keys())),
                      only_candidate=tuple(sorted(cand.keys() - ref.keys())),
                      max_abs_confidence_diff=max_diff, tolerance=tolerance, worst=worst)


def only_files(detections: Iterable[Mapping[str, Any]], *, audio_root: str, relative_paths: Iterable[str]
               ) -> list[Mapping[str, Any]]:
    """The detections whose file (relative to audio_root) is one of relative_paths."""
    wanted = set(relative_paths)
    return [d for d in detections if detection_key(d, audio_root=audio_root)[0] in wanted]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a `jsonl:` sink file, one per non-empty line (the runs create it empty first)."""
    if not path.exists():
        raise ComparisonError(f"{path}: no detections file; the run did not start (see its log beside it)")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass(frozen=True)
class ScoreComparison:
    """Raw per-window model outputs and log-mel of a candidate run against a reference run's."""

    windows: int
    """Windows compared (over every file both runs scored)."""
    outputs: int
    """Model outputs compared (windows x labels)."""
    max_abs_output_diff: float | None
    """Largest |probability difference| over every window and label; None when nothing was compared."""
    max_abs_log_mel_diff_db: float | None
    """Largest |log-mel difference| in dB over every cell; None when nothing was compared."""
    log_mel_bit_identical: bool
    """True when every log-mel cell is the same float32 bit pattern on both sides."""
    mismatched_files: tuple[str, ...]
    """Files scored by only one side, or with different window or label counts."""

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "outputs": self.outputs, "max_abs_output_diff": self.max_abs_output_diff,
                "max_abs_log_mel_diff_db": self.max_abs_log_mel_diff_db,
                "log_mel_bit_identical": self.log_mel_bit_identical, "mismatched_files": list(self.mismatched_files)}


def compare_scores(reference: Mapping[str, Any], candidate: Mapping[str, Any], *,
                   files: Iterable[str]) -> ScoreComparison:
    """Compare `bench.pi_check.scores` arrays ('<file>|features', '<file>|outputs') over `files`.

    features: float32 (n_windows, n_mels, n_frames); outputs: float32 (n_windows, n_labels).
    """
    import numpy as np

    windows = outputs = 0
    max_out: float | None = None
    max_mel: float | None = None
    bit_identical = True
    mismatched = []
    for file in files:
        keys = (f"{file}|features", f"{file}|outputs")
        if any(k not in reference or k not in candidate for k in keys):
            mismatched.append(file)
            continue
        ref_f, cand_f = np.asarray(reference[keys[0]]), np.asarray(candidate[keys[0]])
        ref_o, cand_o = np.asarray(reference[keys[1]]), np.asarray(candidate[keys[1]])
        if ref_f.shape != cand_f.shape or ref_o.shape != cand_o.shape:
            mismatched.append(file)
            continue
        windows += ref_o.shape[0]
        outputs += ref_o.size
        if ref_o.size:
            d = float(np.max(np.abs(ref_o.astype(np.float64) - cand_o.astype(np.float64))))
            max_out = d if max_out is None else max(max_out, d)
        if ref_f.size:
            d = float(np.max(np.abs(ref_f.astype(np.float64) - cand_f.astype(np.float64))))
            max_mel = d if max_mel is None else max(max_mel, d)
        bit_identical = bit_identical and ref_f.astype(np.float32).tobytes() == cand_f.astype(np.float32).tobytes()
    return ScoreComparison(windows=windows, outputs=outputs, max_abs_output_diff=max_out,
                           max_abs_log_mel_diff_db=max_mel, log_mel_bit_identical=bit_identical and windows > 0,
                           mismatched_files=tuple(mismatched))
