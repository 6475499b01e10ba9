"""Decision agreement of the two frontends: one TFLite model run on librosa's and on WASM's log-mel of the same windows.

Parity (birdlab.frontend.parity) compares features; this module asks the question that matters on the device:
does the model decide the same thing on WASM features as on librosa features?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdlab.features.audio import load_audio
from birdlab.features.cache import scored_windows
from birdlab.features.log_mel import log_mel
from edge_runtime.frontend import MelFrontend
from edge_runtime.inference import TFLiteModel
from edge_runtime.spec import FeatureSpec


@dataclass(frozen=True)
class DecisionAgreement:
    """The model's decisions on librosa features against those on WASM features, window by window."""

    window_labels: tuple[str, ...]
    """'<file name>@<start s>' of each window, in row order."""
    threshold: float
    librosa_probabilities: np.ndarray
    """float32 (n_windows, n_species)."""
    wasm_probabilities: np.ndarray
    """float32 (n_windows, n_species)."""
    max_abs_db_error: float
    """Largest |dB difference| between the two feature sets over every window."""

    @property
    def librosa_decisions(self) -> np.ndarray:
        """bool (n_windows, n_species): probability >= threshold."""
        return self.librosa_probabilities >= self.threshold

    @property
    def wasm_decisions(self) -> np.ndarray:
        return self.wasm_probabilities >= self.threshold

    @property
    def n_decisions(self) -> int:
        return int(self.librosa_probabilities.size)

    @property
    def n_flipped(self) -> int:
        """Decisions (window, species) that differ between the two frontends."""
        return int(np.sum(self.librosa_decisions != self.wasm_decisions))

    @property
    def agreement(self) -> float:
        """Fraction of identical decisions (1.0 = the device decides exactly as the lab)."""
        return 1.0 - self.n_flipped / self.n_decisions if self.n_decisions else 1.0

    @property
    def max_abs_probability_diff(self) -> float:
        return float(np.max(np.abs(self.wasm_probabilities - self.librosa_probabilities), initial=0.0))

    def describe(self) -> str:
        return (f"{len(self.window_labels)} windows x {self.librosa_probabilities.shape[1]} species = "
                f"{self.n_decisions} decisions at threshold {self.threshold:g}: {self.n_flipped} differ "
                f"(agreement {100 * self.agreement:.2f} %), max |probability difference| "
                f"{self.max_abs_probability_diff:.3g}, max |dB difference| {self.max_abs_db_error:.3g}")


def decision_agreement(
    audio_paths: Sequence[str | Path], *, model_path: str | Path, wasm_path: str | Path, spec: FeatureSpec,
    threshold: float,
) -> DecisionAgreement:
    """Run the TFLite model on every 5-s window of each file, once on librosa's and once on WASM's log-mel.

    model_path: a .tflite taking float32 (1, n_mels, clip_frames, 1) dB (e.g. a bundle's model.tflite).
    """

    labels: list[str] = []
    reference: list[np.ndarray] = []
    candidate: list[np.ndarray] = []
    with MelFrontend.load(wasm_path, spec=spec) as frontend:
        for path in map(Path, audio_paths):
            windows, _ = scored_windows(load_audio(path, sample_rate_hz=spec.sample_rate_hz), spec=spec)
            for k, clip in enumerate(windows):
                labels.append(f"{path.name}@{k * spec.clip_seconds:g}s")
                reference.append(log_mel(clip, spec=spec))
                candidate.append(frontend.log_mel(clip))
    if not labels:
        raise ValueError("decision_agreement needs at least one audio file")
    librosa_db = np.stack(reference)[..., np.newaxis]
    wasm_db = np.stack(candidate)[..., np.newaxis]
    model = TFLiteModel.load(model_path)
    return DecisionAgreement(
        window_labels=tuple(labels),
        threshold=float(threshold),
        librosa_probabilities=model.predict(librosa_db),
        wasm_probabilities=model.predict(wasm_db),
        max_abs_db_error=float(np.max(np.abs(wasm_db.astype(np.float64) - librosa_db.astype(np.float64)))),
    )
