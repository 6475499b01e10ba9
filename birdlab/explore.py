"""Tables behind the data notebook: durations, example spectrograms, soundscape label timelines.

Pure functions over `birdlab.data` records; the figures that draw them live in `birdlab.plots`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from birdlab.audio import AudioError, load_audio
from birdlab.data import Recording, SoundscapeRow
from birdlab.features import FeatureSpec, log_mel


def recording_durations_s(recordings: Sequence[Recording]) -> np.ndarray:
    """Length of each recording's audio file: float64 seconds, shape (len(recordings),); NaN when unreadable."""
    import soundfile

    out = np.full(len(recordings), np.nan)
    for i, rec in enumerate(recordings):
        try:
            out[i] = float(soundfile.info(str(rec.audio_path)).duration)
        except (OSError, RuntimeError, soundfile.LibsndfileError):
            continue
    return out


def recording_locations(recordings: Iterable[Recording]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(latitude, longitude, primary label) of the recordings that have coordinates.

    Returns float64 arrays of shape (n,) and a tuple of n labels.
    """
    located = [r for r in recordings if r.latitude is not None and r.longitude is not None]
    latitude = np.array([r.latitude for r in located], dtype=np.float64)
    longitude = np.array([r.longitude for r in located], dtype=np.float64)
    return latitude, longitude, tuple(r.primary_label for r in located)


def first_clip(samples: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """The first model window of `samples`, zero-padded when shorter: float32 (spec.clip_samples,)."""
    clip = np.zeros(spec.clip_samples, dtype=np.float32)
    head = np.asarray(samples, dtype=np.float32)[: spec.clip_samples]
    clip[: head.size] = head
    return clip


@dataclass(frozen=True)
class ExampleSpectrogram:
    """The log-mel of the first window of one recording."""

    recording: Recording
    log_mel_db: np.ndarray
    """float32 dB, shape (spec.n_mels, spec.clip_frames)."""


def example_spectrograms(
    recordings: Sequence[Recording], *, spec: FeatureSpec, codes: Sequence[str], per_species: int = 1
) -> list[ExampleSpectrogram]:
    """Up to `per_species` examples for each code in `codes`, in that order (first recordings in metadata order).

    Recordings whose audio is missing or unreadable are passed over.
    """
    if per_species < 1:
        raise ValueError(f"per_species must be >= 1, got {per_species}")
    examples: list[ExampleSpectrogram] = []
    for code in codes:
        found = 0
        for rec in recordings:
            if found == per_species:
                break
            if rec.primary_label != code:
                continue
            try:
                samples = load_audio(rec.audio_path, sample_rate_hz=spec.sample_rate_hz)
            except AudioError:
                continue
            examples.append(ExampleSpectrogram(rec, log_mel(first_clip(samples, spec=spec), spec=spec)))
            found += 1
    return examples


@dataclass(frozen=True)
class LabelTimeline:
    """Which species are labelled in each scored 5-s window of one soundscape."""

    audio_id: int
    codes: tuple[str, ...]
    """Row order of `presence`."""
    window_end_s: np.ndarray
    """int64, shape (n_windows,): end of each window in seconds (the `seconds` column), ascending."""
    presence: np.ndarray
    """bool, shape (len(codes), n_windows)."""

    @property
    def nocall_windows(self) -> int:
        return int(np.sum(~self.presence.any(axis=0)))


def label_timeline(rows: Iterable[SoundscapeRow], *, audio_id: int, codes: Sequence[str],
                   site: str | None = None) -> LabelTimeline:
    """The label timeline of soundscape (`audio_id`, `site`); labels outside `codes` are ignored.

    site: needed only when rows of two sites share `audio_id`.
    Raises ValueError when no row belongs to it, or when `site` is None and two sites share `audio_id`.
    """
    mine = sorted((r for r in rows if r.audio_id == audio_id and site in (None, r.site)), key=lambda r: r.seconds)
    if not mine:
        raise ValueError(f"no soundscape label row has audio_id {audio_id}" + (f" at site {site}" if site else ""))
    sites = sorted({r.site for r in mine})
    if len(sites) > 1:
        raise ValueError(f"audio_id {audio_id} is used at sites {', '.join(sites)}; pass site=")
    index = {code: i for i, code in enumerate(codes)}
    presence = np.zeros((len(codes), len(mine)), dtype=bool)
    for w, row in enumerate(mine):
        for bird in row.birds:
            if bird in index:
                presence[index[bird], w] = True
    return LabelTimeline(audio_id=audio_id, codes=tuple(codes), window_end_s=np.array([r.seconds for r in mine]),
                         presence=presence)



def species_with_recordings(recordings: Iterable[Recording], *, codes: Sequence[str]) -> tuple[str, ...]:
    """The codes (in the given order, e.g. the label order) that are the primary label of at least one recording."""
    present = {r.primary_label for r in recordings}
    return tuple(code for code in codes if code in present)
