"""The embedded default: a deterministic synthetic dataset in the exact BirdCLEF 2021 layout, with the real data's
awkward traits.

Each species gets a voice (`birdlab.data.synth_voice`): a frequency band, an FM shape, syllable
length, repetition and gaps, harmonics and, for some, a trill. Voices come in look-alike pairs, so
the task needs more than a band-energy detector. What the real BirdCLEF 2021 files do, the
default does too:

- recordings of 5-90 s, median 30 s (log-normal), each with background noise at a random SNR;
  files longer than 60 s exist (edge_runtime.file_stream decodes them block by block);
- secondary labels mostly of species outside the subset (codes from the 397 of BirdCLEF 2021),
  each audible as a quieter call of its own voice;
- ratings with 0.0 (= unrated), worldwide coordinates with some in Brittany, free-text `time`,
  several recordists per species (`birdlab.data.synth_metadata`);
- 10-minute soundscapes named <audio_id>_<SITE>_<yyyymmdd>.ogg at sites COR and SSW, whose rows
  are mostly `nocall` once filtered to the subset: silent windows, windows with only birds outside
  the subset (listed in the labels CSV, as the real file does), and windows with subset species.

Everything is planned first (`plan_dataset`: metadata, lengths, soundscape phrases and labels, no
audio), then rendered and written as OGG Vorbis at 32 kHz by worker processes. The same seed gives
identical audio samples (the Ogg stream serial number in the file bytes may differ).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

import birdlab.data.birdclef2021 as bc
import birdlab.data.synth_metadata as meta
from birdlab.data.ogg import write_ogg_vorbis
from birdlab.data.species import Species, birdclef2021_codes, load_species
from birdlab.data.synth_voice import (
    CallModel,
    Phrase,
    background_noise,
    call_models,
    code_rng,
    distractor_models,
    mix_phrase,
    normalise,
    phrase_seconds,
    phrase_spans,
    plan_phrase,
)
from birdlab.errors import UserError

__all__ = ["SITES", "SynthConfig", "SynthSummary", "call_models", "ensure_synthetic", "is_synthesized",
           "plan_dataset", "synthesize", "write_csv_files"]

SYNTH_MANIFEST = "synth_manifest.json"
SYNTH_FORMAT_VERSION = 3
SITES = ("COR", "SSW")
"""Soundscape sites, as in the real train_soundscapes (COR: Costa Rica, SSW: Sapsucker Woods)."""
RECORDING_LENGTH_SIGMA = 0.6
"""Spread of the log-normal recording lengths (natural log)."""
LABEL_MIN_SECONDS = 0.04
"""A species is labelled in a window when at least this much of its syllables falls inside it."""
SOUNDSCAPE_RESIDENTS = 6
"""Species outside the subset that call in one soundscape (its site's other birds)."""
NOISE_RMS = 0.05
"""Background noise level before the file is normalised."""


@dataclass(frozen=True)
class SynthConfig:
    """Size, difficulty and traits of the synthetic dataset."""

    seed: int = 2021
    """Seed of every random choice (same seed -> identical audio samples)."""
    n_species: int = 24
    """How many species of the subset get recordings (the first n of data/brittany_species.csv)."""
    recordings_per_species: int = 10
    """train_short_audio files per species."""
    recording_seconds: tuple[float, float] = (5.0, 90.0)
    """Shortest and longest recording, seconds."""
    recording_median_seconds: float = 30.0
    """Median recording length: lengths are log-normal around it, clipped to recording_seconds."""
    n_soundscapes: int = 4
    """Number of train_soundscapes files (sites alternate COR, SSW)."""
    soundscape_seconds: int = 600
    """Soundscape length in seconds (a multiple of 5: BirdCLEF scores 5-s windows); the real ones are 600."""
    positive_window_share: float = 0.32
    """Fraction of soundscape windows given 1-2 calls of subset species (calls may spill into the next window)."""
    distractor_window_share: float = 0.2
    """Fraction of soundscape windows given only calls of species outside the subset (nocall for the subset)."""
    sample_rate_hz: int = 32000
    """Sample rate of the written files (BirdCLEF 2021's)."""
    snr_db: tuple[float, float] = (3.0, 24.0)
    """Range of signal-to-noise ratios of a call against the background, in dB."""
    secondary_probability: float = 0.35
    """Chance that a recording has background species (secondary labels, each a quieter call)."""
    secondary_subset_share: float = 0.25
    """Chance that a secondary label is a subset species (else one of the other BirdCLEF 2021 codes)."""
    unrated_share: float = 0.08
    """Fraction of recordings rated 0.0 (unrated)."""
    brittany_share: float = 0.25
    """Fraction of recordings located in Brittany's box."""
    outside_europe_share: float = 0.3
    """Fraction of recordings located outside Europe."""

    def __post_init__(self) -> None:
        low, high = self.recording_seconds
        if not 0 < low <= self.recording_median_seconds <= high:
            raise UserError(f"synth config: need 0 < recording_seconds[0] <= recording_median_seconds <= "
                            f"recording_seconds[1], got {self.recording_seconds} and {self.recording_median_seconds}")
        if self.positive_window_share + self.distractor_window_share > 1:
            raise UserError("synth config: positive_window_share + distractor_window_share must be <= 1")

    @classmethod
    def quick(cls) -> SynthConfig:
        """A tiny dataset for smoke tests: 4 species, 3 recordings of 3-5 s each, one 30-s soundscape
        (3 windows with subset calls, 1 with another species only)."""
        return cls(n_species=4, recordings_per_species=3, recording_seconds=(3.0, 5.0), recording_median_seconds=4.0,
                   n_soundscapes=1, soundscape_seconds=30, positive_window_share=0.5, distractor_window_share=0.17)

    def to_dict(self) -> dict[str, object]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class RecordingPlan:
    """One train_short_audio file before it is rendered."""

    row: dict[str, str]
    """Its train_metadata.csv row."""
    seconds: float
    """Length of the audio."""
    secondary: tuple[str, ...]
    """Background species, each rendered as a quieter call."""
    render_seed: tuple[int, ...]
    """Seeds the noise and the calls of the rendering."""

    @property
    def relative_path(self) -> Path:
        return Path(bc.SHORT_AUDIO_DIR) / self.row["primary_label"] / self.row["filename"]


@dataclass(frozen=True)
class SoundscapePlan:
    """One train_soundscapes file before it is rendered: every call and the labels of every window."""

    audio_id: int
    site: str
    date: str
    seconds: int
    phrases: tuple[Phrase, ...]
    windows: tuple[tuple[str, ...], ...]
    """Birds of each scored 5-s window (subset species and others), empty = nocall."""
    render_seed: tuple[int, ...]
    """Seeds the background noise of the rendering."""

    @property
    def relative_path(self) -> Path:
        return Path(bc.SOUNDSCAPES_DIR) / f"{self.audio_id}_{self.site}_{self.date}.ogg"

    def label_rows(self) -> list[dict[str, object]]:
        """Its rows of train_soundscape_labels.csv."""
        rows: list[dict[str, object]] = []
        for w, birds in enumerate(self.windows):
            seconds = (w + 1) * bc.WINDOW_SECONDS
            rows.append({"row_id": f"{self.audio_id}_{self.site}_{seconds}", "site": self.site,
                         "audio_id": self.audio_id, "seconds": seconds,
                         "birds": " ".join(birds) if birds else bc.NOCALL})
        return rows


@dataclass(frozen=True)
class DatasetPlan:
    """The whole dataset before rendering."""

    config: SynthConfig
    species: tuple[Species, ...]
    voices: dict[str, CallModel]
    """Every voice that calls: the subset species' and the background species'."""
    recordings: tuple[RecordingPlan, ...]
    soundscapes: tuple[SoundscapePlan, ...]


def _recording_seconds(config: SynthConfig, rng: np.random.Generator) -> float:
    low, high = config.recording_seconds
    value = config.recording_median_seconds * float(np.exp(rng.normal(0.0, RECORDING_LENGTH_SIGMA)))
    return round(float(np.clip(value, low, high)), 2)


def _plan_recordings(config: SynthConfig, species: tuple[Species, ...],
                     outside: tuple[str, ...]) -> list[RecordingPlan]:
    codes = [s.ebird_code for s in species]
    plans, file_number = [], 100000
    for sp in species:
        authors, author_p = meta.species_authors(rng=code_rng(config.seed, sp.ebird_code, 2))
        for i in range(config.recordings_per_species):
            rng = code_rng(config.seed, sp.ebird_code, 100 + i)
            file_number += 1 + int(rng.integers(0, 40))
            secondary = meta.secondary_codes(rng=rng, probability=config.secondary_probability,
                                             subset_share=config.secondary_subset_share,
                                             subset=[c for c in codes if c != sp.ebird_code], outside=outside)
            latitude, longitude = meta.coordinates(rng=rng, brittany_share=config.brittany_share,
                                                   outside_europe_share=config.outside_europe_share)
            row = {"primary_label": sp.ebird_code, "secondary_labels": repr(list(secondary)),
                   "type": meta.call_type(rng=rng), "latitude": latitude, "longitude": longitude,
                   "scientific_name": sp.scientific_name, "common_name": sp.common_name,
                   "author": str(authors[int(rng.choice(len(authors), p=author_p))]),
                   "date": meta.date_text(rng=rng), "filename": f"XC{file_number}.ogg",
                   "license": "CC0 1.0 (synthetic audio generated by birdlab)",
                   "rating": meta.rating(rng=rng, unrated_share=config.unrated_share),
                   "time": meta.time_text(rng=rng), "url": f"synthetic:seed={config.seed}/{sp.ebird_code}/{i}"}
            plans.append(RecordingPlan(row=row, seconds=_recording_seconds(config, rng), secondary=secondary,
                                       render_seed=(config.seed, file_number, 3)))
    return plans


def _window_labels(phrases: list[Phrase], voices: dict[str, CallModel], *, n_windows: int,
                   sample_rate_hz: int) -> tuple[tuple[str, ...], ...]:
    """Per window, the codes with >= LABEL_MIN_SECONDS of syllables inside it (in order of first call)."""
    window_s = bc.WINDOW_SECONDS
    sounding: list[dict[str, float]] = [{} for _ in range(n_windows)]
    for phrase in phrases:
        for a, b in phrase_spans(voices[phrase.code], phrase, sample_rate_hz=sample_rate_hz):
            for k in range(int(a // window_s), min(n_windows, int(b // window_s) + 1)):
                overlap = min(b, (k + 1) * window_s) - max(a, k * window_s)
                if overlap > 0:
                    sounding[k][phrase.code] = sounding[k].get(phrase.code, 0.0) + overlap
    return tuple(tuple(c for c, s in window.items() if s >= LABEL_MIN_SECONDS) for window in sounding)


def _plan_soundscape(config: SynthConfig, j: int, *, subset: list[str], outside: tuple[str, ...],
                     voices: dict[str, CallModel], audio_id: int) -> SoundscapePlan:
    rng = np.random.default_rng([config.seed, 7, j])
    sr = config.sample_rate_hz
    residents = [str(c) for c in rng.choice(outside, size=min(SOUNDSCAPE_RESIDENTS, len(outside)), replace=False)]
    n_windows = config.soundscape_seconds // bc.WINDOW_SECONDS
    order = rng.permutation(n_windows)
    n_positive = int(round(config.positive_window_share * n_windows))
    n_other = int(round(config.distractor_window_share * n_windows))
    callers: dict[int, list[str]] = {}
    for w in order[:n_positive]:
        callers[int(w)] = [subset[int(rng.integers(len(subset)))] for _ in range(int(rng.integers(1, 3)))]
        if residents and rng.random() < 0.3:
            callers[int(w)].append(residents[int(rng.integers(len(residents)))])
    for w in order[n_positive:n_positive + n_other]:
        callers[int(w)] = [residents[int(rng.integers(len(residents)))] for _ in range(int(rng.integers(1, 3)))]
    phrases = []
    for w in sorted(callers):
        for code in callers[w]:
            phrase = plan_phrase(code, voices[code], rng=rng, start_s=0.0, snr_db=float(rng.uniform(*config.snr_db)))
            length = phrase_seconds(voices[code], phrase, sample_rate_hz=sr)
            start_s = w * bc.WINDOW_SECONDS + float(rng.uniform(0.0, bc.WINDOW_SECONDS - min(length, 4.5)))
            phrases.append(dataclasses.replace(phrase, start_s=start_s))
    date = f"{int(rng.integers(2017, 2021))}{int(rng.integers(4, 8)):02d}{int(rng.integers(1, 29)):02d}"
    return SoundscapePlan(audio_id=audio_id, site=SITES[j % len(SITES)], date=date,
                          seconds=config.soundscape_seconds, phrases=tuple(phrases),
                          windows=_window_labels(phrases, voices, n_windows=n_windows, sample_rate_hz=sr),
                          render_seed=(config.seed, 8, j))


def plan_dataset(config: SynthConfig, *, species_csv: Path | None = None) -> DatasetPlan:
    """Everything but the audio: metadata rows, lengths, soundscape calls and labels (fast; no rendering)."""
    all_species = load_species(species_csv)
    if not 1 <= config.n_species <= len(all_species):
        raise UserError(f"n_species must be in [1, {len(all_species)}], got {config.n_species}")
    if config.soundscape_seconds % bc.WINDOW_SECONDS:
        raise UserError(f"soundscape_seconds must be a multiple of {bc.WINDOW_SECONDS}")
    species = all_species[: config.n_species]
    subset_codes = {s.ebird_code for s in all_species}
    outside = tuple(c for c in birdclef2021_codes() if c not in subset_codes)
    recordings = _plan_recordings(config, species, outside)
    rng = np.random.default_rng([config.seed, 6])
    audio_ids = sorted(int(i) for i in rng.choice(np.arange(1000, 60000), size=config.n_soundscapes, replace=False))
    voices = {**distractor_models(outside, seed=config.seed), **call_models(species, seed=config.seed)}
    soundscapes = [_plan_soundscape(config, j, subset=[s.ebird_code for s in species], outside=outside,
                                    voices=voices, audio_id=audio_ids[j]) for j in range(config.n_soundscapes)]
    used = {s.ebird_code for s in species} | {c for r in recordings for c in r.secondary} | {
        p.code for s in soundscapes for p in s.phrases}
    return DatasetPlan(config=config, species=species, voices={c: v for c, v in voices.items() if c in used},
                       recordings=tuple(recordings), soundscapes=tuple(soundscapes))


def render_recording(plan: RecordingPlan, *, voices: dict[str, CallModel], config: SynthConfig) -> np.ndarray:
    """The audio of one planned recording: float32, shape (round(plan.seconds * sample_rate_hz),).

    Phrases of the primary species every 0.4-2 s, then one quieter call per secondary label."""
    sr = config.sample_rate_hz
    rng = np.random.default_rng(list(plan.render_seed))
    n = int(round(plan.seconds * sr))
    out = background_noise(n, rng=rng) * NOISE_RMS
    code = plan.row["primary_label"]
    position = float(rng.uniform(0.0, 0.5))
    while position < n / sr - 0.3:
        phrase = plan_phrase(code, voices[code], rng=rng, start_s=position, snr_db=float(rng.uniform(*config.snr_db)))
        mix_phrase(out, voices[code], phrase, sample_rate_hz=sr, noise_rms=NOISE_RMS)
        position += phrase_seconds(voices[code], phrase, sample_rate_hz=sr) + float(rng.uniform(0.4, 2.0))
    for other in plan.secondary:
        phrase = plan_phrase(other, voices[other], rng=rng, start_s=0.0,
                             snr_db=float(rng.uniform(config.snr_db[0], config.snr_db[0] + 8)))
        length = phrase_seconds(voices[other], phrase, sample_rate_hz=sr)
        phrase = dataclasses.replace(phrase, start_s=float(rng.uniform(0.0, max(0.0, n / sr - length))))
        mix_phrase(out, voices[other], phrase, sample_rate_hz=sr, noise_rms=NOISE_RMS)
    return normalise(out, rng=rng)


def render_soundscape(plan: SoundscapePlan, *, voices: dict[str, CallModel], config: SynthConfig) -> np.ndarray:
    """The audio of one planned soundscape: float32, shape (plan.seconds * sample_rate_hz,)."""
    sr = config.sample_rate_hz
    rng = np.random.default_rng(list(plan.render_seed))
    out = background_noise(plan.seconds * sr, rng=rng) * NOISE_RMS
    for phrase in plan.phrases:
        mix_phrase(out, voices[phrase.code], phrase, sample_rate_hz=sr, noise_rms=NOISE_RMS)
    return normalise(out, rng=rng)


def _render_and_write(dest: Path, plan: RecordingPlan | SoundscapePlan, voices: dict[str, CallModel],
                      config: SynthConfig) -> None:
    if isinstance(plan, RecordingPlan):
        samples = render_recording(plan, voices=voices, config=config)
    else:
        samples = render_soundscape(plan, voices=voices, config=config)
    write_ogg_vorbis(dest / plan.relative_path, samples, sample_rate_hz=config.sample_rate_hz)


@dataclass(frozen=True)
class SynthSummary:
    dest: Path
    species: int
    recordings: int
    soundscapes: int
    soundscape_rows: int
    nocall_rows: int
    """Rows written as 'nocall' (rows with only species outside the subset are not counted here)."""
    positive_rows: int
    """Rows holding at least one synthesised subset species."""

    def describe(self) -> str:
        return (f"synthetic BirdCLEF 2021 dataset in {self.dest}: {self.species} species, {self.recordings} recordings, "
                f"{self.soundscapes} soundscapes ({self.soundscape_rows} rows: {self.nocall_rows} 'nocall', "
                f"{self.positive_rows} with a subset species)")


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]] | list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_csv_files(plan: DatasetPlan, *, dest: Path) -> None:
    """train_metadata.csv and train_soundscape_labels.csv of the plan (no audio)."""
    dest.mkdir(parents=True, exist_ok=True)
    _write_csv(dest / bc.METADATA_CSV, bc.METADATA_COLUMNS, [r.row for r in plan.recordings])
    _write_csv(dest / bc.SOUNDSCAPE_LABELS_CSV, bc.SOUNDSCAPE_LABEL_COLUMNS,
               [row for s in plan.soundscapes for row in s.label_rows()])


def _remove_stale_audio(dest: Path, *, keep: set[Path]) -> None:
    for folder in (dest / bc.SHORT_AUDIO_DIR, dest / bc.SOUNDSCAPES_DIR):
        for path in folder.rglob("*.ogg") if folder.is_dir() else ():
            if path not in keep:
                path.unlink()


def synthesize(*, dest: str | Path, config: SynthConfig = SynthConfig(), species_csv: Path | None = None,
               workers: int = 0) -> SynthSummary:
    """Write the synthetic dataset to `dest` in BirdCLEF 2021 layout (overwrites its files).

    workers: processes rendering audio (0 = one per CPU core; 1 = in this process). The output does not
    depend on it."""
    dest = Path(dest)
    plan = plan_dataset(config, species_csv=species_csv)
    dest.mkdir(parents=True, exist_ok=True)
    previous = (dest / SYNTH_MANIFEST).is_file()
    (dest / SYNTH_MANIFEST).unlink(missing_ok=True)
    # longest first, so the pool's last jobs are short
    jobs: list[RecordingPlan | SoundscapePlan] = sorted([*plan.soundscapes, *plan.recordings],
                                                        key=lambda p: -float(p.seconds))
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        for job in jobs:
            _render_and_write(dest, job, plan.voices, config)
    else:
        # fork is fast, but not once TensorFlow's threads exist (as in birdlab.features.cache)
        context = get_context("spawn" if "tensorflow" in sys.modules else "fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for future in [pool.submit(_render_and_write, dest, job, plan.voices, config) for job in jobs]:
                future.result()
    if previous:  # a dataset synthesised before: its audio files that this one does not write are stale
        _remove_stale_audio(dest, keep={dest / job.relative_path for job in jobs})
    write_csv_files(plan, dest=dest)
    manifest = {"format_version": SYNTH_FORMAT_VERSION, "config": config.to_dict(),
                "species": [s.ebird_code for s in plan.species]}
    (dest / SYNTH_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    codes = {s.ebird_code for s in plan.species}
    windows = [w for s in plan.soundscapes for w in s.windows]
    return SynthSummary(dest=dest, species=len(plan.species), recordings=len(plan.recordings),
                        soundscapes=len(plan.soundscapes), soundscape_rows=len(windows),
                        nocall_rows=sum(1 for w in windows if not w),
                        positive_rows=sum(1 for w in windows if codes.intersection(w)))


def is_synthesized(dest: str | Path, *, config: SynthConfig) -> bool:
    """True when `dest` holds a complete synthetic dataset made with this exact config."""
    manifest = Path(dest) / SYNTH_MANIFEST
    if not manifest.is_file():
        return False
    try:
        saved = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return saved.get("format_version") == SYNTH_FORMAT_VERSION and saved.get("config") == config.to_dict()


def ensure_synthetic(*, dest: str | Path, config: SynthConfig = SynthConfig()) -> bool:
    """Synthesise into `dest` unless it already holds this config's dataset; True if it wrote."""
    if is_synthesized(dest, config=config):
        return False
    synthesize(dest=dest, config=config)
    return True
