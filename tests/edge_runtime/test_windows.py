"""Sliding windows: known counts and offsets, overlap, zero-padded tail, chunking does not matter."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.windows import SlidingWindows, sliding_windows, step_samples_for, window_count

CLIP = 160
"""A small clip length in samples (the real one is 160000; the logic is the same)."""


def _ramp(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float32)  # sample value = its position + 1, so 0 means padding


@pytest.mark.parametrize(
    ("n_samples", "step", "expected_starts"),
    [
        (CLIP * 3, CLIP, [0, CLIP, 2 * CLIP]),  # exact fit, no tail
        (CLIP * 3 + 7, CLIP, [0, CLIP, 2 * CLIP, 3 * CLIP]),  # 7-sample tail is padded
        (CLIP * 2, CLIP // 2, [0, 80, 160]),  # 50 % overlap
        (CLIP * 2 + 40, CLIP // 2, [0, 80, 160, 240]),
        (50, CLIP, [0]),  # shorter than a clip: one padded window
        (0, CLIP, []),
    ],
)
def test_window_starts_and_padding(n_samples: int, step: int, expected_starts: list[int]) -> None:
    samples = _ramp(n_samples)
    windows = list(sliding_windows([samples], clip_samples=CLIP, step_samples=step))
    assert [w.start_sample for w in windows] == expected_starts
    assert [w.index for w in windows] == list(range(len(expected_starts)))
    assert window_count(n_samples, clip_samples=CLIP, step_samples=step) == len(expected_starts)
    for w in windows:
        assert w.samples.shape == (CLIP,) and w.samples.dtype == np.float32
        valid = min(CLIP, n_samples - w.start_sample)
        assert w.valid_samples == valid
        np.testing.assert_array_equal(w.samples[:valid], samples[w.start_sample : w.start_sample + valid])
        assert not w.samples[valid:].any(), "the tail must be zero padding"


def test_every_sample_is_covered_exactly_by_back_to_back_windows(rng: np.random.Generator) -> None:
    samples = rng.standard_normal(CLIP * 5 + 33).astype(np.float32)
    windows = list(sliding_windows([samples], clip_samples=CLIP, step_samples=CLIP))
    joined = np.concatenate([w.samples[: w.valid_samples] for w in windows])
    np.testing.assert_array_equal(joined, samples)


@pytest.mark.parametrize("chunk", [1, 7, CLIP - 1, CLIP, CLIP * 3 + 1])
def test_chunked_stream_gives_the_same_windows(rng: np.random.Generator, chunk: int) -> None:
    samples = rng.standard_normal(CLIP * 4 + 50).astype(np.float32)
    whole = list(sliding_windows([samples], clip_samples=CLIP, step_samples=100))
    windower = SlidingWindows(clip_samples=CLIP, step_samples=100)
    pieces = []
    for start in range(0, samples.size, chunk):
        pieces += windower.push(samples[start : start + chunk])
    pieces += windower.finish()
    assert [w.start_sample for w in pieces] == [w.start_sample for w in whole]
    for a, b in zip(pieces, whole, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        assert a.valid_samples == b.valid_samples


def test_step_from_overlap() -> None:
    assert step_samples_for(clip_samples=160000, overlap_seconds=0.0, sample_rate_hz=32000) == 160000
    assert step_samples_for(clip_samples=160000, overlap_seconds=2.5, sample_rate_hz=32000) == 80000
    with pytest.raises(ValueError, match="overlap_seconds=5"):
        step_samples_for(clip_samples=160000, overlap_seconds=5.0, sample_rate_hz=32000)
    with pytest.raises(ValueError, match="step_samples"):
        SlidingWindows(clip_samples=CLIP, step_samples=CLIP + 1)
