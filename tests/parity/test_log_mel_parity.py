"""librosa (birdlab.features.log_mel.log_mel) and melspec.wasm (MelFrontend) on the same edge-case signals,
for several specs: every cell within MEL_DB_ATOL, same shape, and the same refusals."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import librosa
import numpy as np
import pytest

from birdlab.features.log_mel import log_mel
from birdlab.frontend.parity import MEL_DB_ATOL, compare_log_mel
from edge_runtime.frontend import FrontendError
from edge_runtime.spec import FeatureSpec

BASE = FeatureSpec()
SPECS = {
    "default": BASE,
    "nfft512_hop160_mels40": dataclasses.replace(BASE, n_fft=512, win_length=512, hop_length=160, n_mels=40),
    "nfft2048_hop512_mels128": dataclasses.replace(BASE, n_fft=2048, win_length=2048, hop_length=512, n_mels=128),
    "htk_no_norm": dataclasses.replace(BASE, htk=True, mel_norm=None),
    "reflect": dataclasses.replace(BASE, pad_mode="reflect"),
    "reflect_nfft512_hop256": dataclasses.replace(BASE, pad_mode="reflect", n_fft=512, win_length=512,
                                                  hop_length=256, n_mels=40),
    "reflect_hop700_above_half_n_fft": dataclasses.replace(BASE, pad_mode="reflect", hop_length=700),
    "sr16k_nfft400_win320": dataclasses.replace(BASE, sample_rate_hz=16000, n_fft=400, win_length=320,
                                                hop_length=160, n_mels=40, fmin_hz=0.0, fmax_hz=8000.0),
    "odd_nfft375_htk": dataclasses.replace(BASE, sample_rate_hz=16000, n_fft=375, win_length=375, hop_length=125,
                                           n_mels=32, fmax_hz=8000.0, htk=True),
    "magnitude_ref_no_top_db": dataclasses.replace(BASE, power=1.0, db_ref=0.5, db_amin=1e-5, top_db=None),
    "uncentred": dataclasses.replace(BASE, center=False),
}

Signal = Callable[[FeatureSpec, np.random.Generator], np.ndarray]


def _seconds(spec: FeatureSpec, seconds: float) -> np.ndarray:
    return np.arange(int(spec.sample_rate_hz * seconds)) / spec.sample_rate_hz


def _tone(spec: FeatureSpec, freqs_hz, *, seconds: float = 0.6, amplitude: float = 0.5) -> np.ndarray:
    t = _seconds(spec, seconds)
    return amplitude * sum(np.sin(2 * np.pi * f * t) for f in freqs_hz) / len(freqs_hz)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    pink = np.fft.irfft(spectrum, n)
    return 0.5 * pink / np.abs(pink).max()


def _band_centres(spec: FeatureSpec) -> np.ndarray:
    centres = librosa.mel_frequencies(n_mels=spec.n_mels + 2, fmin=spec.fmin_hz, fmax=spec.fmax_hz, htk=spec.htk)[1:-1]
    return centres[[1, spec.n_mels // 2, spec.n_mels - 2]]


def _chirp(spec: FeatureSpec) -> np.ndarray:
    t = _seconds(spec, 0.8)
    f0, f1 = max(spec.fmin_hz, 20.0), spec.fmax_hz
    return 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))


SIGNALS: dict[str, Signal] = {
    "silence": lambda spec, rng: np.zeros(spec.sample_rate_hz // 2),
    "one_sample": lambda spec, rng: np.array([0.5]),
    "fewer_than_n_fft": lambda spec, rng: rng.uniform(-0.5, 0.5, spec.n_fft // 2 + 37),
    "exactly_n_fft": lambda spec, rng: rng.uniform(-0.5, 0.5, spec.n_fft),
    "dc_offset": lambda spec, rng: 0.25 + 0.01 * rng.standard_normal(spec.sample_rate_hz // 2),
    "full_scale_clipping": lambda spec, rng: np.clip(4.0 * _tone(spec, [997.0], amplitude=1.0), -1.0, 1.0),
    "white_noise": lambda spec, rng: 0.3 * rng.standard_normal(spec.sample_rate_hz // 2),
    "pink_noise": lambda spec, rng: _pink(spec.sample_rate_hz // 2, rng),
    "tones_at_band_centres": lambda spec, rng: _tone(spec, _band_centres(spec)),
    "tone_at_fmax": lambda spec, rng: _tone(spec, [spec.fmax_hz]),
    "chirp": lambda spec, rng: _chirp(spec),
    "very_quiet_minus_90_dbfs": lambda spec, rng: 10 ** (-90 / 20) * np.sqrt(2) * _tone(spec, [2000.0], amplitude=1.0)
    + 10 ** (-100 / 20) * rng.standard_normal(int(0.6 * spec.sample_rate_hz)),
    "very_loud": lambda spec, rng: 1000.0 * rng.standard_normal(spec.sample_rate_hz // 2),
    "odd_length": lambda spec, rng: 0.3 * rng.standard_normal(spec.sample_rate_hz // 3 | 1),
    "odd_length_short": lambda spec, rng: 0.3 * rng.standard_normal(spec.hop_length + 3),
}


@pytest.mark.filterwarnings("ignore:n_fft=.* is too large:UserWarning")
@pytest.mark.parametrize("signal_name", sorted(SIGNALS))
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_wasm_matches_librosa(spec_name: str, signal_name: str, frontend_for, rng: np.random.Generator) -> None:
    spec = SPECS[spec_name]
    samples = np.asarray(SIGNALS[signal_name](spec, rng), dtype=np.float32)
    frontend = frontend_for(spec)
    if not spec.center and samples.size < spec.n_fft:
        with pytest.raises(librosa.util.exceptions.ParameterError):
            log_mel(samples, spec=spec)
        with pytest.raises(FrontendError, match="n_fft"):
            frontend.log_mel(samples)
        return
    reference = log_mel(samples, spec=spec)
    candidate = frontend.log_mel(samples)
    assert candidate.dtype == np.float32
    assert candidate.shape == reference.shape
    if spec.center and spec.n_fft % 2 == 0:
        assert candidate.shape == (spec.n_mels, spec.n_frames(samples.size))
    figures = compare_log_mel(reference, candidate)
    assert figures["max_abs_db_error"] <= MEL_DB_ATOL, figures


def test_silence_is_the_amin_floor(frontend_for) -> None:
    """Known answer: silence is 10 * log10(amin) dB in every cell."""
    out = frontend_for(BASE).log_mel(np.zeros(BASE.clip_samples, dtype=np.float32))
    assert out.shape == BASE.input_shape[:2]
    np.testing.assert_array_equal(out, np.float32(10 * np.log10(BASE.db_amin)))


def test_tone_peaks_in_its_band(frontend_for) -> None:
    """Known answer: a tone at a band's centre frequency is loudest in that band."""
    centres = librosa.mel_frequencies(n_mels=BASE.n_mels + 2, fmin=BASE.fmin_hz, fmax=BASE.fmax_hz)[1:-1]
    band = 40
    out = frontend_for(BASE).log_mel(_tone(BASE, [centres[band]], seconds=1.0).astype(np.float32))
    assert np.all(np.argmax(out[:, 2:-2], axis=0) == band)


def test_top_db_clips_to_the_window_peak(frontend_for, rng: np.random.Generator) -> None:
    samples = np.concatenate([np.zeros(16000), 0.5 * rng.standard_normal(16000)]).astype(np.float32)
    out = frontend_for(BASE).log_mel(samples)
    assert out.min() == pytest.approx(out.max() - BASE.top_db, abs=1e-4)


def test_fraction_bit_identical_is_reported(frontend_for, rng: np.random.Generator) -> None:
    """The comparison counts float32 cells equal bit for bit (a different bit pattern is not identical)."""
    samples = (0.3 * rng.standard_normal(BASE.sample_rate_hz)).astype(np.float32)
    reference = log_mel(samples, spec=BASE)
    candidate = frontend_for(BASE).log_mel(samples)
    figures = compare_log_mel(reference, candidate)
    assert 0.0 < figures["fraction_bit_identical"] <= 1.0
    nudged = candidate.copy()
    nudged[0, 0] = np.nextafter(nudged[0, 0], np.float32(np.inf))
    assert compare_log_mel(candidate, nudged)["fraction_bit_identical"] == 1.0 - 1.0 / candidate.size
