"""Labelled 5-s clips for a run: species, the seeded split, features from the cache, targets.

The split is by recording (stratified per primary species) and by soundscape: the
validation recordings drive early stopping, the validation soundscapes choose the
threshold (with the validation recordings when they have too few rows) and give their
nocall rows to the background-noise bank, and the test soundscapes are what the run is
scored on. It is written to the run directory as split.json so `evaluate` rebuilds the
same sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from birdlab.data.birdclef2021 import BirdCLEF2021, Recording, SoundscapeRow
from birdlab.data.species import Species, SpeciesFilter, load_species
from birdlab.errors import UserError
from birdlab.features.cache import ClipFeatures, CropPlan, FeatureCache, FeatureJob, compute_features
from birdlab.features.log_mel import log_mel
from birdlab.features.store import ClipStore
from birdlab.training.config import TrainConfig
from edge_runtime.audio import AudioError
from edge_runtime.spec import FeatureSpec

SYNTHETIC_NOISE_LEVEL_DB = (-50.0, -20.0)
"""RMS level range of the synthetic background noise clips, dB re full scale."""


class TrainingDataError(UserError):
    """The dataset cannot make a training run (no audio, no species, ...); the message says what to do."""


def recording_key(recording: Recording) -> str:
    """'<primary_label>/<filename>': how split.json names a recording."""
    return f"{recording.primary_label}/{recording.filename}"


@dataclass(frozen=True)
class Split:
    """Which recordings and soundscapes play which role."""

    train_recordings: tuple[str, ...]
    validation_recordings: tuple[str, ...]
    validation_soundscapes: tuple[int, ...]
    test_soundscapes: tuple[int, ...]

    def to_json(self) -> str:
        return json.dumps({k: list(v) for k, v in self.__dict__.items()}, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> Split:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: tuple(v) for k, v in data.items()})
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise TrainingDataError(f"{path}: cannot read the run's split ({exc}); re-run training") from None


@dataclass
class LabelledClips:
    """Features with their labels.

    features: float32 dB (n, n_mels, clip_frames) as a ClipStore, rows of the feature cache read a
    batch at a time (an ndarray given here is wrapped, not copied). targets: float32 (n, n_species), the
    training targets (primary 1, secondary `secondary_label_target`). truth: bool
    (n, n_species), the label sets that metrics score (all-False = nocall). weights:
    float32 (n,). sources: n strings naming the file and the window.
    """

    features: ClipStore
    targets: np.ndarray
    truth: np.ndarray
    weights: np.ndarray
    sources: list[str]

    def __post_init__(self) -> None:
        if isinstance(self.features, np.ndarray):
            self.features = ClipStore.from_array(self.features)

    @classmethod
    def empty(cls, *, spec: FeatureSpec, n_species: int) -> LabelledClips:
        return cls(ClipStore.empty(clip_shape=(spec.n_mels, spec.clip_frames)), np.zeros((0, n_species), np.float32),
                   np.zeros((0, n_species), bool), np.zeros(0, np.float32), [])

    def __len__(self) -> int:
        return len(self.features)

    @staticmethod
    def concatenate(parts: list[LabelledClips]) -> LabelledClips:
        return LabelledClips(features=ClipStore.concatenate([p.features for p in parts]),
                             targets=np.concatenate([p.targets for p in parts]),
                             truth=np.concatenate([p.truth for p in parts]),
                             weights=np.concatenate([p.weights for p in parts]),
                             sources=[s for p in parts for s in p.sources])


@dataclass
class TrainingData:
    """Everything a run trains and is evaluated on."""

    species: tuple[Species, ...]
    split: Split
    train: LabelledClips
    validation: LabelledClips
    validation_rows: LabelledClips
    test_rows: LabelledClips
    noise_bank: ClipStore
    """float32 dB (m, n_mels, clip_frames): nocall rows of non-test soundscapes + synthetic noise."""
    skipped: list[str] = field(default_factory=list)
    """One line per audio file that could not be used."""


def usable_recordings(dataset: BirdCLEF2021, *, config: TrainConfig) -> tuple[tuple[Species, ...], list[Recording]]:
    """(label species in species-CSV order, recordings with audio present), filtered to the subset."""
    subset = load_species(config.species_csv)
    recordings = [r for r in SpeciesFilter.for_species(subset, min_rating=config.min_rating)
                  .recordings(dataset.recordings()) if r.audio_path.is_file()]
    present = {r.primary_label for r in recordings}
    species = tuple(s for s in subset if s.ebird_code in present)
    if not species:
        raise TrainingDataError(
            f"{dataset.root}: no train_short_audio file of the {len(subset)} subset species was found; "
            "run `python -m birdlab data synth` (synthetic) or `python -m birdlab data download`")
    return species, recordings


def build_split(recordings: list[Recording], soundscape_ids: list[int], *, config: TrainConfig) -> Split:
    """Seeded split: per species, round(validation_fraction * n) recordings (>= 1 when n >= 2) go to
    validation; floor(validation_soundscape_fraction * n) soundscapes to validation, the rest to test."""
    rng = np.random.default_rng([config.seed, 11])
    by_species: dict[str, list[str]] = {}
    for r in recordings:
        by_species.setdefault(r.primary_label, []).append(recording_key(r))
    train, validation = [], []
    for code in sorted(by_species):
        keys = sorted(by_species[code])
        rng.shuffle(keys)
        n_val = 0 if len(keys) < 2 or config.validation_fraction == 0 else max(1, round(config.validation_fraction * len(keys)))
        validation += keys[:n_val]
        train += keys[n_val:]
    ids = sorted(soundscape_ids)
    rng.shuffle(ids)
    n_val_scapes = int(np.floor(config.validation_soundscape_fraction * len(ids)))
    return Split(tuple(sorted(train)), tuple(sorted(validation)), tuple(sorted(ids[:n_val_scapes])),
                 tuple(sorted(ids[n_val_scapes:])))


def _label_vectors(labels_per_clip: list[tuple[str, tuple[str, ...]]], index: dict[str, int],
                   *, secondary_target: float) -> tuple[np.ndarray, np.ndarray]:
    targets = np.zeros((len(labels_per_clip), len(index)), np.float32)
    truth = np.zeros((len(labels_per_clip), len(index)), bool)
    for i, (primary, secondary) in enumerate(labels_per_clip):
        for code in secondary:
            if code in index:
                targets[i, index[code]] = max(targets[i, index[code]], secondary_target)
                truth[i, index[code]] = True
        if primary in index:
            targets[i, index[primary]] = 1.0
            truth[i, index[primary]] = True
    return targets, truth


def recording_clips(recordings: list[Recording], results: list[ClipFeatures | AudioError], *,
                    species: tuple[Species, ...], config: TrainConfig, spec: FeatureSpec) -> LabelledClips:
    """Labelled crops of recordings (failed files are left out); the features stay in the cache."""
    index = {s.ebird_code: i for i, s in enumerate(species)}
    files: list[tuple[Path, int]] = []
    labels, sources = [], []
    for recording, result in zip(recordings, results, strict=True):
        if isinstance(result, AudioError):
            continue
        files.append((result.features_path, result.n_clips))
        labels += [(recording.primary_label, recording.secondary_labels)] * result.n_clips
        sources += [f"{recording_key(recording)}@{s:.2f}s" for s in result.starts_s]
    if not files:
        return LabelledClips.empty(spec=spec, n_species=len(species))
    targets, truth = _label_vectors(labels, index, secondary_target=config.secondary_label_target)
    return LabelledClips(ClipStore.from_files(files, clip_shape=(spec.n_mels, spec.clip_frames)), targets, truth,
                         np.ones(len(sources), np.float32), sources)


def soundscape_clips(rows: list[SoundscapeRow], windows: dict[int, ClipFeatures], *,
                     species: tuple[Species, ...], spec: FeatureSpec) -> LabelledClips:
    """One clip per scored row (birds outside `species` count as nocall); rows past the audio are left out."""
    index = {s.ebird_code: i for i, s in enumerate(species)}
    by_id = {audio_id: n for n, audio_id in enumerate(windows)}
    whole = ClipStore.from_files([(w.features_path, w.n_clips) for w in windows.values()],
                                 clip_shape=(spec.n_mels, spec.clip_frames))
    first_clip = np.concatenate([[0], np.cumsum([w.n_clips for w in windows.values()])])
    picked, labels, sources = [], [], []
    for row in rows:
        audio = windows.get(row.audio_id)
        window = int(round(row.seconds / spec.clip_seconds)) - 1
        if audio is None or window >= audio.n_clips:
            continue
        picked.append(first_clip[by_id[row.audio_id]] + window)
        labels.append(("", tuple(b for b in row.birds if b in index)))
        sources.append(row.row_id)
    if not picked:
        return LabelledClips.empty(spec=spec, n_species=len(species))
    targets, truth = _label_vectors(labels, index, secondary_target=1.0)
    return LabelledClips(whole.take(picked), targets, truth, np.ones(len(picked), np.float32), sources)


def class_balance_weights(targets: np.ndarray, *, power: float) -> np.ndarray:
    """Per clip (mean count / count of its main species) ** power, normalised to mean 1. Shape (n,)."""
    main = np.argmax(targets, axis=1)
    counts = np.bincount(main, minlength=targets.shape[1]).astype(np.float64)
    per_class = np.where(counts > 0, (counts[counts > 0].mean() / np.maximum(counts, 1)) ** power, 0.0)
    weights = per_class[main]
    return (weights / weights.mean()).astype(np.float32)


def with_negatives(clips: LabelledClips, noise_bank: ClipStore | np.ndarray, *, fraction: float,
                   seed: int) -> LabelledClips:
    """`clips` plus round(fraction * len(clips)) background-only clips from `noise_bank` (targets all zero).

    The negatives refer to the bank's rows; nothing is copied.
    """
    n = int(round(fraction * len(clips)))
    if n == 0 or len(noise_bank) == 0:
        return clips
    rng = np.random.default_rng([seed, 37])
    picked = rng.integers(len(noise_bank), size=n)
    n_species = clips.targets.shape[1]
    bank = noise_bank if isinstance(noise_bank, ClipStore) else ClipStore.from_array(noise_bank)
    negatives = LabelledClips(bank.take(picked), np.zeros((n, n_species), np.float32),
                              np.zeros((n, n_species), bool), np.ones(n, np.float32),
                              [f"background#{i}" for i in picked])
    return LabelledClips.concatenate([clips, negatives])


def synthetic_noise_bank(*, spec: FeatureSpec, count: int, seed: int) -> np.ndarray:
    """`count` log-mel clips of white, pink and brown noise at random levels. Shape (count, n_mels, frames)."""
    rng = np.random.default_rng([seed, 23])
    freqs = np.fft.rfftfreq(spec.clip_samples, d=1.0 / spec.sample_rate_hz)
    clips = []
    for i in range(count):
        slope = (0.0, 0.5, 1.0)[i % 3]  # amplitude ~ f^-slope: white, pink, brown
        spectrum = np.fft.rfft(rng.standard_normal(spec.clip_samples))
        spectrum[1:] /= freqs[1:] ** slope
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=spec.clip_samples)
        level_db = rng.uniform(*SYNTHETIC_NOISE_LEVEL_DB)
        noise *= 10 ** (level_db / 20) / max(np.sqrt(np.mean(noise**2)), 1e-12)
        clips.append(log_mel(noise.astype(np.float32), spec=spec))
    return np.stack(clips) if clips else np.zeros((0, spec.n_mels, spec.clip_frames), np.float32)


def prepare_training_data(*, data_dir: Path, config: TrainConfig, spec: FeatureSpec, cache: FeatureCache,
                          split: Split | None = None, species: tuple[Species, ...] | None = None,
                          include_train: bool = True, progress: bool = True) -> TrainingData:
    """Read the dataset, split it (unless `split` is given) and load every clip's features from the cache."""
    if abs(spec.clip_seconds - 5.0) > 1e-9:
        raise TrainingDataError(f"feature spec clip_seconds is {spec.clip_seconds}; BirdCLEF 2021 scores 5-s rows")
    dataset = BirdCLEF2021(data_dir)
    found_species, recordings = usable_recordings(dataset, config=config)
    species = species or found_species
    soundscapes = dataset.soundscapes()
    rows = [r for r in dataset.soundscape_rows() if r.audio_id in soundscapes]
    split = split or build_split(recordings, sorted({r.audio_id for r in rows}), config=config)
    by_key = {recording_key(r): r for r in recordings}
    missing = [k for k in split.train_recordings + split.validation_recordings if k not in by_key]
    if missing:
        raise TrainingDataError(f"{data_dir}: {len(missing)} recording(s) of the run's split are absent "
                                f"(first: {missing[0]}); evaluate with the dataset the run was trained on")
    train_recs = [by_key[k] for k in split.train_recordings] if include_train else []
    val_recs = [by_key[k] for k in split.validation_recordings]
    plan = CropPlan(crops=config.crops_per_recording, energy_exponent=config.crop_energy_exponent, seed=config.seed)
    scape_ids = [i for i in split.validation_soundscapes + split.test_soundscapes if i in soundscapes]
    jobs = [FeatureJob(r.audio_path, plan) for r in train_recs + val_recs]
    jobs += [FeatureJob(soundscapes[i].path) for i in scape_ids]
    results = compute_features(jobs, cache=cache, workers=config.feature_workers, progress=progress,
                               description=f"log-mel ({len(jobs)} files)")
    skipped = [f"{r.path}: {r.reason}" for r in results if isinstance(r, AudioError)]
    n_train, n_val = len(train_recs), len(val_recs)
    train = recording_clips(train_recs, results[:n_train], species=species, config=config, spec=spec)
    train.weights = class_balance_weights(train.targets, power=config.class_weight_power) if len(train) else train.weights
    validation = recording_clips(val_recs, results[n_train:n_train + n_val], species=species, config=config, spec=spec)
    windows = {i: r for i, r in zip(scape_ids, results[n_train + n_val:], strict=True) if not isinstance(r, AudioError)}
    val_rows = soundscape_clips([r for r in rows if r.audio_id in split.validation_soundscapes], windows,
                                species=species, spec=spec)
    test_rows = soundscape_clips([r for r in rows if r.audio_id in split.test_soundscapes], windows,
                                 species=species, spec=spec)
    nocall = val_rows.features.take(np.flatnonzero(~val_rows.truth.any(axis=1)))
    noise = synthetic_noise_bank(spec=spec, count=config.synthetic_noise_clips, seed=config.seed)
    return TrainingData(species=species, split=split, train=train, validation=validation, validation_rows=val_rows,
                        test_rows=test_rows, noise_bank=ClipStore.concatenate([nocall, ClipStore.from_array(noise)]),
                        skipped=skipped)

