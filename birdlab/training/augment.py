"""Training-only augmentations of log-mel batches, in TensorFlow, driven by stateless seeds.

Everything here acts on the model input (dB log-mel, shape (batch, n_mels, frames, 1)) in
the tf.data pipeline; none of it is part of the model, so evaluation and the exported
TFLite graph never see it. Mixing (background noise, mixup) happens in the power domain:
10 ** (dB / 10), add, back to dB, then the clip is clipped to `top_db` below its maximum
as power_to_db does. Randomness comes from a (2,) seed per batch: same seed -> same batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from birdlab.training.config_fields import dataclass_from_dict

if TYPE_CHECKING:
    import tensorflow as tf

AUGMENTATIONS = ("gain", "background_noise", "mixup", "time_mask", "freq_mask")


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run during training, and how strong; all are off at evaluation."""

    enabled: bool = True
    """Master switch: False trains on the clean features."""
    gain_db: float = 6.0
    """Random gain, uniform in [-gain_db, +gain_db] dB (a shift of the whole clip); 0 = off."""
    noise_probability: float = 0.5
    """Chance that a clip gets a background (nocall soundscape row or synthetic noise) mixed in."""
    noise_gain_db: tuple[float, float] = (-12.0, 3.0)
    """Gain applied to the background clip before mixing, uniform in this range, dB."""
    mixup_probability: float = 0.4
    """Chance that a clip is mixed with another clip of the batch (labels: the union)."""
    mixup_gain_db: tuple[float, float] = (-9.0, 0.0)
    """Gain of the second clip relative to the first, uniform in this range, dB."""
    time_masks: int = 2
    """Number of time masks per clip (SpecAugment); 0 = off."""
    time_mask_max_frames: int = 30
    """Longest time mask in frames."""
    freq_masks: int = 2
    """Number of frequency masks per clip; 0 = off."""
    freq_mask_max_bins: int = 6
    """Widest frequency mask in mel bins."""

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise ValueError(f"augment config field '{field}': {what} (got {getattr(self, field)!r})")

        need(self.gain_db >= 0, "gain_db", "must be >= 0")
        for name in ("noise_probability", "mixup_probability"):
            need(0.0 <= getattr(self, name) <= 1.0, name, "must be in [0, 1]")
        for name in ("noise_gain_db", "mixup_gain_db"):
            low, high = getattr(self, name)
            need(low <= high, name, "must be (low, high) with low <= high")
        for name in ("time_masks", "time_mask_max_frames", "freq_masks", "freq_mask_max_bins"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name, "must be an integer >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "augment config") -> AugmentConfig:
        return dataclass_from_dict(cls, data, source=source, what="augment", tuple_fields=("noise_gain_db", "mixup_gain_db"))

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(enabled=False)


def _db_to_power(db: tf.Tensor) -> tf.Tensor:
    import tensorflow as tf

    return tf.pow(10.0, db / 10.0)


def _power_to_db(power: tf.Tensor, *, amin: float) -> tf.Tensor:
    import tensorflow as tf

    return 10.0 * tf.math.log(tf.maximum(power, amin)) / tf.math.log(10.0)


def _clip_top_db(db: tf.Tensor, *, top_db: float | None) -> tf.Tensor:
    import tensorflow as tf

    if top_db is None:
        return db
    peak = tf.reduce_max(db, axis=[1, 2, 3], keepdims=True)
    return tf.maximum(db, peak - top_db)


def _band_masks(seed: tf.Tensor, *, batch: int, length: int, count: int, max_width: int) -> tf.Tensor:
    """Bool (batch, length): True inside any of `count` random bands of width 0..max_width."""
    import tensorflow as tf

    if count == 0 or max_width == 0:
        return tf.zeros((batch, length), dtype=tf.bool)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    widths = tf.random.stateless_uniform((batch, count, 1), seeds[0], minval=0, maxval=max_width + 1, dtype=tf.int32)
    starts = tf.random.stateless_uniform((batch, count, 1), seeds[1], minval=0, maxval=length, dtype=tf.int32)
    position = tf.range(length, dtype=tf.int32)[None, None, :]
    inside = (position >= starts) & (position < starts + widths)
    return tf.reduce_any(inside, axis=1)


def augment_batch(
    features: tf.Tensor,
    targets: tf.Tensor,
    weights: tf.Tensor,
    *,
    seed: tf.Tensor,
    config: AugmentConfig,
    noise_bank: tf.Tensor | None,
    top_db: float | None,
    amin: float,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Augment one batch; returns (features, targets, weights) with the same shapes.

    features: float32 dB, (batch, n_mels, frames, 1). targets: float32 (batch, n_species).
    weights: float32 (batch,). seed: int (2,), the batch's stateless seed.
    noise_bank: float32 dB, (n_noise, n_mels, frames, 1) background clips, or None.
    """
    import tensorflow as tf

    if not config.enabled:
        return features, targets, weights
    shape = tf.shape(features)
    batch = shape[0]
    n_mels, frames = features.shape[1], features.shape[2]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 8)
    x = features

    if config.gain_db > 0:
        gain = tf.random.stateless_uniform((batch, 1, 1, 1), seeds[0], -config.gain_db, config.gain_db)
        x = x + gain

    if noise_bank is not None and config.noise_probability > 0:
        pick = tf.random.stateless_uniform((batch,), seeds[1], 0, tf.shape(noise_bank)[0], dtype=tf.int32)
        noise_db = tf.gather(noise_bank, pick)
        low, high = config.noise_gain_db
        noise_db = noise_db + tf.random.stateless_uniform((batch, 1, 1, 1), seeds[2], low, high)
        use = tf.random.stateless_uniform((batch, 1, 1, 1), seeds[3]) < config.noise_probability
        mixed = _power_to_db(_db_to_power(x) + _db_to_power(noise_db), amin=amin)
        x = tf.where(use, mixed, x)

    if config.mixup_probability > 0:
        partner = tf.random.experimental.stateless_shuffle(tf.range(batch), seeds[4])
        low, high = config.mixup_gain_db
        gain = tf.random.stateless_uniform((batch, 1, 1, 1), seeds[5], low, high)
        use = tf.random.stateless_uniform((batch,), tf.random.experimental.stateless_fold_in(seeds[5], 1))
        use = use < config.mixup_probability
        mixed = _power_to_db(_db_to_power(x) + _db_to_power(tf.gather(x, partner) + gain), amin=amin)
        x = tf.where(use[:, None, None, None], mixed, x)
        targets = tf.where(use[:, None], tf.maximum(targets, tf.gather(targets, partner)), targets)
        weights = tf.where(use, tf.maximum(weights, tf.gather(weights, partner)), weights)

    x = _clip_top_db(x, top_db=top_db)

    if config.time_masks or config.freq_masks:
        floor = tf.reduce_min(x, axis=[1, 2, 3], keepdims=True)
        time_mask = _band_masks(seeds[6], batch=batch, length=frames, count=config.time_masks,
                                max_width=config.time_mask_max_frames)
        freq_mask = _band_masks(seeds[7], batch=batch, length=n_mels, count=config.freq_masks,
                                max_width=config.freq_mask_max_bins)
        masked = time_mask[:, None, :, None] | freq_mask[:, :, None, None]
        x = tf.where(masked, floor, x)

    return x, targets, weights
