"""Every robustness recording decodes bit-identically with edge_runtime.audio.load_audio and librosa.load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime.audio import load_audio
from edge_runtime.spec import FeatureSpec

SPEC_RATE_HZ = FeatureSpec().sample_rate_hz


@pytest.mark.slow
def test_every_robustness_file_loads_bit_identically_to_librosa(real_audio: Path,
                                                                robustness_sources: list[dict[str, str]]) -> None:
    """At the spec's rate (resampled by soxr HQ as librosa does) and at the file's own rate (no resampling)."""
    import librosa

    assert len(robustness_sources) == 35
    differing = []
    for row in robustness_sources:
        path = real_audio / "robustness" / row["file"]
        for sr in (SPEC_RATE_HZ, None):
            theirs, rate = librosa.load(path, sr=sr)
            if sr is None:
                assert rate == int(row["sample_rate"]), f"{row['file']}: librosa reads {rate} Hz"
            ours = load_audio(path, sample_rate_hz=rate)
            if ours.dtype != theirs.dtype or not np.array_equal(ours, theirs):
                differing.append(f"{row['file']} at {rate} Hz: shapes {ours.shape} vs {theirs.shape}")
    assert not differing, differing
