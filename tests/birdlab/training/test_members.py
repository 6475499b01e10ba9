"""A model of several members: each member's own loss, averaged; PR AUC of their mean (known answers)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from birdlab.teacher.distill import distillation_loss, hard_label_pr_auc, pack_targets  # noqa: E402
from birdlab.training.members import MemberMeanAUC, MemberMeanLoss, member_mean  # noqa: E402

MEMBERS, N_SPECIES, BATCH = 3, 4, 6


@pytest.fixture
def batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hard targets (BATCH, N_SPECIES), sample weights (BATCH,), probabilities (BATCH, MEMBERS, N_SPECIES))."""
    return (rng.integers(0, 2, (BATCH, N_SPECIES)).astype(np.float32), rng.uniform(0.5, 2.0, BATCH).astype(np.float32),
            rng.uniform(0.05, 0.95, (BATCH, MEMBERS, N_SPECIES)).astype(np.float32))


def test_each_member_is_scored_on_its_own_probabilities(batch: tuple[np.ndarray, ...]) -> None:
    y, weights, p = batch
    inner = keras.losses.BinaryCrossentropy(label_smoothing=0.05)
    together = float(MemberMeanLoss(inner, members=MEMBERS)(y, p.reshape(BATCH, -1), sample_weight=weights))
    apart = [float(inner(y, p[:, k], sample_weight=weights)) for k in range(MEMBERS)]
    assert together == pytest.approx(np.mean(apart), rel=1e-5)
    # Not the loss of the averaged output: that would train one wide model, not members.
    assert abs(together - float(inner(y, p.mean(axis=1), sample_weight=weights))) > 1e-3


def test_the_distillation_loss_is_averaged_over_members_too(batch: tuple[np.ndarray, ...],
                                                            rng: np.random.Generator) -> None:
    y, weights, p = batch
    packed = pack_targets(hard=y, teacher=rng.uniform(0, 1, y.shape), labelled=np.arange(BATCH) % 3 > 0)
    inner = distillation_loss(teacher_weight=0.5, teacher_temperature=2.0, label_smoothing=0.05)
    together = float(MemberMeanLoss(inner, members=MEMBERS)(packed, p.reshape(BATCH, -1), sample_weight=weights))
    apart = [float(inner(packed, p[:, k], sample_weight=weights)) for k in range(MEMBERS)]
    assert together == pytest.approx(np.mean(apart), rel=1e-5)
    members_auc, mean_auc = hard_label_pr_auc(members=MEMBERS), hard_label_pr_auc()
    members_auc.update_state(packed, p.reshape(BATCH, -1))
    mean_auc.update_state(packed, p.mean(axis=1))
    assert float(members_auc.result()) == pytest.approx(float(mean_auc.result()), abs=1e-6)


def test_pr_auc_is_that_of_the_members_mean(batch: tuple[np.ndarray, ...]) -> None:
    y, weights, p = batch
    np.testing.assert_allclose(np.asarray(member_mean(p.reshape(BATCH, -1), members=MEMBERS)), p.mean(axis=1),
                               atol=1e-7)
    members_auc = MemberMeanAUC(members=MEMBERS, curve="PR", multi_label=True)
    plain = keras.metrics.AUC(curve="PR", multi_label=True)
    members_auc.update_state(y, p.reshape(BATCH, -1), sample_weight=weights)
    plain.update_state(y, p.mean(axis=1), sample_weight=weights)
    assert float(members_auc.result()) == pytest.approx(float(plain.result()), abs=1e-6)


def test_the_loss_survives_a_save_and_load(batch: tuple[np.ndarray, ...]) -> None:
    y, _, p = batch
    loss = MemberMeanLoss(keras.losses.BinaryCrossentropy(label_smoothing=0.05), members=MEMBERS)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, MemberMeanLoss) and again.members == MEMBERS
    assert float(again(y, p.reshape(BATCH, -1))) == pytest.approx(float(loss(y, p.reshape(BATCH, -1))), rel=1e-6)
    with pytest.raises(ValueError, match="members"):
        MemberMeanLoss(loss.inner, members=0)
