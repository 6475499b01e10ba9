"""Equivalence: how far each TFLite variant's outputs drift from the Keras model's.

On held-out features, for every variant: max |dp| (largest absolute difference of a
probability over clips and species), mean |dp|, top-1 agreement (same arg-max species)
and the row-wise micro F1 (BirdCLEF 2021's metric, `birdlab.training.evaluate`) of Keras and of
the variant at the run's threshold, with their difference. Targets:

- f32: max |dp| <= F32_MAX_ABS_DP (1e-5): the conversion must not change the maths.
- int8: F1 drop <= INT8_MAX_F1_DROP (0.02): quantisation may move probabilities, not scores.
- f16: reported; weights rounded to float16 give drifts around 1e-3, no target.

The TFLite side runs through `edge_runtime.inference.TFLiteModel` with LiteRT, batch 1:
the same code path as the device.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab.metrics import row_f1_from_arrays

if TYPE_CHECKING:
    import keras

F32_MAX_ABS_DP = 1e-5
"""Target: largest |p_f32 - p_keras| over held-out clips and species."""
INT8_MAX_F1_DROP = 0.02
"""Target: row-wise F1 of Keras minus row-wise F1 of the int8 variant."""


@dataclass(frozen=True)
class VariantEquivalence:
    """One variant against Keras on the same held-out clips."""

    variant: str
    n_clips: int
    max_abs_dp: float
    mean_abs_dp: float
    top1_agreement: float
    """Fraction of clips whose highest-probability species is the same as Keras'."""
    f1_keras: float | None
    f1_variant: float | None
    f1_delta: float | None
    """f1_variant - f1_keras (negative = the variant scores lower); None without labels."""
    target: str
    """The target this variant is held to, in words ('' when none)."""
    meets_target: bool | None
    """None when the variant has no target."""


@dataclass(frozen=True)
class EquivalenceReport:
    """Every variant against Keras; `ok` when every target is met."""

    threshold: float
    n_clips: int
    variants: tuple[VariantEquivalence, ...]

    @property
    def ok(self) -> bool:
        return all(v.meets_target is not False for v in self.variants)

    def by_variant(self) -> dict[str, VariantEquivalence]:
        return {v.variant: v for v in self.variants}

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "n_clips": self.n_clips, "ok": self.ok,
                "targets": {"f32_max_abs_dp": F32_MAX_ABS_DP, "int8_max_f1_drop": INT8_MAX_F1_DROP},
                "variants": {v.variant: asdict(v) for v in self.variants}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_text(self) -> str:
        lines = [f"Keras vs TFLite on {self.n_clips} held-out clips (threshold {self.threshold:.2f})",
                 f"{'variant':<8} {'max|dp|':>10} {'mean|dp|':>10} {'top-1':>7} {'F1 keras':>9} {'F1 tflite':>9} "
                 f"{'dF1':>8}  target"]

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        for v in self.variants:
            verdict = "" if v.meets_target is None else ("met" if v.meets_target else "MISSED")
            lines.append(f"{v.variant:<8} {v.max_abs_dp:>10.2e} {v.mean_abs_dp:>10.2e} {v.top1_agreement:>7.3f} "
                         f"{fmt(v.f1_keras, '9.4f'):>9} {fmt(v.f1_variant, '9.4f'):>9} {fmt(v.f1_delta, '+8.4f'):>8}"
                         f"  {v.target} {verdict}".rstrip())
        return "\n".join(lines)


def keras_probabilities(model: keras.Model, features: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Keras outputs: features float32 (n, n_mels, frames, 1) -> float32 (n, n_species)."""
    return np.asarray(model.predict(np.asarray(features, dtype=np.float32), batch_size=batch_size, verbose=0),
                      dtype=np.float32)


def tflite_probabilities(model_path: Path, features: np.ndarray) -> np.ndarray:
    """LiteRT outputs, one clip at a time: features float32 (n, n_mels, frames, 1) -> float32 (n, n_species)."""
    from edge_runtime.inference import TFLiteModel

    model = TFLiteModel.load(model_path, num_threads=1, backend="ai_edge_litert")
    return np.concatenate([model.predict(clip[np.newaxis]) for clip in np.asarray(features, dtype=np.float32)])


def compare_variant(variant: str, *, keras_probs: np.ndarray, variant_probs: np.ndarray,
                    truth: np.ndarray | None, threshold: float) -> VariantEquivalence:
    """Figures of one variant; keras_probs and variant_probs float32 (n, n_species), truth bool (n, n_species)."""
    if keras_probs.shape != variant_probs.shape:
        raise ValueError(f"variant {variant}: outputs {variant_probs.shape} vs Keras {keras_probs.shape}")
    diff = np.abs(variant_probs.astype(np.float64) - keras_probs.astype(np.float64))
    top1 = float(np.mean(np.argmax(variant_probs, axis=1) == np.argmax(keras_probs, axis=1)))
    f1_keras = f1_variant = f1_delta = None
    if truth is not None and len(truth):
        f1_keras = row_f1_from_arrays(truth, keras_probs, threshold=threshold)
        f1_variant = row_f1_from_arrays(truth, variant_probs, threshold=threshold)
        f1_delta = f1_variant - f1_keras
    max_abs = float(diff.max()) if diff.size else 0.0
    if variant == "f32":
        target, meets = f"max|dp| <= {F32_MAX_ABS_DP:g}", max_abs <= F32_MAX_ABS_DP
    elif variant == "int8" and f1_delta is not None:
        target, meets = f"F1 drop <= {INT8_MAX_F1_DROP:g}", -f1_delta <= INT8_MAX_F1_DROP
    else:
        target, meets = "", None
    return VariantEquivalence(variant=variant, n_clips=int(keras_probs.shape[0]), max_abs_dp=max_abs,
                              mean_abs_dp=float(diff.mean()) if diff.size else 0.0, top1_agreement=top1,
                              f1_keras=f1_keras, f1_variant=f1_variant, f1_delta=f1_delta, target=target,
                              meets_target=meets)


def check_equivalence(*, keras_probs: np.ndarray, variant_paths: dict[str, Path], features: np.ndarray,
                      truth: np.ndarray | None, threshold: float) -> EquivalenceReport:
    """Run each variant file on `features` with LiteRT and compare with `keras_probs`.

    features: float32 (n, n_mels, frames, 1); keras_probs: float32 (n, n_species), the
    Keras model's outputs on them; truth: bool (n, n_species) or None (no F1 figures).
    """
    features = np.asarray(features, dtype=np.float32)
    results = []
    for variant, path in variant_paths.items():
        probs = tflite_probabilities(path, features)
        results.append(compare_variant(variant, keras_probs=keras_probs, variant_probs=probs, truth=truth,
                                       threshold=threshold))
    return EquivalenceReport(threshold=float(threshold), n_clips=int(features.shape[0]), variants=tuple(results))
