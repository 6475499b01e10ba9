"""`python -m birdlab train`: features -> tf.data -> the CNN under a tf.distribute strategy -> a run directory.

The run directory (runs/NAME/) holds everything needed to reproduce, compare and export
the run; its files and formats are birdlab.training.run_dir's (RunDir).

Same seed -> same split, same crops, same batches and augmentations, same weights and the
same metrics on CPU (tf.keras.utils.set_random_seed + enable_op_determinism).

Memory stays flat as the dataset grows: the clip features stay in the feature cache and
the input pipeline shuffles clip indices and reads each batch's rows from disk
(birdlab.features.store.ClipStore); the normalisation statistics are streamed; only the
labels (n x n_species) and a noise bank of at most MAX_NOISE_CLIPS clips are in memory.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab import __version__
from birdlab.data.birdclef2021 import DataDirs, as_roots
from birdlab.errors import UserError
from birdlab.features.cache import FeatureCache
from birdlab.features.store import ClipStore
from birdlab.provenance import git_state, package_versions
from birdlab.training.augment import augment_batch
from birdlab.training.config import TrainConfig
from birdlab.training.dataset import (
    LabelledClips,
    TrainingData,
    prepare_training_data,
    with_negatives,
)
from birdlab.training.evaluate import describe_metrics, evaluate_run
from birdlab.training.model import build_model, member_outputs_model
from birdlab.training.run_dir import RunDir
from birdlab.training.teacher_targets import (
    RunTeacherTargets,
    distillation_loss_and_metric,
    packed_training_clips,
    packed_validation_clips,
    prepare_teacher_targets,
)
from edge_runtime.spec import FeatureSpec

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

MAX_NOISE_CLIPS = 256
"""The background-noise bank is a constant of the input pipeline: keep it small."""


@dataclass(frozen=True)
class TrainResult:
    """What `train` returns: the run directory and its headline figures."""

    run_dir: Path
    metrics: dict[str, Any]
    epochs_run: int
    train_seconds: float
    n_train_clips: int

    def describe(self) -> str:
        """Where the run went and how long it took, then the headline, clip and soundscape figures with baselines."""
        return (f"{self.run_dir}: {self.epochs_run} epochs on {self.n_train_clips} clips in {self.train_seconds:.0f} s\n"
                + describe_metrics(self.metrics))


def time_budget_callback(max_seconds: float) -> keras.callbacks.Callback:
    """Stops training after the epoch when another epoch as long as the longest so far would pass max_seconds."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.stopped = False

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.start = self.epoch_start = time.perf_counter()
            self.longest = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch_start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            self.longest = max(self.longest, now - self.epoch_start)
            if now - self.start + self.longest > max_seconds:
                self.stopped = True
                self.model.stop_training = True

    return TimeBudget()


def resolve_strategy_name(name: str = "auto") -> str:
    """'auto' -> 'multi_worker' when TF_CONFIG is set, 'mirrored' with more than one GPU, else 'default'."""
    if name != "auto":
        return name
    if os.environ.get("TF_CONFIG"):
        return "multi_worker"
    import tensorflow as tf

    return "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"


