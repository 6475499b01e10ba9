"""The C++ real FFT (double precision, mixed radix 8/4/2/3/5) against numpy.fft.rfft, known answers,
and the refusal of lengths that are not 2^a * 3^b * 5^c."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from edge_runtime.frontend import FrontendError, MelFrontend
from edge_runtime.spec import FeatureSpec

FFT_RTOL = 1e-13
"""Largest |C++ - numpy| relative to max |numpy| (double precision leaves ~1e-15)."""
SMOOTH_SIZES = (2, 3, 4, 5, 6, 8, 9, 12, 15, 16, 25, 30, 45, 64, 75, 81, 100, 125, 128, 243, 256, 320, 360, 375, 400,
                480, 512, 625, 640, 960, 1000, 1024, 1215, 2048, 3000, 4096)


def _fft_spec(n_fft: int) -> FeatureSpec:
    return dataclasses.replace(FeatureSpec(), n_fft=n_fft, win_length=n_fft, hop_length=min(320, n_fft))


@pytest.mark.parametrize("n_fft", SMOOTH_SIZES)
def test_rfft_matches_numpy(n_fft: int, frontend_for, rng: np.random.Generator) -> None:
    frame = rng.standard_normal(n_fft)
    expected = np.fft.rfft(frame)
    got = frontend_for(_fft_spec(n_fft)).rfft(frame)
    assert got.shape == (n_fft // 2 + 1,)
    assert np.abs(got - expected).max() <= FFT_RTOL * np.abs(expected).max()


@pytest.mark.parametrize("n_fft", [6, 512, 1000, 1024, 1215])
def test_rfft_known_answers(n_fft: int, frontend_for) -> None:
    frontend = frontend_for(_fft_spec(n_fft))
    impulse = np.zeros(n_fft)
    impulse[0] = 1.0
    np.testing.assert_allclose(frontend.rfft(impulse), np.ones(n_fft // 2 + 1), rtol=0, atol=1e-15)
    k = n_fft // 3
    cosine = np.cos(2 * np.pi * k * np.arange(n_fft) / n_fft)
    spectrum = frontend.rfft(cosine)
    assert abs(spectrum[k] - n_fft / 2) <= FFT_RTOL * n_fft
    others = np.delete(spectrum, k)
    assert np.abs(others).max() <= FFT_RTOL * n_fft


@pytest.mark.parametrize("n_fft", [7, 14, 1022, 1023, 1025])
def test_unsupported_fft_length_is_refused(n_fft: int, melspec_wasm, tmp_path) -> None:
    # FeatureSpec itself refuses these sizes, so hand the module the fields directly.
    fields = {**dataclasses.asdict(FeatureSpec()), "n_fft": n_fft, "win_length": n_fft}
    with pytest.raises(FrontendError, match=r"2\^a \* 3\^b \* 5\^c") as info:
        MelFrontend.load(melspec_wasm, spec=SimpleNamespace(**fields), cache_dir=tmp_path)
    assert info.value.code == -2
