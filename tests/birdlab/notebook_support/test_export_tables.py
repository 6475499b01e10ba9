"""Export notebook analyses over real TFLite variants of the real (shrunk) birdlab CNN, run by LiteRT."""

from __future__ import annotations

import numpy as np
import pytest
from lab_fixtures import png_bytes

from birdlab.export import figures as export_plots
from birdlab.export.audit import audit_tflite
from birdlab.export.compat import Cell, CompatMatrix
from birdlab.export.convert import VARIANTS, export_variants
from birdlab.export.equivalence import check_equivalence, keras_probabilities, tflite_probabilities
from birdlab.notebook_support import export_tables as export_study

HELDOUT_CLIPS = 6


@pytest.fixture(scope="module")
def variants(tmp_path_factory, small_keras_model, export_features):
    written = export_variants(small_keras_model, out_dir=tmp_path_factory.mktemp("variants"), variants=VARIANTS,
                              representative=export_features)
    return {name: item.path for name, item in written.items()}


@pytest.fixture(scope="module")
def audits(variants):
    return {name: audit_tflite(path) for name, path in variants.items()}


@pytest.fixture(scope="module")
def heldout(export_features):
    return export_features[:HELDOUT_CLIPS]


def test_op_audit_frame_lists_every_op_of_every_variant(audits):
    frame = export_study.op_audit_frame(audits)
    assert list(frame.columns) == [*VARIANTS, "min runtime"]
    for variant, report in audits.items():
        for op in report.ops:
            assert frame.loc[op.name, variant] == f"v{op.version} x{op.count}"
    assert "QUANTIZE" in frame.index and frame.loc["QUANTIZE", "f32"] == "", "only int8 quantises its input"
    assert set(frame.index) == {op.name for report in audits.values() for op in report.ops}
    assert "RFFT2D" not in frame.index


def test_audit_verdicts_pass_the_floor_without_custom_or_forbidden_ops(audits):
    frame = export_study.audit_verdict_frame(audits)
    assert list(frame.index) == list(VARIANTS)
    assert frame["ok"].all() and (frame["custom ops"] == 0).all() and (frame["forbidden ops"] == "").all()
    assert (frame["floor"] == "1.15.0").all()


def test_equivalence_frame_and_variant_outputs(variants, small_keras_model, heldout, export_targets):
    keras_outputs = keras_probabilities(small_keras_model, heldout)
    report = check_equivalence(keras_probs=keras_outputs, variant_paths=variants, features=heldout,
                               truth=export_targets[:HELDOUT_CLIPS] > 0.5, threshold=0.5)
    frame = export_study.equivalence_frame(report)
    assert list(frame.index) == list(VARIANTS)
    assert frame.loc["f32", "max_abs_dp"] == report.by_variant()["f32"].max_abs_dp
    outputs = export_study.variant_outputs(variants, heldout)
    assert set(outputs) == set(VARIANTS)
    np.testing.assert_array_equal(outputs["int8"], tflite_probabilities(variants["int8"], heldout))
    fig = export_plots.plot_equivalence(keras_outputs, outputs)
    assert len(fig.axes) == len(VARIANTS) + 1
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets()[:, 1], outputs["f32"].ravel(), rtol=1e-6)
    assert png_bytes(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="outputs"):
        export_plots.plot_equivalence(keras_outputs[:2], outputs)


def test_variant_costs_measure_size_and_latency(variants, heldout):
    costs = export_study.variant_costs(variants, features=heldout, repeats=3)
    assert list(costs.index) == list(VARIANTS)
    assert list(costs.columns) == ["size_kb", "load_ms", "median_ms", "p90_ms"]
    for variant, path in variants.items():
        assert costs.loc[variant, "size_kb"] == path.stat().st_size / 1024
    assert (costs["median_ms"] > 0).all() and (costs["p90_ms"] >= costs["median_ms"]).all()
    fig = export_plots.plot_variant_costs(costs)
    assert [p.get_height() for p in fig.axes[0].patches] == list(costs["size_kb"])
    assert png_bytes(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        export_study.variant_costs(variants, features=heldout, repeats=0)


def test_compat_frame_labels_runtimes_with_their_versions():
    matrix = CompatMatrix(
        columns=("f32", "int8", "onnx"),
        rows={"ai-edge-litert": {"f32": Cell("ok", True, True, 1.5e-7, "2.3.0"), "int8": Cell("load-failed",
                                                                                                detail="bad op"),
                                 "onnx": Cell("n/a")},
              "tract": {"f32": Cell("n/a"), "int8": Cell("n/a"), "onnx": Cell("unavailable", detail="no wheel")}},
        runtime_versions={"ai-edge-litert": "2.3.0"}, n_clips=4)
    frame = export_study.compat_frame(matrix)
    assert list(frame.index) == ["ai-edge-litert (2.3.0)", "tract"]
    assert frame.loc["ai-edge-litert (2.3.0)", "f32"] == "ok, max|dp| 1.5e-07"
    assert frame.loc["ai-edge-litert (2.3.0)", "int8"] == "load-failed: bad op"
    assert frame.loc["tract", "onnx"] == "unavailable: no wheel" and frame.loc["tract", "f32"] == "n/a"


@pytest.mark.slow
def test_bundle_files_frame_matches_the_manifest(export_run_dir, export_features, export_targets, tmp_path):
    from birdlab.export.bundle_writer import export_run
    from birdlab.export.run_features import RunFeatures

    features = RunFeatures(representative=export_features, heldout=export_features[:HELDOUT_CLIPS],
                           heldout_truth=export_targets[:HELDOUT_CLIPS] > 0.5)
    result = export_run(run_dir=export_run_dir, out_dir=tmp_path / "bundle", features=features)
    frame = export_study.bundle_files_frame(result.bundle_dir)
    assert set(frame.index) == set(result.manifest["files"])
    assert frame.loc["model.tflite", "sha256"] == result.manifest["files"]["model.tflite"][:12]
    assert frame.loc["labels.csv", "size_kb"] == (result.bundle_dir / "labels.csv").stat().st_size / 1024


