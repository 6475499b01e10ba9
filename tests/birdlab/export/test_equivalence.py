"""Equivalence figures: known answers on constructed outputs, then real variants against the Keras model."""

from __future__ import annotations

import numpy as np
import pytest

from birdlab.export.convert import export_variants
from birdlab.export.equivalence import (
    F32_MAX_ABS_DP,
    INT8_MAX_F1_DROP,
    check_equivalence,
    compare_variant,
    keras_probabilities,
)
from birdlab.metrics import row_f1_from_arrays

F16_MAX_ABS_DP = 1e-3
"""float16 weights: observed drift ~1e-6 on the small model; 1e-3 bounds it with margin."""
INT8_MAX_ABS_DP = 0.05
"""Full-integer int8 output quantisation steps are 1/256; 0.05 allows a dozen steps of drift."""


def test_row_f1_from_arrays_known_answers():  # the F1 equivalence reports (birdlab.metrics)
    truth = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0]], dtype=bool)
    probs = np.array([[0.9, 0.1, 0.1], [0.2, 0.2, 0.2], [0.9, 0.1, 0.1]], dtype=np.float32)
    # row 0: exact; row 1: nocall predicted on a nocall row; row 2: one of two -> 2*1/(2+1)
    assert row_f1_from_arrays(truth, probs, threshold=0.5) == pytest.approx((1 + 1 + 2 / 3) / 3)


def test_identical_outputs_meet_every_target(rng):
    probs = rng.random((10, 4)).astype(np.float32)
    truth = rng.random((10, 4)) > 0.6
    for variant in ("f32", "int8"):
        result = compare_variant(variant, keras_probs=probs, variant_probs=probs.copy(), truth=truth, threshold=0.5)
        assert result.max_abs_dp == 0.0 and result.top1_agreement == 1.0 and result.f1_delta == 0.0
        assert result.meets_target is True


def test_drift_above_the_f32_target_is_caught(rng):
    probs = rng.random((10, 4)).astype(np.float32) * 0.8 + 0.1
    shifted = probs + np.float32(2 * F32_MAX_ABS_DP)
    result = compare_variant("f32", keras_probs=probs, variant_probs=shifted, truth=None, threshold=0.5)
    assert result.max_abs_dp == pytest.approx(2 * F32_MAX_ABS_DP, rel=0.05)
    assert result.meets_target is False and result.f1_delta is None


def test_int8_f1_drop_target(rng):
    truth = np.eye(4, dtype=bool)[rng.integers(0, 4, size=50)]
    keras_probs = np.where(truth, 0.9, 0.1).astype(np.float32)
    worse = keras_probs.copy()
    worse[:3] = 0.1  # three rows now predict nocall: F1 drops by 3/50 = 0.06
    result = compare_variant("int8", keras_probs=keras_probs, variant_probs=worse, truth=truth, threshold=0.5)
    assert result.f1_keras == 1.0 and result.f1_delta == pytest.approx(-0.06)
    assert -result.f1_delta > INT8_MAX_F1_DROP and result.meets_target is False
    still_agree = int(np.sum(np.argmax(truth[:3], axis=1) == 0))  # an all-0.1 row's arg-max is species 0
    assert result.top1_agreement == pytest.approx((47 + still_agree) / 50)


def test_real_variants_against_keras(tmp_path, small_keras_model, export_features, export_targets):
    written = export_variants(small_keras_model, out_dir=tmp_path, representative=export_features[:16])
    heldout, truth = export_features[16:], export_targets[16:] > 0.5
    keras_probs = keras_probabilities(small_keras_model, heldout)
    report = check_equivalence(keras_probs=keras_probs, variant_paths={k: v.path for k, v in written.items()},
                               features=heldout, truth=truth, threshold=0.5)
    figures = report.by_variant()
    assert figures["f32"].max_abs_dp <= F32_MAX_ABS_DP and figures["f32"].meets_target
    assert figures["f32"].top1_agreement == 1.0
    assert figures["f16"].max_abs_dp <= F16_MAX_ABS_DP
    assert 0.0 < figures["int8"].max_abs_dp <= INT8_MAX_ABS_DP, "int8 must differ (it is quantised), but little"
    assert figures["int8"].meets_target == (-figures["int8"].f1_delta <= INT8_MAX_F1_DROP)
    assert report.n_clips == len(heldout) and "f32" in report.to_text()
    assert set(report.to_dict()["variants"]) == {"f32", "f16", "int8"}
