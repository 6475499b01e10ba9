"""Labelled 5-s clips for a run: species, the seeded three-way split, features from the cache, targets.

The recordings of train_short_audio are split per primary species into train / validation /
test (see build_split): validation drives early stopping and the threshold, test recordings are
held out and scored per recording (evaluate). A recordist's files (`author`) never sit on two
sides when the species has enough authors (one per side; see GROUPING_BY_AUTHOR); otherwise the species falls
back to a recording-level split, and split.json says so ('grouping'). Soundscapes are split into
validation (threshold, background noise) and test (the soundscape figure) so that both sides get
rows holding a subset species when at least two soundscapes have them. The split is written to the
run directory as split.json so `evaluate` rebuilds the same sets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from birdlab.data.birdclef2021 import (
    DataDirs,
    Dataset,
    MissingAudio,
    Recording,
    SoundscapeRow,
    find_missing_audio,
    open_dataset,
    resolve_soundscape_id,
)
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
RECORDING_NOISE_EXPONENT = -2.0
"""Quiet crops of training recordings (TrainConfig.recording_noise_crops) start with probability ~ energy ** this."""


class TrainingDataError(UserError):
    """The dataset cannot make a training run (no audio, no species, ...); the message says what to do."""


def recording_key(recording: Recording) -> str:
    """'<primary_label>/<filename>': how split.json names a recording."""
    return f"{recording.primary_label}/{recording.filename}"


GROUPING_BY_AUTHOR = "author"
GROUPING_FALLBACK = "recording-level fallback"
"""split.json 'grouping' methods. A species is split by recordist when it has enough authors: at least one
distinct author per side that gets recordings (3 when it has test and validation recordings, i.e. >= 3
recordings); otherwise by recording, and split.json says so."""


@dataclass(frozen=True)
class Split:
    """Which recordings and soundscapes play which role; soundscapes by soundscape id '<audio_id>_<site>'
    (a split.json written before soundscape ids holds bare audio ids: see with_soundscape_ids).

    A split.json written before the three-way split has no test recordings: it loads with none (evaluate then
    reports no clip figures and says why)."""

    train_recordings: tuple[str, ...]
    """'<primary_label>/<filename>' keys (recording_key) the model is trained on."""
    validation_recordings: tuple[str, ...]
    """Recordings for early stopping and, with the validation soundscapes, the threshold."""
    validation_soundscapes: tuple[str, ...]
    """Soundscape ids whose rows choose the threshold and feed the background-noise bank."""
    test_soundscapes: tuple[str, ...]
    """Soundscape ids whose rows give the soundscape figure (never trained or tuned on)."""
    test_recordings: tuple[str, ...] = ()
    """Held-out recordings, scored per recording as the max over their 5-s windows (the clip figures)."""
    grouping: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per species code: {'method': 'author', 'authors': {side: n}} or {'method': 'recording-level fallback',
    'authors': n, 'why': text}; empty in older split.json files."""

    @property
    def has_test_recordings(self) -> bool:
        return bool(self.test_recordings)

    def with_soundscape_ids(self, known: Iterable[str]) -> Split:
        """The split with bare audio ids (older split.json files) resolved to the soundscape ids among `known`
        (one that names none is kept, as text, and matches nothing); TrainingDataError when one is ambiguous."""
        known = tuple(known)
        resolved: dict[str, Any] = {}
        for field_name in ("validation_soundscapes", "test_soundscapes"):
            try:
                resolved[field_name] = tuple(resolve_soundscape_id(value, known=known) or str(value)
                                             for value in getattr(self, field_name))
            except ValueError as exc:
                raise TrainingDataError(f"split.json, '{field_name}': {exc}; re-run training to write "
                                        "soundscape ids") from None
        return replace(self, **resolved)

    def to_json(self) -> str:
        data: dict[str, Any] = {f.name: list(getattr(self, f.name)) for f in fields(self) if f.name != "grouping"}
        data["grouping"] = self.grouping
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> Split:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            grouping = data.pop("grouping", {})
            if not isinstance(grouping, dict):
                raise TypeError(f"'grouping' must be an object, got {type(grouping).__name__}")
            return cls(**{k: tuple(v) for k, v in data.items()}, grouping=grouping)
        except (OSError, json.JSONDecodeError, TypeError, AttributeError) as exc:
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
    recording_noise: ClipStore | None = None
    """float32 dB (r, n_mels, clip_frames): quiet crops of the training recordings (config.recording_noise_crops),
    mixed in as background by the noise augmentation but never used as negatives; None = none."""
    test_recordings: list[Recording] = field(default_factory=list)
    """The held-out test recordings (audio present); evaluate scores them per recording, a few at a time, so
    their features are not held here."""
    skipped: list[str] = field(default_factory=list)
    """One line per audio file that could not be used."""
    missing_audio: MissingAudio | None = None
    """Recordings of the subset listed in train_metadata.csv whose audio file is absent (left out): count and names
    for the run summary (MissingAudio.describe / to_dict)."""


