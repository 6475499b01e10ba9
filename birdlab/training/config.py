"""TrainConfig: every setting of a training run, as a frozen dataclass with presets.

`load_config("demo")` gives a preset; `load_config("my_run.toml")` (or .json) reads a
file whose keys override a preset: `preset = "birdclef2021_brittany"` picks the base
(default: birdclef2021_brittany), `[model]` and `[augment]` tables override the model and
augmentation settings (`model.preset = "tiny"` picks a model preset first).

A teacher (birdlab.teacher) is optional: its keys (`teacher_model`, `teacher_labels`, `teacher_output`,
`teacher_weight`, `teacher_temperature`, `teacher_sample_rate_hz`, `teacher_label_map`, `unlabeled_dirs`,
`teacher_licence`) may sit at the top level of the file or in a `[teacher]` table; without them the run
trains on the hard labels alone, as before. config.json writes them as a nested `teacher` object (or null).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import birdlab.training.model as model_presets
from birdlab.errors import UserError
from birdlab.teacher.config import TeacherConfig, TeacherConfigError
from birdlab.training.augment import AugmentConfig
from birdlab.training.model import ModelConfig

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


class ConfigError(UserError, ValueError):
    """A training config (preset name or file) is invalid; the message names the file and field."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run: data selection, features, model, augmentation, optimisation."""

    name: str = "birdclef2021_brittany"
    """Preset this config came from (recorded in config.json)."""
    seed: int = 2021
    """Seeds the split, the crops, the shuffling, the augmentations and the weights."""
    species_csv: str | None = None
    """Species subset CSV (default: data/brittany_species.csv); the label order of the model."""
    min_rating: float | None = None
    """Keep recordings rated >= this (None keeps all)."""
    crops_per_recording: int = 4
    """5-s crops taken from each train_short_audio recording (fewer when the file is short)."""
    crop_energy_exponent: float = 1.0
    """Crop starts are drawn with probability ~ window energy ** exponent (0 = uniform)."""
    validation_fraction: float = 0.2
    """Fraction of each species' recordings held out for validation (early stopping, threshold)."""
    test_fraction: float = 0.2
    """Fraction of each species' recordings held out for test, scored per recording (max over its 5-s windows;
    a median 35-s recording gives ~7 windows); at least one per species with >= 3 recordings, 0 = none."""
    validation_soundscape_fraction: float = 0.5
    """Fraction of soundscapes used for validation; the rest are the test set that is scored."""
    secondary_label_target: float = 0.5
    """Target value for secondary labels (the primary label's target is 1)."""
    label_smoothing: float = 0.05
    """Binary label smoothing of the loss."""
    class_weight_power: float = 0.5
    """Sample weight = (mean count / count of the primary species) ** power; 0 = no balancing."""
    synthetic_noise_clips: int = 16
    """Synthetic (white/pink/brown) noise clips added to the background-noise bank."""
    recording_noise_crops: int = 0
    """Quiet 5-s crops of each training recording added to the background bank of the noise augmentation (drawn
    with probability ~ window energy ** RECORDING_NOISE_EXPONENT: the gaps between calls, real background of real
    recordings, faint calls included); they are only mixed in, never used as negatives. 0 = off."""
    negative_fraction: float = 0.1
    """Background-only clips (all-zero targets, drawn from the noise bank) added to training, as a
    fraction of the training clips: they teach 'nocall'."""
    model: ModelConfig = field(default_factory=model_presets.default)
    """The network."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training-only augmentations."""
    epochs: int = 40
    """Maximum epochs (early stopping usually ends sooner)."""
    batch_size: int = 64
    """Global batch size (split over the replicas of the strategy)."""
    learning_rate: float = 2e-3
    """Peak learning rate of Adam; cosine decay to 5 % over `epochs`."""
    weight_average_momentum: float = 0.0
    """Exponential moving average of the trainable weights, updated after every step with this momentum (e.g.
    0.999: about the last 1000 steps); the saved model holds the average, not the last step's weights. With an
    average, early stopping still stops but does not restore the best epoch (the average replaces it). 0 = off."""
    early_stopping_patience: int = 6
    """Epochs without a better validation loss before stopping (best weights are restored)."""
    strategy: str = "auto"
    """tf.distribute: 'auto' (MultiWorker if TF_CONFIG is set, Mirrored if > 1 GPU, else default),
    'default', 'mirrored' (every visible GPU, else every logical CPU) or 'multi_worker'."""
    feature_workers: int = 0
    """Processes computing features (0 = one per CPU core)."""
    max_train_seconds: float | None = None
    """Wall-clock budget of model.fit: no epoch starts that would end past it (None = no budget). A run
    stopped by the budget says so in run_info.json, and is only reproducible on an equally fast machine."""
    teacher: TeacherConfig | None = None
    """A raw-audio teacher whose outputs become soft targets (birdlab.teacher); None = hard labels only."""

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"train config field '{name}': {what} (got {getattr(self, name)!r})")

        need(self.crops_per_recording >= 1, "crops_per_recording", "must be >= 1")
        need(self.crop_energy_exponent >= 0, "crop_energy_exponent", "must be >= 0")
        need(0.0 <= self.validation_fraction < 1.0, "validation_fraction", "must be in [0, 1)")
        need(0.0 <= self.test_fraction < 1.0, "test_fraction", "must be in [0, 1)")
        need(self.validation_fraction + self.test_fraction < 1.0, "test_fraction",
             f"plus validation_fraction ({self.validation_fraction}) must leave recordings to train on (< 1)")
        need(0.0 <= self.validation_soundscape_fraction < 1.0, "validation_soundscape_fraction", "must be in [0, 1)")
        need(0.0 <= self.secondary_label_target <= 1.0, "secondary_label_target", "must be in [0, 1]")
        need(0.0 <= self.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
        need(self.class_weight_power >= 0, "class_weight_power", "must be >= 0")
        need(self.synthetic_noise_clips >= 0, "synthetic_noise_clips", "must be >= 0")
        need(self.recording_noise_crops >= 0, "recording_noise_crops", "must be >= 0")
        need(0.0 <= self.negative_fraction <= 1.0, "negative_fraction", "must be in [0, 1]")
        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.learning_rate > 0, "learning_rate", "must be > 0")
        need(0.0 <= self.weight_average_momentum < 1.0, "weight_average_momentum", "must be in [0, 1)")
        need(self.early_stopping_patience >= 1, "early_stopping_patience", "must be >= 1")
        need(self.strategy in STRATEGIES, "strategy", f"must be one of {STRATEGIES}")
        need(self.feature_workers >= 0, "feature_workers", "must be >= 0")
        need(self.max_train_seconds is None or self.max_train_seconds > 0, "max_train_seconds", "must be > 0 or null")
        need(self.teacher is None or isinstance(self.teacher, TeacherConfig), "teacher",
             "must be a TeacherConfig or None")

    @property
    def averages_weights(self) -> bool:
        """True when the saved model holds the moving average of the weights (weight_average_momentum > 0)."""
        return self.weight_average_momentum > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (model and augment nested)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["model"] = self.model.to_dict()
        out["augment"] = self.augment.to_dict()
        out["teacher"] = self.teacher.to_dict() if self.teacher is not None else None
        return json.loads(json.dumps(out))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "train config") -> TrainConfig:
        """Build from a dict as written by to_dict (every field optional; unknown fields are errors)."""
        return _apply_overrides(cls(), data, source=source)


