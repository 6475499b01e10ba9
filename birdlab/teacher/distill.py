"""The distillation loss: hard labels and teacher targets, for a student whose output is sigmoid probabilities.

Targets travel as one array, `pack_targets(hard=..., teacher=..., labelled=...)`: float32
(n_clips, 2 * n_species + 1) = [hard targets | teacher targets | 1 if the clip has hard labels].
Per clip, averaged over species:

    labelled:   (1 - w) * BCE(smooth(hard), p)  +  w * T**2 * BCE(teacher, p_T)
    unlabelled:                                       T**2 * BCE(teacher, p_T)

w = teacher_weight, T = teacher_temperature, p the student's probabilities and
p_T = sigmoid(logit(p) / T) the student softened as the teacher's targets were
(birdlab.teacher.model.to_probabilities applies the same T to the teacher). T**2 keeps the
gradient of the soft term at the same scale whatever T (Hinton et al. 2015). smooth() is Keras'
binary label smoothing, as training applies it today; teacher targets are not smoothed. With
w = 0 and every clip labelled, the loss is Keras' BinaryCrossentropy(label_smoothing=...).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PROBABILITY_EPSILON = 1e-7
"""Probabilities are clipped to [eps, 1 - eps] (Keras' own epsilon for binary cross-entropy)."""


def pack_targets(*, hard: np.ndarray, teacher: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """hard, teacher: (n_clips, n_species) in [0, 1]; labelled: bool (n_clips,) (False: clips of unlabelled audio,
    whose hard targets are ignored). Returns float32 (n_clips, 2 * n_species + 1), the y of DistillationLoss."""
    hard = np.asarray(hard, dtype=np.float32)
    teacher = np.asarray(teacher, dtype=np.float32)
    labelled = np.asarray(labelled, dtype=bool)
    if hard.shape != teacher.shape or hard.ndim != 2 or labelled.shape != (hard.shape[0],):
        raise ValueError(f"hard {hard.shape} and teacher {teacher.shape} must both be (n_clips, n_species) and "
                         f"labelled {labelled.shape} (n_clips,)")
    return np.concatenate([np.where(labelled[:, None], hard, 0.0), teacher, labelled[:, None]], axis=1).astype(
        np.float32)


def _binary_crossentropy(targets, probabilities):
    p = ops.clip(probabilities, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return -(targets * ops.log(p) + (1.0 - targets) * ops.log(1.0 - p))


@keras.saving.register_keras_serializable(package="birdlab")
class DistillationLoss(keras.losses.Loss):
    """Keras 3 loss on y_true = pack_targets(...) (n, 2 * n_species + 1) and y_pred = probabilities (n, n_species).
    Returns the per-clip loss (n,), so sample weights apply as with any Keras loss."""

    def __init__(self, *, teacher_weight: float, teacher_temperature: float = 1.0, label_smoothing: float = 0.0,
                 name: str = "distillation", reduction: str = "sum_over_batch_size", dtype=None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be in [0, 1], got {teacher_weight}")
        if not teacher_temperature > 0:
            raise ValueError(f"teacher_temperature must be > 0, got {teacher_temperature}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.teacher_weight = float(teacher_weight)
        self.teacher_temperature = float(teacher_temperature)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        n_species = ops.shape(y_pred)[-1]
        hard = y_true[..., :n_species]
        teacher = y_true[..., n_species : 2 * n_species]
        labelled = y_true[..., 2 * n_species]
        hard = hard * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        hard_loss = ops.mean(_binary_crossentropy(hard, y_pred), axis=-1)
        t = self.teacher_temperature
        if t == 1.0:
            softened = y_pred
        else:
            p = ops.clip(y_pred, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
            softened = ops.sigmoid((ops.log(p) - ops.log(1.0 - p)) / t)
        soft_loss = t * t * ops.mean(_binary_crossentropy(teacher, softened), axis=-1)
        hard_share = labelled * (1.0 - self.teacher_weight)
        soft_share = labelled * self.teacher_weight + (1.0 - labelled)
        return hard_share * hard_loss + soft_share * soft_loss

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(teacher_weight=self.teacher_weight, teacher_temperature=self.teacher_temperature,
                      label_smoothing=self.label_smoothing)
        return config


def distillation_loss(*, teacher_weight: float, teacher_temperature: float = 1.0,
                      label_smoothing: float = 0.0) -> DistillationLoss:
    """The loss to compile the student with when training on pack_targets(...) targets."""
    return DistillationLoss(teacher_weight=teacher_weight, teacher_temperature=teacher_temperature,
                            label_smoothing=label_smoothing)


@keras.saving.register_keras_serializable(package="birdlab")
class HardLabelAUC(keras.metrics.AUC):
    """Keras' AUC on the hard-label part of y_true = pack_targets(...) (n, 2 * n_species + 1), over labelled
    clips only: the same figure as AUC(y_hard, y_pred) on a run without a teacher. y_pred: (n, n_species), or
    (n, members * n_species) for a model of several members (birdlab.training.members), whose mean is scored."""

    def __init__(self, *, members: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.members = int(members)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if self.members > 1:
            y_pred = ops.mean(ops.reshape(y_pred, (-1, self.members, y_pred.shape[-1] // self.members)), axis=1)
        y_true = ops.cast(y_true, y_pred.dtype)
        n_species = y_pred.shape[-1]
        labelled = y_true[..., 2 * n_species]
        weight = labelled if sample_weight is None else ops.cast(sample_weight, y_pred.dtype) * labelled
        return super().update_state(y_true[..., :n_species], y_pred, sample_weight=weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "members": self.members}


def hard_label_pr_auc(*, name: str = "pr_auc", members: int = 1) -> HardLabelAUC:
    """The PR-AUC training metric of a distilled run (the name a run without a teacher logs)."""
    return HardLabelAUC(curve="PR", multi_label=True, name=name, members=members)
