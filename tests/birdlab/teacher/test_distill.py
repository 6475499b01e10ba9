"""distillation_loss: known answers by hand, Keras' BCE at teacher_weight 0, save/load, and it teaches."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from birdlab.teacher.distill import DistillationLoss, distillation_loss, pack_targets  # noqa: E402

LOSS_ATOL = 1e-5


def bce(y: float, p: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def per_clip(loss, y_true, y_pred) -> np.ndarray:
    return keras.ops.convert_to_numpy(loss.call(keras.ops.convert_to_tensor(y_true),
                                                keras.ops.convert_to_tensor(y_pred)))


def test_known_answer_one_species():
    y = pack_targets(hard=[[1.0]], teacher=[[0.8]], labelled=[True])
    np.testing.assert_array_equal(y, np.array([[1.0, 0.8, 1.0]], dtype=np.float32))
    loss = distillation_loss(teacher_weight=0.25, teacher_temperature=1.0)
    expected = 0.75 * bce(1.0, 0.6) + 0.25 * bce(0.8, 0.6)
    np.testing.assert_allclose(per_clip(loss, y, [[0.6]]), [expected], atol=LOSS_ATOL)


def test_known_answer_with_temperature_and_an_unlabelled_clip():
    y = pack_targets(hard=[[1.0, 0.0], [1.0, 1.0]], teacher=[[0.8, 0.1], [0.3, 0.6]], labelled=[True, False])
    np.testing.assert_array_equal(y[1], np.array([0.0, 0.0, 0.3, 0.6, 0.0], dtype=np.float32))  # an unlabelled clip's hard targets are zeroed
    pred = np.array([[0.6, 0.2], [0.5, 0.9]], dtype=np.float32)
    t, w = 2.0, 0.4

    def soft(p: float) -> float:
        return 1 / (1 + math.exp(-math.log(p / (1 - p)) / t))

    labelled = (1 - w) * (bce(1, 0.6) + bce(0, 0.2)) / 2 + w * t * t * (bce(0.8, soft(0.6)) + bce(0.1, soft(0.2))) / 2
    unlabelled = t * t * (bce(0.3, soft(0.5)) + bce(0.6, soft(0.9))) / 2
    loss = distillation_loss(teacher_weight=w, teacher_temperature=t)
    np.testing.assert_allclose(per_clip(loss, y, pred), [labelled, unlabelled], atol=LOSS_ATOL)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.05])
def test_weight_zero_is_keras_binary_crossentropy(rng, label_smoothing):
    hard = (rng.random((16, 5)) < 0.3).astype(np.float32)
    teacher = rng.random((16, 5)).astype(np.float32)
    pred = rng.uniform(0.01, 0.99, size=(16, 5)).astype(np.float32)
    ours = distillation_loss(teacher_weight=0.0, label_smoothing=label_smoothing)(
        pack_targets(hard=hard, teacher=teacher, labelled=np.ones(16, bool)), pred)
    reference = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)(hard, pred)
    np.testing.assert_allclose(float(ours), float(reference), atol=LOSS_ATOL)


def test_weight_one_ignores_the_hard_labels(rng):
    teacher = rng.random((8, 3)).astype(np.float32)
    pred = rng.uniform(0.05, 0.95, size=(8, 3)).astype(np.float32)
    loss = distillation_loss(teacher_weight=1.0, teacher_temperature=3.0)
    a = per_clip(loss, pack_targets(hard=np.zeros((8, 3)), teacher=teacher, labelled=np.ones(8, bool)), pred)
    b = per_clip(loss, pack_targets(hard=np.ones((8, 3)), teacher=teacher, labelled=np.ones(8, bool)), pred)
    np.testing.assert_allclose(a, b, atol=LOSS_ATOL)


def test_invalid_settings_and_shapes():
    with pytest.raises(ValueError, match="teacher_weight"):
        distillation_loss(teacher_weight=1.5)
    with pytest.raises(ValueError, match="teacher_temperature"):
        distillation_loss(teacher_weight=0.5, teacher_temperature=0.0)
    with pytest.raises(ValueError, match="n_clips, n_species"):
        pack_targets(hard=np.zeros((2, 3)), teacher=np.zeros((2, 4)), labelled=[True, True])


@pytest.mark.slow
def test_a_model_compiled_with_it_saves_loads_and_learns_the_teacher(tmp_path, rng):
    """Trained on teacher targets alone (unlabelled clips), a logistic model's outputs move to the teacher's."""
    keras.utils.set_random_seed(3)
    x = rng.standard_normal((256, 4)).astype(np.float32)
    teacher = 1 / (1 + np.exp(-(x @ np.array([[2.0, -1.0], [0.0, 1.5], [-1.0, 0.0], [0.5, 0.5]]))))
    y = pack_targets(hard=np.zeros_like(teacher), teacher=teacher, labelled=np.zeros(256, bool))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=distillation_loss(teacher_weight=0.5))
    before = float(np.abs(model.predict(x, verbose=0) - teacher).mean())
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    after = float(np.abs(model.predict(x, verbose=0) - teacher).mean())
    assert after < 0.05 < before
    model.save(tmp_path / "student.keras")
    loaded = keras.saving.load_model(tmp_path / "student.keras")
    assert isinstance(loaded.loss, DistillationLoss) and loaded.loss.teacher_weight == 0.5
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
