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


def test_a_complete_mp3_whose_header_overstates_its_length_is_not_called_truncated(real_audio: Path) -> None:
    """libsndfile estimates an MP3's length from its headers: this complete 10.0-s file declares 10.3 s. The
    device's block-wise stream must read it whole without calling it truncated (a half file still is: see
    tests/edge_runtime/test_nothing_silent.py)."""
    from edge_runtime.file_stream import open_audio_stream

    path = real_audio / "robustness" / "opso_XC135601_golden-winged_warbler_stereo_10s.mp3"
    if not path.is_file():
        pytest.skip(f"{path} is not in this copy of the real-audio set")
    streamed = np.concatenate(list(open_audio_stream(path, sample_rate_hz=32000).blocks))
    np.testing.assert_array_equal(streamed, load_audio(path, sample_rate_hz=32000))
