"""ClipStore: rows of on-disk feature files read batch by batch, bit-identical to the arrays they stand for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from birdlab.features.cache import CropPlan, FeatureCache, FeatureJob, crop_features
from birdlab.features.store import ClipStore, ClipStoreError
from edge_runtime.audio import load_audio
from edge_runtime.spec import FeatureSpec

CLIP_SHAPE = (5, 7)
FILE_ROWS = (3, 1, 4)


def _files(tmp_path: Path, rng: np.random.Generator) -> tuple[list[tuple[Path, int]], np.ndarray]:
    """Three .npy files of random clips and, for comparison, their concatenation in memory."""
    arrays = [rng.normal(-40.0, 12.0, (n, *CLIP_SHAPE)).astype(np.float32) for n in FILE_ROWS]
    files = []
    for i, array in enumerate(arrays):
        np.save(tmp_path / f"f{i}.npy", array)
        files.append((tmp_path / f"f{i}.npy", len(array)))
    return files, np.concatenate(arrays)


def _mapped_paths() -> set[str]:
    with open("/proc/self/maps", encoding="utf-8") as f:
        return {line.split(maxsplit=5)[-1].strip() for line in f if len(line.split()) == 6}


def test_files_read_back_exactly_as_the_concatenated_array(tmp_path: Path, rng: np.random.Generator) -> None:
    files, whole = _files(tmp_path, rng)
    store = ClipStore.from_files(files, clip_shape=CLIP_SHAPE)
    assert store.shape == whole.shape and len(store) == len(whole) and store.resident_bytes == 0
    np.testing.assert_array_equal(store.read(), whole)
    picked = rng.permutation(len(whole))[:5]
    np.testing.assert_array_equal(store.read(picked), whole[picked])
    np.testing.assert_array_equal(store[picked], whole[picked])
    np.testing.assert_array_equal(store[2:6], whole[2:6])
    np.testing.assert_array_equal(store[4], whole[4])
    mask = whole[:, 0, 0] > whole[:, 0, 0].mean()
    np.testing.assert_array_equal(store[mask], whole[mask])
    np.testing.assert_array_equal(np.concatenate(list(store.batches(batch_size=3))), whole)
    np.testing.assert_array_equal(store.take(picked).read(), whole[picked])
    np.testing.assert_array_equal(store[..., None], whole[..., None])
    np.testing.assert_array_equal(np.asarray(store), whole)


def test_concatenation_mixes_files_and_memory_in_order(tmp_path: Path, rng: np.random.Generator) -> None:
    files, whole = _files(tmp_path, rng)
    in_memory = rng.normal(size=(2, *CLIP_SHAPE)).astype(np.float32)
    store = ClipStore.concatenate([ClipStore.from_files(files, clip_shape=CLIP_SHAPE).take([7, 0]),
                                   ClipStore.from_array(in_memory),
                                   ClipStore.empty(clip_shape=CLIP_SHAPE),
                                   ClipStore.from_files(files[1:], clip_shape=CLIP_SHAPE)])
    expected = np.concatenate([whole[[7, 0]], in_memory, whole[3:]])
    np.testing.assert_array_equal(store.read(), expected)
    assert store.resident_bytes == in_memory.nbytes
    with pytest.raises(ValueError, match="different shapes"):
        ClipStore.concatenate([store, ClipStore.from_array(np.zeros((1, 2, 2), np.float32))])


def test_reads_leave_no_file_mapped(tmp_path: Path, rng: np.random.Generator) -> None:
    """Mapped pages count in the resident set while the map lives: a read must unmap what it mapped."""
    files, _ = _files(tmp_path, rng)
    store = ClipStore.from_files(files, clip_shape=CLIP_SHAPE)
    batch = store.read(np.arange(len(store)))
    assert not {str(p) for p, _ in files} & _mapped_paths()
    mapped = np.load(files[0][0], mmap_mode="r")  # the check itself sees a live map
    assert str(files[0][0]) in _mapped_paths()
    del mapped, batch


def test_streamed_mean_and_std_match_numpy(tmp_path: Path, rng: np.random.Generator) -> None:
    arrays = [rng.normal(-50.0 + 10 * i, 5.0 + i, (n, *CLIP_SHAPE)).astype(np.float32) for i, n in enumerate((300, 7, 90))]
    files = []
    for i, array in enumerate(arrays):
        np.save(tmp_path / f"g{i}.npy", array)
        files.append((tmp_path / f"g{i}.npy", len(array)))
    whole = np.concatenate(arrays)
    mean, std = ClipStore.from_files(files, clip_shape=CLIP_SHAPE).mean_std()
    assert mean == pytest.approx(float(np.mean(whole, dtype=np.float64)), rel=1e-12)
    assert std == pytest.approx(float(np.std(whole, dtype=np.float64)), rel=1e-12)
    assert ClipStore.empty(clip_shape=CLIP_SHAPE).mean_std() == (0.0, 0.0)
    re_peak = whole.astype(np.float64) - whole.max(axis=(1, 2), keepdims=True)  # each clip re its own maximum
    mean, std = ClipStore.from_files(files, clip_shape=CLIP_SHAPE).mean_std(re_clip_max=True)
    assert mean == pytest.approx(float(np.mean(re_peak, dtype=np.float64)), rel=1e-12) and mean < 0
    assert std == pytest.approx(float(np.std(re_peak, dtype=np.float64)), rel=1e-12)


def test_a_changed_or_missing_file_is_named(tmp_path: Path, rng: np.random.Generator) -> None:
    files, _ = _files(tmp_path, rng)
    store = ClipStore.from_files(files, clip_shape=CLIP_SHAPE)
    np.save(files[2][0], np.zeros((1, *CLIP_SHAPE), np.float32))  # 4 rows became 1
    with pytest.raises(ClipStoreError, match=r"f2.npy: cached features have shape \(1, 5, 7\).*run it again"):
        store.read([len(store) - 1])
    files[0][0].unlink()
    with pytest.raises(ClipStoreError, match="f0.npy: cannot read cached clip features"):
        store.read([0])


def test_cache_entries_read_through_the_store_equal_features_computed_in_memory(
        tmp_path: Path, rng: np.random.Generator) -> None:
    import soundfile

    spec = FeatureSpec()
    paths = []
    for i, seconds in enumerate((7.0, 3.0, 11.0)):
        samples = (0.1 * rng.standard_normal(int(seconds * spec.sample_rate_hz))).astype(np.float32)
        soundfile.write(tmp_path / f"r{i}.wav", samples, spec.sample_rate_hz, subtype="FLOAT")
        paths.append(tmp_path / f"r{i}.wav")
    plan = CropPlan(crops=3, energy_exponent=1.0, seed=4)
    cache = FeatureCache(spec=spec, root=tmp_path / "cache")
    entries = [cache.load(FeatureJob(p, plan)) for p in paths]
    assert all(isinstance(e.features, np.memmap) for e in entries)
    store = ClipStore.from_files([(e.features_path, e.n_clips) for e in entries], clip_shape=(spec.n_mels,
                                                                                              spec.clip_frames))
    in_memory = np.concatenate([crop_features(load_audio(p, sample_rate_hz=spec.sample_rate_hz), spec=spec,
                                              plan=plan)[0] for p in paths])
    assert in_memory.dtype == np.float32
    np.testing.assert_array_equal(store.read(), in_memory)
