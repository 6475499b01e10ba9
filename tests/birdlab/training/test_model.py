"""The CNN: TF Lite 1.15 builtins only, BatchNorm folded, normalisation inside, Keras == TFLite."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from birdlab.export.audit import audit_tflite  # noqa: E402
from birdlab.training import model as model_lib  # noqa: E402
from edge_runtime.spec import FeatureSpec  # noqa: E402

SPEC = FeatureSpec()
N_SPECIES = 5
MEAN_DB, STD_DB = -45.0, 18.0
KERAS_TFLITE_ATOL = 1e-5
NORMALISATION_ATOL = 1e-5


def _randomise_batchnorm(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial moving statistics, so that folding BatchNorm into the convolutions is really tested."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, var.shape)])


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(7)
    model = model_lib.build_model(config=model_lib.tiny(), input_shape=SPEC.input_shape, n_species=N_SPECIES,
                                  norm_mean_db=MEAN_DB, norm_std_db=STD_DB)
    _randomise_batchnorm(model, np.random.default_rng(7))
    return model


@pytest.fixture(scope="module")
def tiny_tflite(tiny_model: keras.Model) -> bytes:
    return model_lib.convert_to_tflite(tiny_model)


def _log_mel_like(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-80.0, 0.0, (n, *SPEC.input_shape)).astype(np.float32)


def _tflite_outputs(flatbuffer: bytes, windows: np.ndarray) -> np.ndarray:
    """The TF Lite model's outputs (n, n_species), one window per invoke as the device runs it."""
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for window in windows:
        interpreter.set_tensor(inp["index"], window[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(outputs)


def test_presets_respect_the_parameter_budget() -> None:
    for config, budget in ((model_lib.default(), model_lib.MAX_DEFAULT_PARAMETERS), (model_lib.tiny(), 10_000)):
        model = model_lib.build_model(config=config, input_shape=SPEC.input_shape, n_species=24,
                                      norm_mean_db=MEAN_DB, norm_std_db=STD_DB)
        assert model.count_params() <= budget, config.name
        assert model.output_shape == (None, 24)


def test_tflite_uses_only_tf_lite_1_15_builtins_with_batchnorm_folded(tiny_tflite: bytes, tmp_path: Path) -> None:
    ops = model_lib.tflite_op_names(tiny_tflite)
    assert set(ops) <= model_lib.ALLOWED_TFLITE_OPS
    # The only MUL and ADD are the input normalisation (and the mean+max head): every BatchNorm folded.
    assert ops.count("MUL") == 1
    assert ops.count("ADD") == 1 + (model_lib.tiny().time_pooling == "mean+max")
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LOGISTIC"} <= set(ops)
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tiny_tflite)
    report = audit_tflite(path, floor="1.15.0")
    assert report.ok, report.to_text()


def test_tflite_input_shape_is_static(tiny_tflite: bytes) -> None:
    detail = Interpreter(model_content=tiny_tflite).get_input_details()[0]
    assert list(detail["shape_signature"]) == [1, *SPEC.input_shape]
    assert detail["dtype"] == np.float32


def test_keras_and_tflite_agree(tiny_model: keras.Model, tiny_tflite: bytes, rng: np.random.Generator) -> None:
    batch = _log_mel_like(rng, 3)
    np.testing.assert_allclose(_tflite_outputs(tiny_tflite, batch), tiny_model.predict(batch, verbose=0),
                               atol=KERAS_TFLITE_ATOL)


def test_normalisation_is_inside_the_model(tiny_model: keras.Model, rng: np.random.Generator) -> None:
    assert model_lib.normalisation_of(tiny_model) == pytest.approx((MEAN_DB, STD_DB))
    layer = tiny_model.get_layer(model_lib.NORMALISATION_LAYER)
    x = _log_mel_like(rng, 2)
    np.testing.assert_allclose(np.asarray(layer(x)), (x - MEAN_DB) / STD_DB, atol=NORMALISATION_ATOL)


def test_window_max_reference_makes_the_model_blind_to_the_recorders_gain(rng: np.random.Generator,
                                                                          tmp_path: Path) -> None:
    keras.utils.set_random_seed(11)
    config = dataclasses.replace(model_lib.tiny(), db_reference="window_max")
    model = model_lib.build_model(config=config, input_shape=SPEC.input_shape, n_species=N_SPECIES,
                                  norm_mean_db=-30.0, norm_std_db=STD_DB)
    _randomise_batchnorm(model, rng)
    x = _log_mel_like(rng, 2)
    x[1] -= x[1].max() + 7.0  # the second window's peak at -7 dB
    shifted = x + np.array([-25.0, 12.0], np.float32)[:, None, None, None]  # a quieter and a louder recorder
    np.testing.assert_allclose(model.predict(shifted, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    layer_in = keras.Model(model.inputs, model.get_layer(model_lib.NORMALISATION_LAYER).output)
    np.testing.assert_allclose(np.asarray(layer_in.predict(x, verbose=0)), (x - x.max(axis=(1, 2, 3), keepdims=True) + 30.0) / STD_DB,
                               atol=NORMALISATION_ATOL)
    fixed = model_lib.build_model(config=model_lib.tiny(), input_shape=SPEC.input_shape, n_species=N_SPECIES,
                                  norm_mean_db=-30.0, norm_std_db=STD_DB)
    assert np.abs(fixed.predict(shifted, verbose=0) - fixed.predict(x, verbose=0)).max() > 1e-3  # 'fixed' hears it
    flatbuffer = model_lib.convert_to_tflite(model)
    assert model_lib.tflite_op_names(flatbuffer)[0] == "MAX_POOL_2D"
    np.testing.assert_allclose(_tflite_outputs(flatbuffer, shifted), model.predict(x, verbose=0),
                               atol=KERAS_TFLITE_ATOL)
    (tmp_path / "peak.tflite").write_bytes(flatbuffer)
    report = audit_tflite(tmp_path / "peak.tflite", floor="1.15.0")
    assert report.ok, report.to_text()
    with pytest.raises(ValueError, match="db_reference"):
        dataclasses.replace(model_lib.tiny(), db_reference="peak")


def test_save_load_round_trip_is_bit_identical(tiny_model: keras.Model, tmp_path: Path,
                                               rng: np.random.Generator) -> None:
    tiny_model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    x = _log_mel_like(rng, 4)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), tiny_model.predict(x, verbose=0))


def test_ops_outside_the_allowed_set_are_refused() -> None:
    inputs = keras.Input(SPEC.input_shape)
    bad = keras.Model(inputs, keras.layers.Normalization(mean=-40.0, variance=100.0)(inputs))  # lowers to SUB
    with pytest.raises(model_lib.ModelOpError, match="SUB"):
        model_lib.convert_to_tflite(bad)


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="block_filters"):
        dataclasses.replace(model_lib.default(), block_filters=())
    with pytest.raises(ValueError, match="n_species"):
        model_lib.build_model(config=model_lib.tiny(), input_shape=SPEC.input_shape, n_species=0,
                              norm_mean_db=0.0, norm_std_db=1.0)
    with pytest.raises(ValueError, match="unknown model preset"):
        model_lib.preset("huge")