def usable_recordings(dataset: Dataset, *, config: TrainConfig) -> tuple[tuple[Species, ...], list[Recording]]:
    """(label species in species-CSV order, recordings with audio present), filtered to the subset."""
    subset = load_species(config.species_csv)
    recordings = [r for r in subset_recordings(dataset, config=config) if r.audio_path.is_file()]
    present = {r.primary_label for r in recordings}
    species = tuple(s for s in subset if s.ebird_code in present)
    if not species:
        raise TrainingDataError(
            f"{dataset.root}: no train_short_audio file of the {len(subset)} subset species was found; "
            "run `python -m birdlab data synth` (synthetic) or `python -m birdlab data download`")
    return species, recordings


def subset_recordings(dataset: Dataset, *, config: TrainConfig) -> list[Recording]:
    """The metadata rows of the run's species subset (config.species_csv, config.min_rating), audio present or not."""
    return SpeciesFilter.for_species(load_species(config.species_csv), min_rating=config.min_rating).recordings(
        dataset.recordings())


def side_sizes(n_recordings: int, *, config: TrainConfig) -> tuple[int, int]:
    """(n_test, n_validation) recordings of a species with n_recordings: round(fraction * n), at least 1 each
    while training keeps one (test needs n >= 3, validation n >= 2); 0 for a zero fraction."""
    n_test = 0 if n_recordings < 3 or config.test_fraction == 0 else max(1, round(config.test_fraction * n_recordings))
    left = n_recordings - n_test
    n_val = 0 if left < 2 or config.validation_fraction == 0 else max(1, round(config.validation_fraction * n_recordings))
    return n_test, min(n_val, left - 1)


def _author_groups(recordings: list[Recording], rng: np.random.Generator) -> list[list[str]]:
    """Recording keys grouped by author, groups in seeded random order; a recording without an author is a group
    of its own."""
    groups: dict[str, list[str]] = {}
    for r in sorted(recordings, key=recording_key):
        author = r.author.strip()
        groups.setdefault(author.casefold() if author else f"\0{recording_key(r)}", []).append(recording_key(r))
    ordered = [groups[a] for a in sorted(groups)]
    return [ordered[i] for i in rng.permutation(len(ordered))]


def split_by_author(groups: list[list[str]], *, n_test: int, n_validation: int) -> dict[str, list[list[str]]]:
    """Whole author groups to 'test', 'validation' and 'train', near the target counts.

    Groups are taken in the given order; a group goes to test (then validation) when it brings that side's
    count closer to its target, else to train. A side with a target that got no group then takes the smallest
    group of a side holding two or more (train first); with one group per side that has a target (train
    included), every such side ends with at least one.
    """
    sides: dict[str, list[list[str]]] = {"test": [], "validation": [], "train": []}
    targets = {"test": n_test, "validation": n_validation}
    for group in groups:
        for side, target in targets.items():
            count = sum(map(len, sides[side]))
            if abs(count + len(group) - target) < abs(count - target):
                sides[side].append(group)
                break
        else:
            sides["train"].append(group)
    for side, target in targets.items():
        donors = [(len(g), order, donor, g) for order, donor in enumerate(("train", "test", "validation"))
                  if target and not sides[side] and donor != side and len(sides[donor]) > 1
                  for g in sides[donor]]
        if donors:
            _, _, donor, smallest = min(donors, key=lambda d: (d[0], d[1]))
            sides[donor].remove(smallest)
            sides[side].append(smallest)
    return sides