def select_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The tf.distribute strategy for `name` (see TrainConfig.strategy).

    'auto': MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy when more
    than one GPU is visible, else the default strategy. 'mirrored' mirrors over every GPU,
    or over every logical CPU device when there is no GPU.
    """
    import tensorflow as tf

    name = resolve_strategy_name(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy(devices=[d.name for d in gpus])
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}; choose auto, default, mirrored or multi_worker")


def _dataset_options() -> tf.data.Options:
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _read_batches(indices: tf.data.Dataset, clips: LabelledClips, *, with_weights: bool) -> tf.data.Dataset:
    """Batches of clip indices (int64 (b,)) -> (features (b, n_mels, frames, 1), targets (b, n_species)[, weights]).

    The features are read from `clips.features` (a ClipStore) batch by batch, in order.
    """
    import tensorflow as tf

    store: ClipStore = clips.features
    n_mels, frames = store.clip_shape
    targets, weights = tf.constant(clips.targets), tf.constant(clips.weights)

    def read(batch: np.ndarray) -> np.ndarray:
        return store.read(batch)

    @tf.autograph.experimental.do_not_convert
    def load(batch: tf.Tensor) -> tuple[tf.Tensor, ...]:
        features = tf.numpy_function(read, [batch], tf.float32, stateful=False)
        features = tf.ensure_shape(features, (None, n_mels, frames))[..., None]
        picked = (features, tf.gather(targets, batch))
        return (*picked, tf.gather(weights, batch)) if with_weights else picked

    return indices.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _read_at_most(store: ClipStore, limit: int, *, rng: np.random.Generator) -> np.ndarray:
    """Every clip of `store`, or `limit` of them drawn by `rng` (in store order) when it holds more."""
    keep = np.arange(len(store))
    if len(keep) > limit:
        keep = np.sort(rng.choice(len(keep), limit, replace=False))
    return store.read(keep)


def make_train_dataset(clips: LabelledClips, *, config: TrainConfig, spec: FeatureSpec,
                       noise_bank: np.ndarray) -> tf.data.Dataset:
    """Shuffled, batched, augmented (features (b, n_mels, frames, 1), targets (b, n_species), weights (b,)).

    The shuffle permutes clip indices (the order a shuffle of the clips themselves would give);
    each batch's features are read from the clip store, so the set is never in memory at once.
    noise_bank: float32 dB (m, n_mels, frames), in memory (keep it small: MAX_NOISE_CLIPS).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.range(len(clips))
    # Full batches only: a short last batch can leave a replica of MirroredStrategy with no example, and
    # Keras' BatchNormalization then fails ("Incompatible shapes") in that replica.
    ds = ds.shuffle(len(clips), seed=config.seed, reshuffle_each_iteration=True)
    ds = _read_batches(ds.batch(config.batch_size, drop_remainder=len(clips) >= config.batch_size), clips,
                       with_weights=True)
    seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)
    bank = tf.constant(noise_bank[..., None]) if len(noise_bank) else None

    @tf.autograph.experimental.do_not_convert  # plain TF ops; the branches are on Python settings
    def augment(batch: tuple[tf.Tensor, tf.Tensor, tf.Tensor], seed: tf.Tensor) -> tuple[tf.Tensor, ...]:
        features, targets, weights = batch
        if config.teacher is not None:  # packed targets: mixup's maximum must keep a mix labelled only when
            targets = _flip_labelled(targets)  # both clips are, so it takes the maximum of "unlabelled"
        features, targets, weights = augment_batch(features, targets, weights, seed=seed, config=config.augment,
                                                   noise_bank=bank, top_db=spec.top_db,
                                                   amin=spec.db_amin * spec.db_ref)
        return features, _flip_labelled(targets) if config.teacher is not None else targets, weights

    ds = tf.data.Dataset.zip((ds, seeds)).map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_dataset_options())


def _flip_labelled(targets: tf.Tensor) -> tf.Tensor:
    """pack_targets(...) (b, 2 * n_species + 1) with its last column (labelled) replaced by 1 - labelled."""
    import tensorflow as tf

    return tf.concat([targets[:, :-1], 1.0 - targets[:, -1:]], axis=1)


def make_eval_dataset(clips: LabelledClips, *, batch_size: int) -> tf.data.Dataset:
    """Unaugmented (features, targets) batches in order, read from the clip store batch by batch."""
    import tensorflow as tf

    ds = _read_batches(tf.data.Dataset.range(len(clips)).batch(batch_size), clips, with_weights=False)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_dataset_options())