def test_members_are_averaged_inside_one_tflite_graph(rng: np.random.Generator, tmp_path: Path) -> None:
    keras.utils.set_random_seed(5)
    members = 3
    config = dataclasses.replace(model_lib.tiny(), members=members)
    model = model_lib.build_model(config=config, input_shape=SPEC.input_shape, n_species=N_SPECIES,
                                  norm_mean_db=MEAN_DB, norm_std_db=STD_DB)
    _randomise_batchnorm(model, rng)
    fit_model = model_lib.member_outputs_model(model, members=members)
    assert fit_model.output_shape == (None, members * N_SPECIES) and model.output_shape == (None, N_SPECIES)
    assert fit_model.count_params() == model.count_params()  # the same weights, not copies
    assert model_lib.normalisation_of(model) == pytest.approx((MEAN_DB, STD_DB))  # one normalisation, shared
    x = _log_mel_like(rng, 4)
    each = fit_model.predict(x, verbose=0).reshape(len(x), members, N_SPECIES)
    np.testing.assert_allclose(model.predict(x, verbose=0), each.mean(axis=1), atol=1e-6)
    assert np.abs(each[:, 0] - each[:, 1]).max() > 1e-3  # independently initialised, not one network thrice
    assert model_lib.member_outputs_model(model_lib.build_model(
        config=model_lib.tiny(), input_shape=SPEC.input_shape, n_species=N_SPECIES, norm_mean_db=MEAN_DB,
        norm_std_db=STD_DB), members=1).get_layer(model_lib.OUTPUT_LAYER)  # one member: the model, names unchanged
    flatbuffer = model_lib.convert_to_tflite(model)
    ops = model_lib.tflite_op_names(flatbuffer)
    assert ops.count("LOGISTIC") == members and ops.count("MUL") == 2  # the normalisation and the 1 / members
    np.testing.assert_allclose(_tflite_outputs(flatbuffer, x), each.mean(axis=1), atol=KERAS_TFLITE_ATOL)
    (tmp_path / "members.tflite").write_bytes(flatbuffer)
    report = audit_tflite(tmp_path / "members.tflite", floor="1.15.0")
    assert report.ok, report.to_text()
    for bad in (0, model_lib.MAX_MEMBERS + 1):
        with pytest.raises(ValueError, match="members"):
            dataclasses.replace(model_lib.tiny(), members=bad)