def _split_species(recordings: list[Recording], *, config: TrainConfig, rng: np.random.Generator
                   ) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """One species' recordings by side, and its split.json 'grouping' entry."""
    n_test, n_val = side_sizes(len(recordings), config=config)
    groups = _author_groups(recordings, rng)
    needed = 1 + (n_test > 0) + (n_val > 0)
    n_authors = len({r.author.strip().casefold() for r in recordings if r.author.strip()})
    if n_authors >= needed:
        sides = split_by_author(groups, n_test=n_test, n_validation=n_val)
        keys = {side: sorted(k for g in found for k in g) for side, found in sides.items()}
        return keys, {"method": GROUPING_BY_AUTHOR, "authors": {side: len(found) for side, found in sides.items()},
                      "recordings": {side: len(k) for side, k in keys.items()}}
    flat = sorted(k for g in groups for k in g)
    flat = [flat[i] for i in rng.permutation(len(flat))]
    keys = {"test": flat[:n_test], "validation": flat[n_test:n_test + n_val], "train": flat[n_test + n_val:]}
    return keys, {"method": GROUPING_FALLBACK, "authors": n_authors,
                  "why": f"{n_authors} author(s) for {needed} sides: one recordist's files may sit on two sides",
                  "recordings": {side: len(k) for side, k in keys.items()}}