def epoch_timer_callback() -> keras.callbacks.Callback:
    """Records each epoch's wall-clock seconds (training and validation) in `.seconds`."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)

    return EpochTimer()


def train(*, config: TrainConfig, data_dir: DataDirs, out_dir: str | Path, spec: FeatureSpec | None = None,
          cache_root: str | Path | None = None, teacher_cache_root: str | Path | None = None,
          progress: bool = True) -> TrainResult:
    """Train `config` on the BirdCLEF 2021 layout in `data_dir` (one root or several, read as one), write the run
    to `out_dir`, evaluate it.

    With config.teacher, the student also learns the teacher's targets (birdlab.training.teacher_targets;
    teacher_cache_root: their cache, default data/interim/teacher_targets); without, the hard labels alone.
    """
    started = datetime.now(UTC)
    roots, run_dir = as_roots(data_dir), RunDir(Path(out_dir))
    spec = spec or FeatureSpec()
    cache = FeatureCache(spec=spec, root=cache_root)
    feature_start = time.perf_counter()
    data = prepare_training_data(data_dir=roots, config=config, spec=spec, cache=cache, progress=progress)
    feature_seconds = time.perf_counter() - feature_start
    if data.missing_audio and data.missing_audio.count and progress:
        print(f"warning: {data.missing_audio.describe()}")
    if len(data.train) == 0:
        raise UserError(f"{', '.join(map(str, roots))}: no usable training clip (skipped: {data.skipped[:3]})")
    teacher = None
    if config.teacher is not None:
        teacher = prepare_teacher_targets(data=data, data_dir=roots, config=config, spec=spec, cache=cache,
                                          root=teacher_cache_root, progress=progress)
        feature_seconds = time.perf_counter() - feature_start

    with op_determinism():
        return _train_model(config=config, data=data, roots=roots, run_dir=run_dir, spec=spec, started=started,
                            feature_seconds=feature_seconds, progress=progress, cache=cache, teacher=teacher,
                            teacher_cache_root=teacher_cache_root)


def _loss_and_metric(config: TrainConfig) -> tuple[keras.losses.Loss, keras.metrics.Metric]:
    """Binary cross-entropy and PR AUC; with a teacher, the distillation loss and PR AUC on the hard labels. For a
    model of several members, each member's own loss, averaged (MemberMeanLoss), and PR AUC of their mean."""
    import keras

    members = config.model.members
    if config.teacher is not None:
        loss, metric = distillation_loss_and_metric(config.teacher, label_smoothing=config.label_smoothing,
                                                    members=members)
    else:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing)
        metric = keras.metrics.AUC(curve="PR", multi_label=True, name="pr_auc")
    if members == 1:
        return loss, metric
    from birdlab.training.members import MemberMeanAUC, MemberMeanLoss  # imports Keras

    if config.teacher is None:
        metric = MemberMeanAUC(members=members, curve="PR", multi_label=True, name="pr_auc")
    return MemberMeanLoss(loss, members=members), metric


@contextmanager
def op_determinism() -> Iterator[None]:
    """tf.config.experimental.enable_op_determinism inside the block; the previous setting afterwards."""
    import tensorflow as tf

    try:  # the public API has no getter and no way back; TF's own module has both
        from tensorflow.python.framework import config as tf_config

        was_enabled, disable = tf_config.is_op_determinism_enabled(), tf_config.disable_op_determinism
    except (ImportError, AttributeError):
        was_enabled, disable = True, None
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled and disable is not None:
            disable()


def make_optimizer(config: TrainConfig, *, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam with a cosine decay from `learning_rate` to 5 % over `epochs`; with `weight_average_momentum` > 0 it
    keeps an exponential moving average of the trainable weights, which `fit` writes into the model at its end."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=config.epochs * steps_per_epoch,
                                                      alpha=0.05)
    return keras.optimizers.Adam(schedule, use_ema=config.averages_weights,
                                 ema_momentum=config.weight_average_momentum if config.averages_weights else 0.99)


