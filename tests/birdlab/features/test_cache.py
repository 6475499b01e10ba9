"""Clip features on disk: exact log_mel of energetic crops and soundscape windows, cached by content."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdlab.features.cache import (
    CACHE_FORMAT_VERSION,
    CropPlan,
    FeatureCache,
    FeatureJob,
    compute_features,
    content_hash,
)
from birdlab.features.log_mel import log_mel
from edge_runtime.audio import AudioError
from edge_runtime.spec import FeatureSpec

SPEC = FeatureSpec()
RATE = SPEC.sample_rate_hz
BURST_START_S, BURST_END_S = 12.0, 14.0


def _write(path: Path, samples: np.ndarray) -> Path:
    soundfile.write(path, samples.astype(np.float32), RATE, subtype="FLOAT")
    return path


def _burst_recording(rng: np.random.Generator, *, seconds: float = 20.0) -> np.ndarray:
    """Quiet noise with one loud tone between BURST_START_S and BURST_END_S."""
    t = np.arange(int(seconds * RATE)) / RATE
    samples = 1e-3 * rng.standard_normal(t.size)
    burst = (t >= BURST_START_S) & (t < BURST_END_S)
    samples[burst] += 0.5 * np.sin(2 * np.pi * 3000 * t[burst])
    return samples.astype(np.float32)


def test_crops_are_exact_log_mel_and_biased_toward_energy(tmp_path: Path, rng: np.random.Generator) -> None:
    samples = _burst_recording(rng)
    path = _write(tmp_path / "burst.wav", samples)
    cache = FeatureCache(spec=SPEC, root=tmp_path / "cache")
    clips = cache.load(FeatureJob(path, CropPlan(crops=6, energy_exponent=1.0, seed=3)))
    assert clips.features.shape == (6, SPEC.n_mels, SPEC.clip_frames)
    assert clips.features.dtype == np.float32
    for features, start_s in zip(clips.features, clips.starts_s, strict=True):
        start = int(round(start_s * RATE))
        np.testing.assert_array_equal(features, log_mel(samples[start:start + SPEC.clip_samples], spec=SPEC))
        assert start_s < BURST_END_S and start_s + SPEC.clip_seconds > BURST_START_S, "crop misses the call"
    uniform = cache.load(FeatureJob(path, CropPlan(crops=6, energy_exponent=0.0, seed=3)))
    assert any(s + SPEC.clip_seconds <= BURST_START_S or s >= BURST_END_S for s in uniform.starts_s)


def test_short_recording_is_zero_padded(tmp_path: Path, rng: np.random.Generator) -> None:
    samples = (0.1 * rng.standard_normal(2 * RATE)).astype(np.float32)
    path = _write(tmp_path / "short.wav", samples)
    clips = FeatureCache(spec=SPEC, root=tmp_path / "cache").load(FeatureJob(path, CropPlan(4, 1.0, 0)))
    padded = np.concatenate([samples, np.zeros(SPEC.clip_samples - samples.size, np.float32)])
    assert clips.features.shape[0] == 1
    np.testing.assert_array_equal(clips.features[0], log_mel(padded, spec=SPEC))


def test_soundscape_windows_cover_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    samples = (0.1 * rng.standard_normal(12 * RATE)).astype(np.float32)
    path = _write(tmp_path / "scape.wav", samples)
    windows = FeatureCache(spec=SPEC, root=tmp_path / "cache").load(FeatureJob(path))
    np.testing.assert_array_equal(windows.starts_s, [0.0, 5.0, 10.0])
    np.testing.assert_array_equal(windows.features[1], log_mel(samples[5 * RATE:10 * RATE], spec=SPEC))
    last = np.concatenate([samples[10 * RATE:], np.zeros(3 * RATE, np.float32)])
    np.testing.assert_array_equal(windows.features[2], log_mel(last, spec=SPEC))


def test_cache_is_keyed_by_content_and_spec(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _write(tmp_path / "a.wav", _burst_recording(rng, seconds=8.0))
    cache = FeatureCache(spec=SPEC, root=tmp_path / "cache")
    job = FeatureJob(path, CropPlan(2, 1.0, 0))
    first = cache.load(job)
    entries = sorted(cache.directory.glob("*.npy"))
    assert len(entries) == 1 and (cache.directory / "feature_spec.json").is_file()
    assert entries[0].with_suffix(".json").is_file()
    # The cache is read, not recomputed: overwrite the stored features and see them come back.
    np.save(entries[0], np.zeros(first.features.shape, np.float32))
    assert not cache.load(job).features.any()
    # Same bytes under another name: the same entry.
    renamed = path.rename(tmp_path / "renamed.wav")
    assert not cache.load(FeatureJob(renamed, job.plan)).features.any()
    # Another spec: another directory, recomputed with its own shape.
    other = FeatureCache(spec=dataclasses.replace(SPEC, n_mels=32), root=tmp_path / "cache")
    assert other.directory != cache.directory
    assert other.load(FeatureJob(renamed, job.plan)).features.shape == (2, 32, SPEC.clip_frames)


@pytest.mark.slow
def test_parallel_equals_serial_and_reports_bad_audio(tmp_path: Path, rng: np.random.Generator) -> None:
    paths = [_write(tmp_path / f"r{i}.wav", _burst_recording(rng, seconds=7.0 + i)) for i in range(3)]
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"OggS" + bytes(100))
    jobs = [FeatureJob(p, CropPlan(2, 1.0, 1)) for p in paths] + [FeatureJob(broken, CropPlan(2, 1.0, 1))]
    parallel = compute_features(jobs, cache=FeatureCache(spec=SPEC, root=tmp_path / "c1"), workers=2, progress=False)
    serial = compute_features(jobs, cache=FeatureCache(spec=SPEC, root=tmp_path / "c2"), workers=1, progress=False)
    assert isinstance(parallel[-1], AudioError) and isinstance(serial[-1], AudioError)
    for a, b in zip(parallel[:-1], serial[:-1], strict=True):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.starts_s, b.starts_s)


def test_same_audio_in_another_container_gives_the_same_crops(tmp_path: Path, rng: np.random.Generator) -> None:
    samples = np.round(_burst_recording(rng, seconds=9.0) * 32767) / 32768  # exact in 16-bit PCM
    wav, flac = tmp_path / "a.wav", tmp_path / "a.flac"
    soundfile.write(wav, samples, RATE, subtype="PCM_16")
    soundfile.write(flac, samples, RATE, subtype="PCM_16")
    cache = FeatureCache(spec=SPEC, root=tmp_path / "cache")
    plan = CropPlan(crops=3, energy_exponent=1.0, seed=5)
    from_wav, from_flac = cache.load(FeatureJob(wav, plan)), cache.load(FeatureJob(flac, plan))
    assert len(list(cache.directory.glob("*.npy"))) == 2  # two files, two cache entries
    np.testing.assert_array_equal(from_wav.starts_s, from_flac.starts_s)
    np.testing.assert_array_equal(from_wav.features, from_flac.features)


def test_entries_of_an_older_format_or_torn_are_recomputed(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _write(tmp_path / "a.wav", _burst_recording(rng, seconds=8.0))
    cache = FeatureCache(spec=SPEC, root=tmp_path / "cache")
    job = FeatureJob(path, CropPlan(2, 1.0, 0))
    entry = cache.entry_path(job, file_hash=content_hash(path))
    assert entry.name.endswith(f".v{CACHE_FORMAT_VERSION}.npy")
    # Format 1 (one .npz, no version in the name) is never read.
    old = entry.parent / entry.name.replace(f".v{CACHE_FORMAT_VERSION}.npy", ".npz")
    old.parent.mkdir(parents=True)
    np.savez(old, features=np.zeros((2, SPEC.n_mels, SPEC.clip_frames), np.float32), starts_s=np.zeros(2),
             duration_s=8.0)
    assert not cache.is_cached(job)
    fresh = cache.load(job)
    assert fresh.features.any() and fresh.features_path == entry and cache.is_cached(job)
    # Features without their metadata (a run killed between the two writes) are recomputed.
    entry.with_suffix(".json").unlink()
    np.save(entry, np.zeros((2, SPEC.n_mels, SPEC.clip_frames), np.float32))
    np.testing.assert_array_equal(cache.load(job).features, fresh.features)
    # Features whose shape disagrees with the metadata are recomputed.
    np.save(entry, np.zeros((1, SPEC.n_mels, SPEC.clip_frames), np.float32))
    np.testing.assert_array_equal(cache.load(job).features, fresh.features)
