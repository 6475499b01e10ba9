"""Lab-vs-edge decision agreement: the detections the lab would make (librosa + Keras) vs those the edge runtime made.

The lab side uses the edge runtime's own windowing (`edge_runtime.windows`) and detection policy
(`edge_runtime.decisions.DetectionPolicy`), so the only differences left are the ones under test:
librosa vs the WASM frontend, and Keras vs the exported TFLite model. A decision is the key
(audio file, window start in seconds, eBird code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from birdlab.features.audio import load_audio
from birdlab.features.log_mel import log_mel
from edge_runtime.bundle import Bundle
from edge_runtime.decisions import DetectionPolicy
from edge_runtime.windows import sliding_windows, step_samples_for

if TYPE_CHECKING:
    import keras

Decision = tuple[str, float, str]
"""(absolute audio path, window start in seconds, eBird code)."""
OFFSET_DECIMALS = 3
"""Window starts are compared rounded to the millisecond."""
PREDICT_BATCH = 16


def _decision(path: str | Path, offset_s: float, ebird_code: str) -> Decision:
    return (str(Path(path).absolute()), round(float(offset_s), OFFSET_DECIMALS), ebird_code)


@dataclass(frozen=True)
class LabScores:
    """The lab's model outputs for every window of one file."""

    path: Path
    offsets_s: np.ndarray
    """float64 (n_windows,): window starts in seconds."""
    probabilities: np.ndarray
    """float32 (n_windows, n_labels)."""


def lab_scores(path: str | Path, *, model: keras.Model, bundle: Bundle, overlap_seconds: float = 0.0) -> LabScores:
    """librosa log-mel + Keras on the windows the edge runtime cuts from `path` (same step, same padding)."""
    spec = bundle.spec
    samples = load_audio(path, sample_rate_hz=spec.sample_rate_hz)
    step = step_samples_for(clip_samples=spec.clip_samples, overlap_seconds=overlap_seconds,
                            sample_rate_hz=spec.sample_rate_hz)
    windows = list(sliding_windows([samples], clip_samples=spec.clip_samples, step_samples=step))
    features = np.stack([log_mel(w.samples, spec=spec) for w in windows])[..., np.newaxis]
    probabilities = np.asarray(model.predict(features, batch_size=PREDICT_BATCH, verbose=0), dtype=np.float32)
    if probabilities.shape != (len(windows), len(bundle.labels)):
        raise ValueError(f"{path}: model output shape {probabilities.shape}, expected "
                         f"({len(windows)}, {len(bundle.labels)}) for labels.csv")
    offsets = np.array([w.start_sample / spec.sample_rate_hz for w in windows])
    return LabScores(path=Path(path), offsets_s=offsets, probabilities=probabilities)


def lab_decisions(scores: Iterable[LabScores], *, bundle: Bundle, policy: DetectionPolicy) -> set[Decision]:
    """The detections the edge runtime should make, from the lab's scores and the same policy."""
    out = set()
    for s in scores:
        for offset, row in zip(s.offsets_s, s.probabilities, strict=True):
            out |= {_decision(s.path, offset, label.ebird_code) for label, _ in policy.select(row, bundle.labels)}
    return out


def edge_decisions(detections: Iterable[Mapping]) -> set[Decision]:
    """Decision keys of detection JSON objects (from the receiver or a jsonl sink) of file: or dir: sources."""
    out = set()
    for d in detections:
        kind, _, path = str(d["source"]).partition(":")
        if kind not in ("file", "dir"):
            raise ValueError(f"detection {d.get('id')}: source {d['source']!r} is not a file")
        out.add(_decision(path, d["offset_start_s"], d["ebird_code"]))
    return out


def threshold_margin(scores: Sequence[LabScores], *, bundle: Bundle, policy: DetectionPolicy) -> float:
    """Smallest |probability - threshold| over all windows and labels: how close the lab came to a flip."""
    thresholds = policy.thresholds(bundle.labels)
    margins = [float(np.min(np.abs(s.probabilities - thresholds))) for s in scores if s.probabilities.size]
    return min(margins) if margins else float("inf")


@dataclass(frozen=True)
class LabEdgeAgreement:
    """Expected (lab) vs received (edge) decisions."""

    expected: frozenset[Decision]
    received: frozenset[Decision]

    @property
    def missing(self) -> list[Decision]:
        """Made in the lab, not by the edge runtime."""
        return sorted(self.expected - self.received)

    @property
    def unexpected(self) -> list[Decision]:
        """Made by the edge runtime, not in the lab."""
        return sorted(self.received - self.expected)

    @property
    def equal(self) -> bool:
        return self.expected == self.received

    def describe(self) -> str:
        lines = [f"detections received {len(self.received)} vs expected {len(self.expected)}: "
                 + ("identical decisions" if self.equal else
                    f"{len(self.missing)} missing, {len(self.unexpected)} unexpected")]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            for path, offset, code in items[:10]:
                lines.append(f"  {label}: {Path(path).name} @ {offset:g} s {code}")
        return "\n".join(lines)


def compare_decisions(*, expected: Iterable[Decision], received: Iterable[Decision]) -> LabEdgeAgreement:
    return LabEdgeAgreement(expected=frozenset(expected), received=frozenset(received))
