"""Audio loading for the lab: the same `load_audio` the device uses, plus batch loading
that reports bad files and never aborts a run for one of them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.audio import AUDIO_SUFFIXES, AudioError, decode_pcm, load_audio, resample

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioError",
    "SkipReport",
    "decode_pcm",
    "find_audio_files",
    "iter_audio",
    "load_audio",
    "resample",
]

log = logging.getLogger(__name__)


@dataclass
class SkipReport:
    """Files skipped during a run, with the reason for each."""

    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, error: AudioError) -> None:
        self.skipped.append((error.path, error.reason))
        log.warning("skipped %s: %s", error.path, error.reason)

    def summary(self) -> str:
        """One line, then one line per skipped file."""
        head = f"{self.loaded} file(s) loaded, {len(self.skipped)} skipped"
        return "\n".join([head] + [f"  skipped {path}: {reason}" for path, reason in self.skipped])


def find_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus audio files (wav/flac/ogg/mp3) found under directories, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES))
        else:
            found.append(p)
    return found


def iter_audio(
    paths: Iterable[str | Path], *, sample_rate_hz: int, report: SkipReport
) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield (path, float32 samples (n,)) for each loadable file; record the others in `report`."""
    for path in paths:
        try:
            samples = load_audio(path, sample_rate_hz=sample_rate_hz)
        except AudioError as exc:
            report.add(exc)
            continue
        report.loaded += 1
        yield Path(path), samples
