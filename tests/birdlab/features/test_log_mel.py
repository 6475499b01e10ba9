"""Known answers for the librosa reference frontend (birdlab.features.log_mel.log_mel)."""

import dataclasses

import numpy as np
import pytest

from birdlab.features.log_mel import FeatureSpec, log_mel, mel_filterbank

SPEC = FeatureSpec()


def _tone(freq_hz: float, *, seconds: float, spec: FeatureSpec) -> np.ndarray:
    t = np.arange(int(seconds * spec.sample_rate_hz)) / spec.sample_rate_hz
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.mark.parametrize("freq_hz", [440.0, 1000.0, 3000.0, 7500.0, 12000.0])
@pytest.mark.parametrize("htk", [False, True])
def test_pure_tone_peaks_in_the_band_that_contains_it(freq_hz, htk):
    spec = dataclasses.replace(SPEC, htk=htk)
    db = log_mel(_tone(freq_hz, seconds=1.0, spec=spec), spec=spec)
    weights = mel_filterbank(spec=spec)
    bin_of_tone = int(round(freq_hz * spec.n_fft / spec.sample_rate_hz))
    bands_with_tone = np.flatnonzero(weights[:, bin_of_tone] > 0)
    peak_band = int(np.argmax(db[:, db.shape[1] // 2]))
    assert peak_band in bands_with_tone, (peak_band, bands_with_tone)


@pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning")
@pytest.mark.parametrize("n_samples", [1, 319, 320, 1023, 1024, 16001, 160000])
def test_frame_count_is_one_plus_n_over_hop_with_centering(n_samples, rng):
    samples = rng.standard_normal(n_samples).astype(np.float32) * 0.1
    db = log_mel(samples, spec=SPEC)
    assert db.shape == (SPEC.n_mels, 1 + n_samples // SPEC.hop_length)
    assert db.dtype == np.float32


def test_matches_a_from_scratch_numpy_computation(rng):
    """An independent path: frame, window, rfft, |.|^2, mel weights, 10 log10, top_db."""
    spec = SPEC
    x = (rng.standard_normal(8000) * 0.2).astype(np.float32)
    pad = spec.n_fft // 2
    padded = np.pad(x.astype(np.float64), (pad, pad))
    n_frames = 1 + x.size // spec.hop_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(spec.n_fft) / spec.n_fft)  # periodic Hann
    frames = np.stack([padded[i * spec.hop_length : i * spec.hop_length + spec.n_fft] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = mel_filterbank(spec=spec).astype(np.float64) @ power.T
    db = 10 * np.log10(np.maximum(spec.db_amin, mel)) - 10 * np.log10(spec.db_ref)
    db = np.maximum(db, db.max() - spec.top_db)
    np.testing.assert_allclose(log_mel(x, spec=spec), db, atol=1e-3)


def test_silence_is_the_amin_floor():
    db = log_mel(np.zeros(4000, dtype=np.float32), spec=SPEC)
    assert np.all(db == db.flat[0])
    np.testing.assert_allclose(db, 10 * np.log10(SPEC.db_amin), atol=1e-4)


def test_top_db_limits_the_dynamic_range(rng):
    x = _tone(1000.0, seconds=0.5, spec=SPEC)
    db = log_mel(x, spec=SPEC)
    assert db.max() - db.min() == pytest.approx(SPEC.top_db, abs=1e-3)


def test_rejects_stereo_and_empty_input():
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 100), dtype=np.float32), spec=SPEC)
    with pytest.raises(ValueError, match="empty"):
        log_mel(np.zeros(0, dtype=np.float32), spec=SPEC)
