"""Training a model of several members (`ModelConfig.members`): each member fits its own loss on the same batches.

`birdlab.training.model.member_outputs_model` gives the members' probabilities side by side, y_pred float32
(batch, members * n_species), member k in columns [k * n_species, (k + 1) * n_species). `MemberMeanLoss` wraps any
per-clip Keras loss (binary cross-entropy, or the distillation loss on packed targets): per clip, the mean over
members of that loss on each member's probabilities against the same y_true, so no member sees another's output
and they stay separate models (averaging their outputs first would train one wide model, not an ensemble).
`MemberMeanAUC` logs PR AUC of the members' mean, the probabilities the saved model outputs.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def member_mean(y_pred: Any, *, members: int) -> Any:
    """(batch, members * n_species) -> (batch, n_species): the mean of the members' probabilities."""
    n_species = y_pred.shape[-1] // members
    return ops.mean(ops.reshape(y_pred, (-1, members, n_species)), axis=1)


@keras.saving.register_keras_serializable(package="birdlab")
class MemberMeanLoss(keras.losses.Loss):
    """Per clip (batch,): mean over members of `inner`'s per-clip loss on that member's probabilities; sample
    weights and the reduction apply to the result as with any Keras loss."""

    def __init__(self, inner: keras.losses.Loss | dict, *, members: int, name: str = "member_mean_loss",
                 reduction: str = "sum_over_batch_size", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.inner = inner if isinstance(inner, keras.losses.Loss) else keras.losses.deserialize(inner)
        self.members = int(members)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_pred = ops.convert_to_tensor(y_pred)
        n_species = y_pred.shape[-1] // self.members
        each = [self.inner.call(y_true, y_pred[..., k * n_species:(k + 1) * n_species]) for k in range(self.members)]
        return ops.mean(ops.stack(each, axis=0), axis=0)

    def get_config(self) -> dict:
        return {**super().get_config(), "inner": keras.losses.serialize(self.inner), "members": self.members}


@keras.saving.register_keras_serializable(package="birdlab")
class MemberMeanAUC(keras.metrics.AUC):
    """Keras' AUC of the members' mean probabilities (what the saved model outputs) against y_true (batch, n)."""

    def __init__(self, *, members: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.members = int(members)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return super().update_state(y_true, member_mean(ops.convert_to_tensor(y_pred), members=self.members),
                                    sample_weight=sample_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "members": self.members}


__all__ = ["MemberMeanAUC", "MemberMeanLoss", "member_mean"]
