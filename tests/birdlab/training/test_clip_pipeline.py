"""Training never holds the whole feature set: clips stay in the cache and the pipeline reads them a batch at a time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from birdlab.features.cache import FeatureCache
from birdlab.features.store import ClipStore
from birdlab.training.config import tiny
from birdlab.training.dataset import LabelledClips, prepare_training_data, with_negatives
from edge_runtime.spec import FeatureSpec

SPEC = FeatureSpec()
N_SPECIES = 3
BATCH = 8


@dataclasses.dataclass(frozen=True, eq=False)
class CountingStore(ClipStore):
    """A ClipStore that records how many clips each read asked for."""

    reads: list[int] = dataclasses.field(default_factory=list)

    def read(self, indices: np.ndarray | list[int] | None = None) -> np.ndarray:
        out = super().read(indices)
        self.reads.append(len(out))
        return out


def _clips_on_disk(tmp_path: Path, rng: np.random.Generator, *, n_files: int = 9,
                   per_file: int = 5) -> tuple[LabelledClips, np.ndarray]:
    """n_files * per_file labelled clips in .npy files, as a CountingStore; and the same features in memory."""
    arrays = [rng.uniform(-80.0, 0.0, (per_file, SPEC.n_mels, SPEC.clip_frames)).astype(np.float32)
              for _ in range(n_files)]
    for i, array in enumerate(arrays):
        np.save(tmp_path / f"clips{i}.npy", array)
    base = ClipStore.from_files([(tmp_path / f"clips{i}.npy", per_file) for i in range(n_files)],
                                clip_shape=(SPEC.n_mels, SPEC.clip_frames))
    store = CountingStore(base.sources, base.source_index, base.rows, base.clip_shape)
    n = n_files * per_file
    targets = np.eye(N_SPECIES, dtype=np.float32)[np.arange(n) % N_SPECIES]
    clips = LabelledClips(store, targets, targets.astype(bool), np.ones(n, np.float32), [f"c{i}" for i in range(n)])
    return clips, np.concatenate(arrays)


def test_training_batches_are_read_one_batch_at_a_time(tmp_path: Path, rng: np.random.Generator) -> None:
    """Regression: a pipeline built from the whole array (from_tensor_slices) reads every clip at once."""
    from birdlab.training.train import make_train_dataset

    clips, _ = _clips_on_disk(tmp_path, rng)
    config = dataclasses.replace(tiny(), batch_size=BATCH)
    ds = make_train_dataset(clips, config=config, spec=SPEC, noise_bank=np.zeros((0, SPEC.n_mels, SPEC.clip_frames)))
    store = clips.features
    assert isinstance(store, CountingStore) and not store.reads  # building the pipeline reads nothing
    batches = list(ds)
    assert len(batches) == len(clips) // BATCH
    assert store.reads and max(store.reads) <= BATCH
    assert sum(store.reads) == len(batches) * BATCH


def test_training_batches_hold_the_stored_clips_in_seeded_order(tmp_path: Path, rng: np.random.Generator) -> None:
    """With augmentation off, batches are exact rows of the store: same seed -> same batches, another -> not."""
    from birdlab.training.augment import AugmentConfig
    from birdlab.training.train import make_train_dataset

    clips, whole = _clips_on_disk(tmp_path, rng)
    config = dataclasses.replace(tiny(), batch_size=BATCH, augment=AugmentConfig.off())
    empty_bank = np.zeros((0, SPEC.n_mels, SPEC.clip_frames), np.float32)

    def epoch(seed: int) -> list[tuple[np.ndarray, ...]]:
        ds = make_train_dataset(clips, config=dataclasses.replace(config, seed=seed), spec=SPEC, noise_bank=empty_bank)
        return [tuple(t.numpy() for t in batch) for batch in ds]

    first, again, other = epoch(1), epoch(1), epoch(2)
    for batch, batch_again in zip(first, again, strict=True):
        for a, b in zip(batch, batch_again, strict=True):
            np.testing.assert_array_equal(a, b)
    seen = np.concatenate([x[..., 0] for x, _, _ in first])
    index = {whole[i].tobytes(): i for i in range(len(whole))}
    order = [index[clip.tobytes()] for clip in seen]  # every batch row is one stored clip, bit for bit
    assert len(set(order)) == len(order)
    np.testing.assert_array_equal(np.concatenate([y for _, y, _ in first]), clips.targets[order])
    assert order != sorted(order)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


def test_evaluation_predicts_batch_by_batch(tmp_path: Path, rng: np.random.Generator) -> None:
    import keras

    from birdlab.training.evaluate import PREDICT_BATCH, predict

    clips, whole = _clips_on_disk(tmp_path, rng, n_files=30, per_file=5)
    assert len(clips) > PREDICT_BATCH
    model = keras.Sequential([keras.Input((SPEC.n_mels, SPEC.clip_frames, 1)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(N_SPECIES, activation="sigmoid")])
    probabilities = predict(model, clips)
    assert max(clips.features.reads) <= PREDICT_BATCH
    np.testing.assert_allclose(probabilities, model.predict(whole[..., None], verbose=0), rtol=1e-6, atol=1e-7)


def test_prepared_data_refers_to_the_cache_instead_of_holding_it(synthetic_quick: Path, tmp_path: Path) -> None:
    """Regression: the training data used to be one concatenated float32 array per set."""
    config = tiny()
    cache = FeatureCache(spec=SPEC, root=tmp_path / "cache")
    data = prepare_training_data(data_dir=synthetic_quick, config=config, spec=SPEC, cache=cache, progress=False)
    for clips in (data.train, data.validation, data.validation_rows, data.test_rows):
        assert isinstance(clips.features, ClipStore)
        assert clips.features.resident_bytes == 0, "features copied into memory"
    assert len(data.train) and len(data.test_rows)
    # In memory: the synthetic noise clips only; the soundscape nocall rows stay in the cache.
    clip_bytes = 4 * SPEC.n_mels * SPEC.clip_frames
    assert data.noise_bank.resident_bytes == config.synthetic_noise_clips * clip_bytes
    nocall_rows = int((~data.validation_rows.truth.any(axis=1)).sum())
    assert len(data.noise_bank) == nocall_rows + config.synthetic_noise_clips
    # The negatives refer to the bank's rows, not copies of them.
    bank = data.noise_bank.read()
    with_bank = with_negatives(data.train, bank, fraction=0.5, seed=config.seed)
    assert len(with_bank) > len(data.train)
    assert with_bank.features.resident_bytes == bank.nbytes
    # The rows read back are the cache entries, bit for bit.
    entries = sorted(cache.directory.glob("*.npy"))
    stored = {clip.tobytes() for e in entries for clip in np.load(e)}
    assert all(clip.tobytes() in stored for clip in data.train.features.read())


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_with_negatives_appends_background_rows(rng: np.random.Generator, fraction: float) -> None:
    clips = LabelledClips(rng.normal(size=(4, 2, 3)).astype(np.float32), np.eye(4, 2, dtype=np.float32),
                          np.eye(4, 2, dtype=bool), np.ones(4, np.float32), list("abcd"))
    bank = rng.normal(size=(3, 2, 3)).astype(np.float32)
    out = with_negatives(clips, bank, fraction=fraction, seed=0)
    assert len(out) == 4 + round(4 * fraction)
    np.testing.assert_array_equal(out.features.read(np.arange(4)), clips.features.read())
    if fraction:
        negatives = out.features.read(np.arange(4, len(out)))
        assert all(any(np.array_equal(n, b) for b in bank) for n in negatives)
        assert not out.targets[4:].any()