def birdclef2021_brittany() -> TrainConfig:
    """The real thing: BirdCLEF 2021, the 24 Brittany species, the default model."""
    return TrainConfig()


def demo() -> TrainConfig:
    """The embedded-default demo: the default model on the synthetic dataset, <= 5 min on 2 CPU cores."""
    return dataclasses.replace(TrainConfig(), name="demo", crops_per_recording=6, epochs=28, batch_size=48,
                               early_stopping_patience=5, learning_rate=4e-3, max_train_seconds=240.0)


def tiny() -> TrainConfig:
    """Seconds to train: the tiny model, two epochs, for tests and smoke runs."""
    return dataclasses.replace(TrainConfig(), name="tiny", model=model_presets.tiny(), crops_per_recording=2,
                               epochs=2, batch_size=8, synthetic_noise_clips=2, feature_workers=1)


def real_audio() -> TrainConfig:
    """Few real recordings per species (xeno-canto calls and songs, 5-60 s, 1-6 per species), as `bench real-audio`
    trains them: about 35 minutes on 2 CPU cores (a 100-minute budget guards a slower machine, which then stops
    sooner and says so in run_info.json).

    Against birdclef2021_brittany (each step measured by `bench real-audio`, figures in bench/README.md):
    - every recording that is not a test recording is trained on (validation_fraction 0): with 2-3 recordings
      per species, a validation recording per species took a third of the training audio. Without validation
      there is no early stopping on it and no tuned threshold (the default one is used; the clip figures are
      threshold-free);
    - 16 crops per recording, drawn where the recording is loud (energy ** 2), which covers most 5-s windows of
      a typical 10-30 s recording;
    - batches of 32 at twice the peak learning rate, a cosine decay over 120 epochs run to the end;
    - three members (model.members 3: independently initialised copies of the default network, each trained on
      its own loss, their probabilities averaged in the graph): +0.03 to +0.06 macro AP on each of four splits, for
      about 2.4 times the model's cost on the device (still below the frontend's) and twice the training time."""
    return dataclasses.replace(TrainConfig(), name="real_audio", validation_fraction=0.0, crops_per_recording=16,
                               crop_energy_exponent=2.0, batch_size=32, learning_rate=4e-3, epochs=120,
                               early_stopping_patience=120, max_train_seconds=6000.0,
                               model=dataclasses.replace(model_presets.default(), members=REAL_AUDIO_MEMBERS))