def split_soundscapes(soundscape_ids: list[str], *, positive: set[str], config: TrainConfig,
                      rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(validation, test) soundscape ids: floor(validation_soundscape_fraction * n) to validation, the rest to test.

    Soundscapes with rows holding a subset species (`positive`) are dealt out first so that both sides get one
    when at least two have them (with one, it goes to test: the soundscape figure needs its rows).
    """
    n_val = int(np.floor(config.validation_soundscape_fraction * len(soundscape_ids)))
    with_birds = [i for i in sorted(soundscape_ids) if i in positive]
    without = [i for i in sorted(soundscape_ids) if i not in positive]
    with_birds = [with_birds[i] for i in rng.permutation(len(with_birds))]
    without = [without[i] for i in rng.permutation(len(without))]
    n_val_birds = int(np.floor(config.validation_soundscape_fraction * len(with_birds)))
    if len(with_birds) >= 2 and n_val >= 1:
        n_val_birds = min(max(n_val_birds, 1), len(with_birds) - 1, n_val)
    n_val_birds = min(n_val_birds, n_val)
    n_val_without = min(n_val - n_val_birds, len(without))
    validation = with_birds[:n_val_birds] + without[:n_val_without]
    test = with_birds[n_val_birds:] + without[n_val_without:]
    return sorted(validation), sorted(test)


def build_split(recordings: list[Recording], soundscape_ids: list[str], *, config: TrainConfig,
                positive_soundscapes: Iterable[str] = ()) -> Split:
    """The seeded three-way split: per species, side_sizes(n) recordings to test and validation, by author when
    the species has enough of them (split_by_author), else by recording; soundscapes by split_soundscapes."""
    rng = np.random.default_rng([config.seed, 11])
    by_species: dict[str, list[Recording]] = {}
    for r in recordings:
        by_species.setdefault(r.primary_label, []).append(r)
    sides: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    grouping = {}
    for code in sorted(by_species):
        keys, grouping[code] = _split_species(by_species[code], config=config, rng=rng)
        for side, found in keys.items():
            sides[side] += found
    validation_scapes, test_scapes = split_soundscapes(soundscape_ids, positive=set(positive_soundscapes),
                                                       config=config, rng=rng)
    return Split(train_recordings=tuple(sorted(sides["train"])), validation_recordings=tuple(sorted(sides["validation"])),
                 validation_soundscapes=tuple(validation_scapes), test_soundscapes=tuple(test_scapes),
                 test_recordings=tuple(sorted(sides["test"])), grouping=grouping)


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


def soundscape_clips(rows: list[SoundscapeRow], windows: dict[str, ClipFeatures], *,
                     species: tuple[Species, ...], spec: FeatureSpec) -> LabelledClips:
    """One clip per scored row (birds outside `species` count as nocall); rows past the audio are left out.

    windows: the features of each soundscape by soundscape id."""
    index = {s.ebird_code: i for i, s in enumerate(species)}
    by_id = {scape_id: n for n, scape_id in enumerate(windows)}
    whole = ClipStore.from_files([(w.features_path, w.n_clips) for w in windows.values()],
                                 clip_shape=(spec.n_mels, spec.clip_frames))
    first_clip = np.concatenate([[0], np.cumsum([w.n_clips for w in windows.values()])])
    picked, labels, sources = [], [], []
    for row in rows:
        audio = windows.get(row.soundscape_id)
        window = int(round(row.seconds / spec.clip_seconds)) - 1
        if audio is None or window >= audio.n_clips:
            continue
        picked.append(first_clip[by_id[row.soundscape_id]] + window)
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


def prepare_training_data(*, data_dir: DataDirs, config: TrainConfig, spec: FeatureSpec, cache: FeatureCache,
                          split: Split | None = None, species: tuple[Species, ...] | None = None,
                          include_train: bool = True, progress: bool = True) -> TrainingData:
    """Read the dataset, split it (unless `split` is given) and load every clip's features from the cache."""
    if abs(spec.clip_seconds - 5.0) > 1e-9:
        raise TrainingDataError(f"feature spec clip_seconds is {spec.clip_seconds}; BirdCLEF 2021 scores 5-s rows")
    dataset = open_dataset(data_dir)
    found_species, recordings = usable_recordings(dataset, config=config)
    species = species or found_species
    soundscapes = dataset.soundscapes()
    rows = [r for r in dataset.soundscape_rows() if r.soundscape_id in soundscapes]
    codes = {s.ebird_code for s in species}
    split = split.with_soundscape_ids(soundscapes) if split is not None else build_split(
        recordings, sorted({r.soundscape_id for r in rows}), config=config,
        positive_soundscapes={r.soundscape_id for r in rows if any(b in codes for b in r.birds)})
    by_key = {recording_key(r): r for r in recordings}
    missing = [k for k in split.train_recordings + split.validation_recordings + split.test_recordings
               if k not in by_key]
    if missing:
        raise TrainingDataError(f"{data_dir}: {len(missing)} recording(s) of the run's split are absent "
                                f"(first: {missing[0]}); evaluate with the dataset the run was trained on")
    train_recs = [by_key[k] for k in split.train_recordings] if include_train else []
    val_recs = [by_key[k] for k in split.validation_recordings]
    plan = CropPlan(crops=config.crops_per_recording, energy_exponent=config.crop_energy_exponent, seed=config.seed)
    scape_ids = [i for i in split.validation_soundscapes + split.test_soundscapes if i in soundscapes]
    jobs = [FeatureJob(r.audio_path, plan) for r in train_recs + val_recs]
    jobs += [FeatureJob(soundscapes[i].path) for i in scape_ids]
    quiet = CropPlan(crops=config.recording_noise_crops, energy_exponent=RECORDING_NOISE_EXPONENT, seed=config.seed)
    jobs += [FeatureJob(r.audio_path, quiet) for r in train_recs] if config.recording_noise_crops else []
    results = compute_features(jobs, cache=cache, workers=config.feature_workers, progress=progress,
                               description=f"log-mel ({len(jobs)} files)")
    skipped = list(dict.fromkeys(f"{r.path}: {r.reason}" for r in results if isinstance(r, AudioError)))
    n_train, n_val = len(train_recs), len(val_recs)
    train = recording_clips(train_recs, results[:n_train], species=species, config=config, spec=spec)
    train.weights = class_balance_weights(train.targets, power=config.class_weight_power) if len(train) else train.weights
    validation = recording_clips(val_recs, results[n_train:n_train + n_val], species=species, config=config, spec=spec)
    n_scapes = len(scape_ids)
    windows = {i: r for i, r in zip(scape_ids, results[n_train + n_val:n_train + n_val + n_scapes], strict=True)
               if not isinstance(r, AudioError)}
    quiet_crops = [r for r in results[n_train + n_val + n_scapes:] if not isinstance(r, AudioError)]
    recording_noise = ClipStore.from_files([(r.features_path, r.n_clips) for r in quiet_crops],
                                           clip_shape=(spec.n_mels, spec.clip_frames)) if quiet_crops else None
    val_rows = soundscape_clips([r for r in rows if r.soundscape_id in split.validation_soundscapes], windows,
                                species=species, spec=spec)
    test_rows = soundscape_clips([r for r in rows if r.soundscape_id in split.test_soundscapes], windows,
                                 species=species, spec=spec)
    nocall = val_rows.features.take(np.flatnonzero(~val_rows.truth.any(axis=1)))
    noise = synthetic_noise_bank(spec=spec, count=config.synthetic_noise_clips, seed=config.seed)
    return TrainingData(species=species, split=split, train=train, validation=validation, validation_rows=val_rows,
                        test_rows=test_rows, noise_bank=ClipStore.concatenate([nocall, ClipStore.from_array(noise)]),
                        recording_noise=recording_noise,
                        test_recordings=[by_key[k] for k in split.test_recordings],
                        skipped=skipped, missing_audio=find_missing_audio(subset_recordings(dataset, config=config)))

