"""The analyses of the parity notebook: the per-file table, the worst cases, and decision agreement.

`birdlab.parity.run_parity` gives the figures of every file; this module turns them into a table,
recomputes the spectrograms of the worst files, and asks the question that matters on the device:
does the model decide the same thing on WASM features as on librosa features?
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from birdlab.audio import load_audio
from birdlab.feature_cache import fit_clip
from birdlab.features import log_mel
from birdlab.parity import FileParity, ParityReport, WorstCase, parity_of_samples
from edge_runtime.spec import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd


def parity_audio_files(root: str | Path, *, max_files: int) -> list[Path]:
    """Audio of a BirdCLEF 2021 directory to compare: the soundscapes first, then train_short_audio, sorted.

    At most `max_files`; raises ValueError when the directory holds no audio.
    """
    from birdlab.audio import find_audio_files
    from birdlab.data import SHORT_AUDIO_DIR, SOUNDSCAPES_DIR

    root = Path(root)
    found = [*find_audio_files([d for d in (root / SOUNDSCAPES_DIR,) if d.is_dir()]),
             *find_audio_files([d for d in (root / SHORT_AUDIO_DIR,) if d.is_dir()])]
    if not found:
        raise ValueError(f"{root}: no audio under {SOUNDSCAPES_DIR}/ or {SHORT_AUDIO_DIR}/")
    return found[:max_files]


def parity_frame(report: ParityReport) -> pd.DataFrame:
    """One row per compared file (`file` = its name, then the figures of birdlab.parity.FileParity), worst first."""
    import pandas as pd

    columns = ["file", *(field.name for field in dataclasses.fields(FileParity) if field.name != "path")]
    rows = [{"file": Path(f.path).name, **dataclasses.asdict(f)} for f in report.files]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("max_abs_db_error", ascending=False, kind="stable").reset_index(drop=True)


def worst_cases(report: ParityReport, *, count: int, wasm_path: str | Path, spec: FeatureSpec) -> list[WorstCase]:
    """The `count` files with the largest max |dB error|, with both spectrograms recomputed.

    Each case holds librosa's and the WASM frontend's float32 dB arrays, shape (n_mels, n_frames).
    Only file paths are recomputed (in-memory signals of the report are passed over).
    """
    from edge_runtime.frontend import MelFrontend

    ranked = sorted(report.files, key=lambda f: f.max_abs_db_error, reverse=True)
    chosen = [f for f in ranked if Path(f.path).is_file()][:count]
    cases = []
    with MelFrontend.load(wasm_path, spec=spec) as frontend:
        for figures in chosen:
            samples = load_audio(figures.path, sample_rate_hz=spec.sample_rate_hz)
            parity, reference, candidate = parity_of_samples(samples, frontend=frontend, spec=spec, path=figures.path)
            cases.append(WorstCase(parity, reference, candidate))
    return cases


def clip_windows(samples: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """Consecutive model windows covering `samples`, the last zero-padded.

    samples: float32 (n,). Returns float32 (ceil(n / spec.clip_samples), spec.clip_samples).
    """
    n_windows = max(1, -(-samples.shape[0] // spec.clip_samples))
    return np.stack([fit_clip(samples[k * spec.clip_samples:], clip_samples=spec.clip_samples)
                     for k in range(n_windows)])


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
    from edge_runtime.frontend import MelFrontend
    from edge_runtime.inference import TFLiteModel

    labels: list[str] = []
    reference: list[np.ndarray] = []
    candidate: list[np.ndarray] = []
    with MelFrontend.load(wasm_path, spec=spec) as frontend:
        for path in map(Path, audio_paths):
            windows = clip_windows(load_audio(path, sample_rate_hz=spec.sample_rate_hz), spec=spec)
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