def _train_model(*, config: TrainConfig, data: TrainingData, roots: tuple[Path, ...], run_dir: RunDir,
                 spec: FeatureSpec, started: datetime, feature_seconds: float, progress: bool,
                 cache: FeatureCache, teacher: RunTeacherTargets | None = None,
                 teacher_cache_root: str | Path | None = None) -> TrainResult:
    import keras

    git = git_state()  # the code this process runs: read before fit, in which the working tree may change
    keras.utils.set_random_seed(config.seed)
    strategy = select_strategy(config.strategy)

    run_dir.start()
    run_dir.write_inputs(config=config, spec=spec, species=data.species, split=data.split)

    mean_db, std_db = data.train.features.mean_std(re_clip_max=config.model.re_window_peak)
    std_db = std_db or 1.0
    rng = np.random.default_rng([config.seed, 31])
    noise_bank = _read_at_most(data.noise_bank, MAX_NOISE_CLIPS, rng=rng)  # in memory for the augmentations
    labelled_clips = data.train if teacher is None else LabelledClips.concatenate([data.train, teacher.unlabelled])
    train_clips = with_negatives(labelled_clips, noise_bank, fraction=config.negative_fraction, seed=config.seed)
    validation = data.validation
    if teacher is not None:  # y = pack_targets(hard, teacher, labelled), for the distillation loss
        train_clips = packed_training_clips(train_clips, targets=teacher, n_labelled=len(data.train))
        validation = packed_validation_clips(validation, targets=teacher)
    if data.recording_noise is not None and len(data.recording_noise):  # real background: mixed in, not negatives
        noise_bank = np.concatenate([noise_bank, _read_at_most(data.recording_noise, MAX_NOISE_CLIPS, rng=rng)])
    train_ds = make_train_dataset(train_clips, config=config, spec=spec, noise_bank=noise_bank)
    has_validation = len(validation) > 0
    val_ds = make_eval_dataset(validation, batch_size=config.batch_size) if has_validation else None
    steps_per_epoch = max(1, len(train_clips) // config.batch_size)

    with strategy.scope():
        model = build_model(config=config.model, input_shape=spec.input_shape, n_species=len(data.species),
                            norm_mean_db=mean_db, norm_std_db=std_db)
        fit_model = member_outputs_model(model, members=config.model.members)  # shares model's weights
        loss, metric = _loss_and_metric(config)
        fit_model.compile(optimizer=make_optimizer(config, steps_per_epoch=steps_per_epoch), loss=loss,
                          metrics=[metric])

    monitor = "val_loss" if has_validation else "loss"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=monitor, patience=config.early_stopping_patience,
                                      restore_best_weights=not config.averages_weights),  # the average replaces them
        keras.callbacks.ModelCheckpoint(str(run_dir.checkpoints_dir / "best.keras"), monitor=monitor,
                                        save_best_only=True),
        keras.callbacks.CSVLogger(str(run_dir.history_path)),
        keras.callbacks.TensorBoard(log_dir=str(run_dir.tensorboard_dir), write_graph=False, profile_batch=0),
    ]
    budget = time_budget_callback(config.max_train_seconds) if config.max_train_seconds else None
    if budget is not None:
        callbacks.append(budget)
    timer = epoch_timer_callback()
    callbacks.append(timer)
    fit_start = time.perf_counter()
    history = fit_model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks,
                            shuffle=False, verbose=2 if progress else 0)
    train_seconds = time.perf_counter() - fit_start
    model.save(run_dir.model_path)

    run_info = {
        "run_id": run_dir.run_id,
        "birdlab_version": __version__,
        "git_commit": git.commit,
        "git_dirty": git.dirty,
        "package_versions": package_versions(),
        "python": platform.python_version(),
        "seed": config.seed,
        "data_dir": str(roots[0].resolve()),
        "data_dirs": [str(r.resolve()) for r in roots],
        "spec_hash": spec.spec_hash,
        "strategy": type(strategy).__name__,
        "strategy_kind": resolve_strategy_name(config.strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "feature_seconds": round(feature_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "epochs_run": len(history.history.get("loss", [])),
        "epoch_seconds": [round(s, 2) for s in timer.seconds],
        "stopped_by_time_budget": bool(budget is not None and budget.stopped),
        "parameters": int(model.count_params()),
        "weights": (f"exponential moving average of every step, momentum {config.weight_average_momentum:g}"
                    if config.averages_weights else f"the epoch of the lowest {monitor} (restored by early stopping)"),
        "normalisation": {"mean_db": mean_db, "std_db": std_db},
        "clips": {"train": len(data.train), "train_negatives": len(train_clips) - len(labelled_clips),
                  "validation": len(data.validation),
                  "validation_rows": len(data.validation_rows), "test_rows": len(data.test_rows),
                  "test_recordings": len(data.test_recordings),
                  "noise_bank": int(len(noise_bank))},
        "skipped_audio": data.skipped + (teacher.skipped if teacher is not None else []),
        "teacher": None if teacher is None else {**teacher.record, "clips": teacher.counts(),
                                                 "augmented_views": "reuse the clean clip's teacher targets"},
        "missing_audio": data.missing_audio.to_dict() if data.missing_audio is not None else None,
        "missing_audio_text": data.missing_audio.describe() if data.missing_audio is not None else "",
    }
    run_dir.write_run_info(run_info)
    if teacher is not None:
        run_dir.write_teacher(teacher.record)


    metrics = evaluate_run(run_dir, model=model, data=data, cache=cache, workers=config.feature_workers,
                           progress=progress, teacher_cache_root=teacher_cache_root)
    return TrainResult(run_dir=run_dir.root, metrics=metrics, epochs_run=len(history.history.get("loss", [])),
                       train_seconds=train_seconds, n_train_clips=len(data.train))


__all__ = ["TrainResult", "TrainingData", "make_optimizer", "make_train_dataset", "select_strategy", "train"]