REAL_AUDIO_MEMBERS = 3
"""Members of the real_audio preset's model (ModelConfig.members)."""


PRESETS = {"birdclef2021_brittany": birdclef2021_brittany, "demo": demo, "real_audio": real_audio, "tiny": tiny}


TEACHER_KEYS = tuple(f.name for f in dataclasses.fields(TeacherConfig))
"""Teacher keys accepted at the top level of a training config (or in its `[teacher]` table)."""


def _teacher_from(base: TeacherConfig | None, data: dict[str, Any], *, source: str) -> TeacherConfig | None:
    """The teacher of a config dict: a `teacher` table/object (null = no teacher) and/or flat teacher keys,
    over the base's teacher. Pops what it reads from `data`."""
    flat = {key: data.pop(key) for key in TEACHER_KEYS if key in data}
    nested = data.pop("teacher", ...)
    if nested is None and not flat:
        return None
    if nested is not ... and nested is not None and not isinstance(nested, dict):
        raise ConfigError(f"{source}: field 'teacher' must be a table of teacher settings or null")
    given = {**(nested if isinstance(nested, dict) else {}), **flat}
    if not given:
        return base
    try:
        return TeacherConfig.from_dict({**(base.to_dict() if base is not None else {}), **given},
                                       source=f"{source} [teacher]")
    except TeacherConfigError as exc:
        raise ConfigError(str(exc)) from None


def _apply_overrides(base: TrainConfig, data: dict[str, Any], *, source: str) -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table/object of settings, got {type(data).__name__}")
    data = dict(data)
    teacher = _teacher_from(base.teacher, data, source=source)
    data["teacher"] = teacher
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {unknown}; known fields are {sorted(known)}")
    try:
        if "model" in data:
            model_data = dict(data["model"])
            model_base = model_presets.preset(model_data.pop("preset")) if "preset" in model_data else base.model
            data["model"] = ModelConfig.from_dict({**model_base.to_dict(), **model_data}, source=f"{source} [model]")
        if "augment" in data:
            data["augment"] = AugmentConfig.from_dict({**base.augment.to_dict(), **data["augment"]},
                                                      source=f"{source} [augment]")
        return dataclasses.replace(base, **data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(preset_or_file: str | Path) -> TrainConfig:
    """A preset by name ('demo', 'tiny', 'birdclef2021_brittany') or a .json/.toml file of overrides."""
    text = str(preset_or_file)
    if text in PRESETS:
        return PRESETS[text]()
    path = Path(text)
    if path.suffix.lower() not in (".json", ".toml"):
        raise ConfigError(f"{text!r} is neither a preset ({sorted(PRESETS)}) nor a .json/.toml config file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8")) if path.suffix.lower() == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings at the top level")
    base_name = data.pop("preset", "birdclef2021_brittany")
    if base_name not in PRESETS:
        raise ConfigError(f"{path}: field 'preset': unknown preset {base_name!r}; choose one of {sorted(PRESETS)}")
    config = _apply_overrides(PRESETS[base_name](), data, source=str(path))
    if "name" not in data:
        config = dataclasses.replace(config, name=path.stem)
    return config
