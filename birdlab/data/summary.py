"""Summaries of a BirdCLEF 2021 directory: the per-species table the demo prints, recording durations and
locations, soundscape label timelines. Pure functions over birdlab.data.birdclef2021 records; the figures
that draw them are birdlab.data.figures'."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from birdlab.data.birdclef2021 import BirdCLEF2021, Recording, SoundscapeRow


@dataclass(frozen=True)
class SpeciesRow:
    ebird_code: str
    common_name: str
    recordings: int
    seconds: float
    soundscape_rows: int


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    species: tuple[SpeciesRow, ...]
    soundscapes: int
    soundscape_rows: int
    nocall_rows: int
    missing_audio: int
    durations_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """float64 (n_recordings,) in metadata order: each recording's length; NaN when missing or unreadable."""

    @property
    def recordings(self) -> int:
        return sum(s.recordings for s in self.species)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.species)

    def to_text(self) -> str:
        """A fixed-width table: species, recordings, seconds, soundscape rows; then totals."""
        lines = [f"dataset: {self.root}",
                 f"{'species':<10} {'common name':<26} {'recordings':>10} {'seconds':>9} {'soundscape rows':>15}"]
        for s in self.species:
            lines.append(f"{s.ebird_code:<10} {s.common_name[:26]:<26} {s.recordings:>10} {s.seconds:>9.1f} "
                         f"{s.soundscape_rows:>15}")
        lines.append(f"{'total':<10} {len(self.species):<26} {self.recordings:>10} {self.seconds:>9.1f} "
                     f"{self.soundscape_rows:>15}")
        lines.append(f"soundscapes: {self.soundscapes} files, {self.soundscape_rows} scored rows, "
                     f"{self.nocall_rows} nocall")
        if self.missing_audio:
            lines.append(f"warning: {self.missing_audio} recording(s) listed in the metadata have no audio file")
        return "\n".join(lines)


def summarize_dataset(root: str | Path) -> DatasetSummary:
    """Count recordings, audio seconds and soundscape rows per primary label."""
    dataset = BirdCLEF2021(root)
    recordings = dataset.recordings()
    rows = dataset.soundscape_rows()
    per_rows = Counter(code for row in rows for code in row.birds)
    counts: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    names: dict[str, str] = {}
    durations_s = recording_durations_s(recordings)
    for rec, duration in zip(recordings, durations_s, strict=True):
        counts[rec.primary_label] += 1
        names.setdefault(rec.primary_label, rec.common_name)
        if np.isfinite(duration):
            seconds[rec.primary_label] = seconds.get(rec.primary_label, 0.0) + float(duration)
    species = tuple(SpeciesRow(code, names[code], counts[code], seconds.get(code, 0.0), per_rows.get(code, 0))
                    for code in sorted(counts))
    return DatasetSummary(root=Path(root), species=species, soundscapes=len(dataset.soundscapes()),
                          soundscape_rows=len(rows), nocall_rows=sum(1 for r in rows if r.is_nocall),
                          missing_audio=int(np.sum(~np.isfinite(durations_s))), durations_s=durations_s)


def recording_durations_s(recordings: Sequence[Recording]) -> np.ndarray:
    """Length of each recording's audio file: float64 seconds, shape (len(recordings),); NaN when unreadable."""
    out = np.full(len(recordings), np.nan)
    for i, rec in enumerate(recordings):
        try:
            out[i] = float(soundfile.info(str(rec.audio_path)).duration)
        except (OSError, RuntimeError, soundfile.LibsndfileError):  # missing or unreadable: NaN
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
