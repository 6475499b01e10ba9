"""Parity of the WASM log-mel frontend against librosa, in numbers, over real audio files.

Each file is loaded once (`birdlab.features.audio.load_audio`), featurised by `birdlab.features.log_mel.log_mel`
(librosa, the reference) and by `edge_runtime.frontend.MelFrontend` (melspec.wasm under wasmtime),
and the two spectrograms are compared cell by cell. `run_parity` writes DIR/parity.json and
DIR/report.html (plots of the worst files, see birdlab.frontend.parity_report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from birdlab.features.log_mel import log_mel
from edge_runtime.spec import FeatureSpec

MEL_DB_ATOL = 1e-4
"""Largest |dB difference| between librosa and the WASM frontend that counts as parity."""
PARITY_JSON = "parity.json"
REPORT_HTML = "report.html"
REPORT_WORST_FILES = 3
"""How many of the worst files get plots in report.html."""


@dataclass(frozen=True)
class FileParity:
    """How far the WASM spectrogram of one file is from librosa's."""

    path: str
    seconds: float
    frames: int
    max_abs_db_error: float
    mean_abs_db_error: float
    p99_abs_db_error: float
    max_rel_power_error: float
    """max |P_wasm - P_librosa| / P_librosa with P = 10 ** (dB / 10), in float64."""
    fraction_bit_identical: float
    """Fraction of the (n_mels x frames) cells whose float32 values are bit-for-bit equal."""


def compare_log_mel(reference_db: np.ndarray, candidate_db: np.ndarray) -> dict[str, float]:
    """Error figures of candidate against reference, both float32 dB of shape (n_mels, n_frames).

    Returns max/mean/p99 |dB error|, the largest relative power error and the bit-identical fraction.
    """
    if reference_db.shape != candidate_db.shape:
        raise ValueError(f"shape mismatch: reference {reference_db.shape}, candidate {candidate_db.shape}")
    ref = np.asarray(reference_db, dtype=np.float32)
    cand = np.asarray(candidate_db, dtype=np.float32)
    err = np.abs(cand.astype(np.float64) - ref.astype(np.float64))
    ref_power = np.power(10.0, ref.astype(np.float64) / 10.0)
    cand_power = np.power(10.0, cand.astype(np.float64) / 10.0)
    rel = np.abs(cand_power - ref_power) / ref_power
    return {
        "max_abs_db_error": float(err.max()),
        "mean_abs_db_error": float(err.mean()),
        "p99_abs_db_error": float(np.percentile(err, 99)),
        "max_rel_power_error": float(rel.max()),
        "fraction_bit_identical": float(np.mean(ref.view(np.uint32) == cand.view(np.uint32))),
    }


@dataclass
class WorstCase:
    """The spectrograms kept for the report (only the worst few files)."""

    parity: FileParity
    reference_db: np.ndarray
    candidate_db: np.ndarray


@dataclass(frozen=True)
class ParityReport:
    """Every file's figures, the skipped files, and what produced them."""

    files: tuple[FileParity, ...]
    tolerance_db: float
    spec: FeatureSpec
    wasm_path: str
    wasm_sha256: str
    skipped: tuple[tuple[str, str], ...] = ()
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def worst(self) -> FileParity | None:
        """The file with the largest max_abs_db_error (None when no file was compared)."""
        return max(self.files, key=lambda f: f.max_abs_db_error, default=None)

    @property
    def passed(self) -> bool:
        """True when at least one file was compared and every max |dB error| is within tolerance."""
        return bool(self.files) and all(f.max_abs_db_error <= self.tolerance_db for f in self.files)

    def summary(self) -> dict[str, Any]:
        worst = self.worst
        frames = sum(f.frames for f in self.files)
        return {
            "n_files": len(self.files),
            "n_skipped": len(self.skipped),
            "total_seconds": round(sum(f.seconds for f in self.files), 3),
            "tolerance_db": self.tolerance_db,
            "passed": self.passed,
            "worst_file": worst.path if worst else None,
            "max_abs_db_error": worst.max_abs_db_error if worst else None,
            "max_rel_power_error": max((f.max_rel_power_error for f in self.files), default=None),
            "fraction_bit_identical": (sum(f.fraction_bit_identical * f.frames for f in self.files) / frames
                                       if frames else None),
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "files": [asdict(f) for f in self.files],
            "summary": self.summary(),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "spec": self.spec.to_dict(),
            "wasm": {"path": self.wasm_path, "sha256": self.wasm_sha256},
            "versions": self.versions,
        }

    def describe(self) -> str:
        """A few lines for the terminal."""
        s = self.summary()
        if not self.files:
            return f"parity: no file could be compared ({s['n_skipped']} skipped)"
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"parity {verdict}: {s['n_files']} file(s), {s['total_seconds']} s of audio, {s['n_skipped']} skipped\n"
            f"  max |dB error| {s['max_abs_db_error']:.3g} (tolerance {self.tolerance_db:g}) in {s['worst_file']}\n"
            f"  max relative power error {s['max_rel_power_error']:.3g}, "
            f"bit-identical cells {100 * s['fraction_bit_identical']:.1f} %"
        )


def parity_of_samples(
    samples: np.ndarray, *, frontend, spec: FeatureSpec, path: str = "<samples>"
) -> tuple[FileParity, np.ndarray, np.ndarray]:
    """Compare librosa and the frontend on one signal: float32 (n,) at spec.sample_rate_hz.

    Returns (figures, librosa dB, wasm dB), the arrays of shape (n_mels, n_frames).
    """

    reference = log_mel(samples, spec=spec)
    candidate = frontend.log_mel(samples)
    figures = compare_log_mel(reference, candidate)
    parity = FileParity(path=path, seconds=round(samples.size / spec.sample_rate_hz, 6),
                        frames=int(reference.shape[1]), **figures)
    return parity, reference, candidate


