"""Keras -> TFLite variants: static batch-1 shapes, float32 I/O for every variant, builtins only; export_run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birdlab.export.bundle_writer import BundleBuildError, export_run, load_run_dir, variants_dir
from birdlab.export.convert import VARIANTS, ExportError, convert_variant, fixed_batch_model
from edge_runtime.bundle import open_bundle
from edge_runtime.inference import TFLiteModel

BUNDLE_FILES = {"model.tflite", "labels.csv", "melspec.wasm", "feature_spec.json", "MODEL_CARD.md", "manifest.json"}


def _interpreter(flatbuffer: bytes):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    return interpreter


def test_fixed_batch_wrapper_shares_weights(small_keras_model, export_features):
    fixed = fixed_batch_model(small_keras_model)
    assert fixed.input_shape == (1, *small_keras_model.input_shape[1:])
    clip = export_features[:1]
    np.testing.assert_array_equal(fixed.predict(clip, verbose=0), small_keras_model.predict(clip, verbose=0))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_has_float32_batch1_io(small_keras_model, export_spec, export_features, variant):
    flatbuffer = convert_variant(small_keras_model, variant=variant, representative=export_features[:8])
    interpreter = _interpreter(flatbuffer)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert tuple(inp["shape"]) == (1, *export_spec.input_shape)
    assert tuple(inp["shape_signature"]) == (1, *export_spec.input_shape), "batch must be fixed, not -1"
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32
    assert tuple(out["shape"]) == (1, small_keras_model.output_shape[-1])
    weight_dtypes = {t["dtype"] for t in interpreter.get_tensor_details()}
    if variant == "f16":
        assert np.float16 in weight_dtypes
    if variant == "int8":
        assert np.int8 in weight_dtypes
    if variant == "f32":
        assert np.float16 not in weight_dtypes and np.int8 not in weight_dtypes


def test_int8_needs_a_representative_dataset(small_keras_model, export_features):
    with pytest.raises(ExportError, match="representative dataset"):
        convert_variant(small_keras_model, variant="int8")
    with pytest.raises(ExportError, match="shape"):
        convert_variant(small_keras_model, variant="int8", representative=export_features[:, :10])
    bad = export_features[:2].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ExportError, match="NaN"):
        convert_variant(small_keras_model, variant="int8", representative=bad)
    with pytest.raises(ExportError, match="one of f32, f16, int8"):
        convert_variant(small_keras_model, variant="dynamic")


@pytest.mark.slow
def test_export_run_writes_bundle_and_variants(exported_bundle, export_run_dir):
    bundle_dir = exported_bundle.bundle_dir
    assert {p.name for p in bundle_dir.iterdir()} == BUNDLE_FILES
    side = variants_dir(bundle_dir)
    assert side == exported_bundle.variants_dir
    for variant in VARIANTS:
        assert (side / f"model_{variant}.tflite").is_file() and (side / f"audit_{variant}.json").is_file()
    assert (bundle_dir / "model.tflite").read_bytes() == (side / "model_f32.tflite").read_bytes()

    bundle = open_bundle(bundle_dir)  # the device's own reader verifies every sha256
    manifest = bundle.manifest
    assert set(manifest["files"]) == BUNDLE_FILES - {"manifest.json"}
    assert manifest["variant"] == "f32" and manifest["run_id"] == export_run_dir.name
    assert manifest["model_id"] == f"{export_run_dir.name}-f32"
    assert manifest["threshold"] == load_run_dir(export_run_dir).threshold
    assert manifest["metrics"]["row_wise_micro_f1"] == json.loads((export_run_dir / "metrics.json").read_text())[
        "row_wise_micro_f1"]
    assert set(manifest["equivalence"]["variants"]) == set(VARIANTS)
    assert manifest["audit"]["ok"] and manifest["audit"]["floor"] == "1.15.0"
    assert manifest["parity"]["status"] in ("passed", "failed")
    assert manifest["birdlab_version"] and manifest["created_utc"].endswith("Z")
    assert [label.ebird_code for label in bundle.labels] == [
        line.split(",")[1] for line in (export_run_dir / "labels.csv").read_text().splitlines()[1:]]
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    for heading in ("## Data", "## Species", "## Metrics", "## Keras vs TFLite", "## Limits"):
        assert heading in card

    model = TFLiteModel.load(bundle.model_path, backend="ai_edge_litert")
    assert model.input_info.shape == (1, *bundle.spec.input_shape)
    assert model.output_info.shape == (1, len(bundle.labels))


@pytest.mark.slow
def test_export_run_ships_the_chosen_variant(tmp_path, export_run_dir, export_run_features):
    result = export_run(run_dir=export_run_dir, out_dir=tmp_path / "int8", variant="int8",
                        features=export_run_features, wasm_path=None)
    assert result.manifest["variant"] == "int8"
    assert (result.bundle_dir / "model.tflite").read_bytes() == (result.variants_dir / "model_int8.tflite").read_bytes()
    assert open_bundle(result.bundle_dir).variant == "int8"


def test_run_dir_problems_name_the_file(tmp_path, export_run_dir, export_run_features):
    with pytest.raises(BundleBuildError, match="no such run directory"):
        load_run_dir(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("labels.csv", "feature_spec.json", "metrics.json"):
        (broken / name).write_bytes((export_run_dir / name).read_bytes())
    with pytest.raises(BundleBuildError, match="model.keras is missing"):
        export_run(run_dir=broken, out_dir=tmp_path / "out", features=export_run_features)


@pytest.mark.slow
def test_a_variant_failing_the_audit_is_not_bundled(tmp_path, export_run_dir, export_run_features):
    out = tmp_path / "too_old"
    with pytest.raises(ExportError, match="fails the op audit .floor TF Lite 1.0.*LOGISTIC v1: needs TF Lite >= 1.14.0"):
        export_run(run_dir=export_run_dir, out_dir=out, floor="1.0", features=export_run_features)
    assert not (out / "manifest.json").exists()
    assert json.loads((variants_dir(out) / "audit_f32.json").read_text())["ok"] is False


def _bundle_like(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.tflite").write_bytes(b"the student")
    (bundle / "labels.csv").write_text("index,ebird_code,scientific_name,common_name\n", encoding="utf-8")
    return bundle


def test_a_birdnet_named_file_is_never_shipped(tmp_path):
    from birdlab.export.bundle_writer import refuse_teacher_files

    bundle = _bundle_like(tmp_path)
    refuse_teacher_files(bundle, teacher=None)  # a student alone passes
    (bundle / "BirdNET_GLOBAL_6K_V2.4_Labels.txt").write_text("Turdus merula_Eurasian Blackbird\n", encoding="utf-8")
    with pytest.raises(BundleBuildError, match="BirdNET_GLOBAL_6K_V2.4_Labels.txt: a teacher model must never ship"):
        refuse_teacher_files(bundle, teacher=None)
    assert not bundle.exists(), "a bundle holding a teacher file is removed"


def test_the_runs_teacher_is_refused_under_any_name(tmp_path):
    from birdlab.export.bundle_writer import refuse_teacher_files
    from edge_runtime.bundle import sha256_file

    teacher_file = tmp_path / "teacher.tflite"
    teacher_file.write_bytes(b"a raw-audio teacher with RFFT2D inside")
    record = {"model_file": "teacher.tflite", "model_sha256": sha256_file(teacher_file)}
    bundle = _bundle_like(tmp_path)
    refuse_teacher_files(bundle, teacher=record)
    (bundle / "extra").mkdir()
    (bundle / "extra" / "renamed.bin").write_bytes(teacher_file.read_bytes())
    with pytest.raises(BundleBuildError, match=r"extra/renamed.bin: .*the run's teacher teacher.tflite"):
        refuse_teacher_files(bundle, teacher=record)
