"""Example spectrograms of a dataset: the log-mel of the first model window of a few recordings per species.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from birdlab.data.birdclef2021 import Recording
from birdlab.features.cache import fit_clip
from birdlab.features.log_mel import log_mel
from edge_runtime.audio import AudioError, load_audio
from edge_runtime.spec import FeatureSpec


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
            examples.append(ExampleSpectrogram(rec, log_mel(fit_clip(samples, clip_samples=spec.clip_samples), spec=spec)))
            found += 1
    return examples
