"""The op audit against real converter output (TF 2.21): what passes the TF Lite 1.15 floor and what does not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from birdlab.export import audit as tflite_audit
from birdlab.export.audit import AuditError, audit_tflite, min_runtime_for_op, parse_runtime_version
from birdlab.export.convert import convert_variant

# What TF 2.21's converter emits for dynamic-range quantisation of Conv2D + Dense (measured, not assumed):
DYNAMIC_RANGE_FULLY_CONNECTED_VERSION = 12
DYNAMIC_RANGE_MIN_RUNTIME = "2.17.0"


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


def _convert_function(tf, fn, shape, *, ops, allow_custom=False) -> bytes:
    concrete = tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete.get_concrete_function()], concrete)
    converter.target_spec.supported_ops = ops
    converter.allow_custom_ops = allow_custom
    return converter.convert()


def test_table_names_are_tflite_builtins_and_versions_parse():
    from ai_edge_litert import schema_py_generated as schema

    builtins = {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")}
    names = {name for name, _ in tflite_audit.OP_MIN_RUNTIME}
    assert names <= builtins, f"table names not in the schema: {sorted(names - builtins)}"
    for runtime in tflite_audit.OP_MIN_RUNTIME.values():
        assert len(parse_runtime_version(runtime)) == 3


def test_table_known_answers():
    assert min_runtime_for_op("CONV_2D", 1) == "1.5.0"
    assert min_runtime_for_op("FULLY_CONNECTED", 12) == "2.17.0"
    assert min_runtime_for_op("RFFT2D", 1) == "2.5.0"
    assert min_runtime_for_op("BROADCAST_TO", 1) is None
    assert min_runtime_for_op("CONV_2D", 99) is None
    assert parse_runtime_version("1.15") == (1, 15, 0) < parse_runtime_version("1.15.1")
    assert parse_runtime_version("2.4.0") > parse_runtime_version("1.15.0")


@pytest.mark.parametrize("variant", ["f32", "f16", "int8"])
def test_exported_variants_pass_the_1_15_floor(tmp_path, small_keras_model, export_features, variant):
    path = tmp_path / f"{variant}.tflite"
    path.write_bytes(convert_variant(small_keras_model, variant=variant, representative=export_features[:8]))
    report = audit_tflite(path)
    assert report.ok, report.to_text()
    names = {op.name for op in report.ops}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LOGISTIC"} <= names
    assert parse_runtime_version(report.table_min_runtime) <= parse_runtime_version("1.15.0")
    assert report.metadata_min_runtime is not None
    assert sum(op.count for op in report.ops) >= len(report.ops)


def test_dynamic_range_quantisation_fails_the_floor(tmp_path, tf, small_keras_model):
    from birdlab.export.convert import fixed_batch_model

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed_batch_model(small_keras_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative dataset: dynamic range
    path = tmp_path / "dynamic_range.tflite"
    path.write_bytes(converter.convert())

    report = audit_tflite(path)
    assert not report.ok
    fully_connected = [op for op in report.ops if op.name == "FULLY_CONNECTED"]
    assert [op.version for op in fully_connected] == [DYNAMIC_RANGE_FULLY_CONNECTED_VERSION]
    assert fully_connected[0].min_runtime == DYNAMIC_RANGE_MIN_RUNTIME
    assert report.metadata_min_runtime == DYNAMIC_RANGE_MIN_RUNTIME
    assert report.table_min_runtime == DYNAMIC_RANGE_MIN_RUNTIME
    assert any("FULLY_CONNECTED v12" in p and "2.17.0" in p for p in report.problems)
    # A floor at the model's own minimum accepts it: the floor flag is honoured.
    assert audit_tflite(path, floor=DYNAMIC_RANGE_MIN_RUNTIME).ok


def test_stft_inside_the_model_is_refused(tmp_path, tf):
    flatbuffer = _convert_function(tf, lambda x: tf.abs(tf.signal.stft(x, 256, 128)), (1, 2048),
                                   ops=[tf.lite.OpsSet.TFLITE_BUILTINS])
    path = tmp_path / "stft.tflite"
    path.write_bytes(flatbuffer)
    report = audit_tflite(path, floor="9.0.0")  # refused whatever the floor
    assert not report.ok
    assert any(p.startswith("RFFT2D v1") for p in report.problems), report.problems


def test_flex_and_custom_ops_are_refused(tmp_path, tf):
    flex = tmp_path / "flex.tflite"
    flex.write_bytes(_convert_function(tf, tf.math.erf, (1, 8),
                                       ops=[tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]))
    report = audit_tflite(flex, floor="9.0.0")
    assert [op.name for op in report.ops] == ["FlexErf"] and report.ops[0].is_custom
    assert "Flex op" in report.problems[0]

    custom = tmp_path / "custom.tflite"
    custom.write_bytes(_convert_function(tf, tf.math.bessel_i0e, (1, 8), ops=[tf.lite.OpsSet.TFLITE_BUILTINS],
                                         allow_custom=True))
    report = audit_tflite(custom)
    assert not report.ok and "custom op" in report.problems[0] and report.ops[0].name == "BesselI0e"


def test_not_a_model_names_the_file(tmp_path):
    bogus = tmp_path / "labels.csv"
    bogus.write_text("index,ebird_code\n", encoding="utf-8")
    with pytest.raises(AuditError, match="labels.csv: not a TFLite flatbuffer"):
        audit_tflite(bogus)
    with pytest.raises(AuditError, match="no such file"):
        audit_tflite(tmp_path / "missing.tflite")
    with pytest.raises(AuditError, match="--floor"):
        audit_tflite(bogus, floor="one.fifteen")


def test_cli_audits_without_tensorflow(tmp_path, small_keras_model):
    path = tmp_path / "f32.tflite"
    path.write_bytes(convert_variant(small_keras_model, variant="f32"))
    code = (
        "import sys\n"
        "from birdlab.cli import main\n"
        f"rc = main(['audit', {str(path)!r}, '--json', {str(tmp_path / 'audit.json')!r}])\n"
        "assert 'tensorflow' not in sys.modules, 'the audit imported tensorflow'\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "PASS: floor TF Lite 1.15.0" in done.stdout
    assert (tmp_path / "audit.json").is_file()
    failing = subprocess.run([sys.executable, "-m", "birdlab", "audit", str(path), "--floor", "1.0"],
                             capture_output=True, text=True, timeout=120)
    assert failing.returncode == 1 and "FAIL: floor TF Lite 1.0" in failing.stdout
