"""Block-by-block decoding gives exactly load_audio's samples, and the same errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from edge_runtime.audio import AudioError, load_audio
from edge_runtime.file_stream import open_audio_stream

RATE = 32000
BLOCK_SECONDS = 0.3
"""Small blocks, so a few seconds of audio cross many block boundaries."""


def _signal(rng: np.random.Generator, *, seconds: float, channels: int) -> np.ndarray:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 1234.5 * t)
    out = np.stack([tone * (1 - 0.3 * c) + 0.05 * rng.standard_normal(n) for c in range(channels)], axis=1)
    return out.astype(np.float32)


@pytest.mark.parametrize(("suffix", "subtype", "channels"), [
    (".wav", "PCM_16", 1), (".wav", "PCM_24", 2), (".wav", "PCM_32", 1), (".wav", "FLOAT", 3), (".wav", "DOUBLE", 1),
    (".wav", "PCM_U8", 1), (".flac", "PCM_16", 2), (".ogg", "VORBIS", 1),
])
def test_streamed_samples_equal_load_audio(tmp_path: Path, rng: np.random.Generator, suffix: str, subtype: str,
                                           channels: int) -> None:
    path = tmp_path / f"a{suffix}"
    soundfile.write(str(path), _signal(rng, seconds=2.1, channels=channels), RATE, subtype=subtype)
    stream = open_audio_stream(path, sample_rate_hz=RATE, block_seconds=BLOCK_SECONDS)
    blocks = list(stream.blocks)
    assert stream.streamed and len(blocks) > 5
    whole = load_audio(path, sample_rate_hz=RATE)
    assert stream.n_samples == whole.size
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


@pytest.mark.parametrize(("suffix", "rate_hz", "channels"), [(".wav", 16000, 1), (".wav", 48000, 2),
                                                         (".flac", 44100, 2), (".ogg", 22050, 1)])
def test_other_rates_are_streamed_and_resampled_exactly_as_load_audio(tmp_path: Path, rng: np.random.Generator,
                                                                      suffix: str, rate_hz: int, channels: int) -> None:
    path = tmp_path / f"a{suffix}"
    n = int(2.1 * rate_hz)
    t = np.arange(n) / rate_hz
    signal = np.stack([0.3 * np.sin(2 * np.pi * 1234.5 * t) * (1 - 0.3 * c) + 0.05 * rng.standard_normal(n)
                       for c in range(channels)], axis=1).astype(np.float32)
    soundfile.write(str(path), signal, rate_hz)
    stream = open_audio_stream(path, sample_rate_hz=RATE, block_seconds=BLOCK_SECONDS)
    blocks = list(stream.blocks)
    assert stream.streamed and len(blocks) > 3
    whole = load_audio(path, sample_rate_hz=RATE)
    assert stream.n_samples == whole.size
    np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_broken_files_raise_load_audios_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty file"):
        list(open_audio_stream(empty, sample_rate_hz=RATE).blocks)
    truncated = tmp_path / "truncated.wav"
    soundfile.write(str(truncated), _signal(rng, seconds=1.0, channels=1), RATE)
    truncated.write_bytes(truncated.read_bytes()[:20000])
    with pytest.raises(AudioError, match="truncated: the header declares"):
        open_audio_stream(truncated, sample_rate_hz=RATE)
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="cannot decode"):
        list(open_audio_stream(garbage, sample_rate_hz=RATE).blocks)
    nan = tmp_path / "nan.wav"
    samples = _signal(rng, seconds=1.0, channels=1)
    samples[RATE // 2] = np.nan
    soundfile.write(str(nan), samples, RATE, subtype="FLOAT")
    stream = open_audio_stream(nan, sample_rate_hz=RATE, block_seconds=0.25)
    assert next(stream.blocks).size == RATE // 4, "blocks before the fault are delivered"
    with pytest.raises(AudioError, match="1 samples are NaN or infinite"):
        list(stream.blocks)
