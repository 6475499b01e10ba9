"""Clip features that stay on disk: a ClipStore names rows of feature files and reads them batch by batch.

A training set is a list of row references, (source, row), into the feature cache's `.npy`
entries (or into a few small in-memory arrays, such as the background-noise bank). Nothing
holds every clip at once: `read(indices)` maps the files a batch needs, copies its rows out
and unmaps them again. The maps are dropped after each read because a mapped page that has
been touched counts in the process's resident set (VmRSS) for as long as the map lives;
reading through the whole set would otherwise make the peak RSS grow with the dataset even
though the kernel could drop those pages at any time.

Reading the same indices twice gives the same bytes, and a store built from an array reads
back exactly that array, so the on-disk and in-memory paths are interchangeable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdlab.errors import UserError

READ_CHUNK_CLIPS = 256
"""Clips read at a time by the whole-store passes (statistics, iteration)."""


class ClipStoreError(UserError):
    """A feature file of the store is missing or changed since the store was built."""


Source = Path | np.ndarray
"""A `.npy` file of float32 (n, n_mels, frames) clip features, or such an array in memory."""


@dataclass(frozen=True, eq=False)
class ClipStore:
    """n clips of shape clip_shape: clip i is row rows[i] of sources[source_index[i]].

    sources: .npy files (read on demand) or small in-memory float32 arrays, each (m, n_mels, frames).
    source_index: int32 (n,). rows: int64 (n,).
    """

    sources: tuple[Source, ...]
    source_index: np.ndarray
    rows: np.ndarray
    clip_shape: tuple[int, int]
    """(n_mels, frames) of every clip."""

    @classmethod
    def empty(cls, *, clip_shape: tuple[int, int]) -> ClipStore:
        return cls((), np.zeros(0, np.int32), np.zeros(0, np.int64), (int(clip_shape[0]), int(clip_shape[1])))

    @classmethod
    def from_array(cls, features: np.ndarray) -> ClipStore:
        """Every row of an in-memory float32 (n, n_mels, frames) array (kept as it is, not copied)."""
        if features.ndim != 3:
            raise ValueError(f"clip features must be (n, n_mels, frames), got shape {features.shape}")
        n = features.shape[0]
        return cls((features,), np.zeros(n, np.int32), np.arange(n, dtype=np.int64),
                   (int(features.shape[1]), int(features.shape[2])))

    @classmethod
    def from_files(cls, files: Sequence[tuple[Path, int]], *, clip_shape: tuple[int, int]) -> ClipStore:
        """Every row of each (npy file, its row count), in order."""
        counts = np.array([n for _, n in files], dtype=np.int64)
        source_index = np.repeat(np.arange(len(files), dtype=np.int32), counts)
        rows = np.concatenate([np.arange(n, dtype=np.int64) for n in counts]) if len(files) else np.zeros(0, np.int64)
        return cls(tuple(Path(p) for p, _ in files), source_index, rows, (int(clip_shape[0]), int(clip_shape[1])))

    @staticmethod
    def concatenate(stores: Sequence[ClipStore]) -> ClipStore:
        """The clips of `stores`, one after another (sources are shared, not copied)."""
        shapes = {s.clip_shape for s in stores if len(s)}
        if len(shapes) > 1:
            raise ValueError(f"cannot concatenate clips of different shapes {sorted(shapes)}")
        clip_shape = shapes.pop() if shapes else stores[0].clip_shape
        offsets = np.cumsum([0] + [len(s.sources) for s in stores])
        return ClipStore(tuple(src for s in stores for src in s.sources),
                         np.concatenate([s.source_index + o for s, o in zip(stores, offsets, strict=False)])
                         .astype(np.int32),
                         np.concatenate([s.rows for s in stores]).astype(np.int64), clip_shape)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, n_mels, frames), as the array it stands for."""
        return (len(self), *self.clip_shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def resident_bytes(self) -> int:
        """Bytes of clip features this store holds in memory (its in-memory sources)."""
        return sum(int(s.nbytes) for s in self.sources if isinstance(s, np.ndarray))

    def take(self, indices: np.ndarray | Sequence[int]) -> ClipStore:
        """The clips at `indices` (int (k,)), as a store: nothing is read."""
        indices = np.asarray(indices, dtype=np.int64)
        return ClipStore(self.sources, self.source_index[indices], self.rows[indices], self.clip_shape)

    def read(self, indices: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """float32 (k, n_mels, frames): the clips at `indices` (int (k,); None = all, for small stores)."""
        picked = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        out = np.empty((picked.shape[0], *self.clip_shape), np.float32)
        which = self.source_index[picked]
        for source in np.unique(which):
            at = np.flatnonzero(which == source)
            out[at] = self._rows_of(int(source), self.rows[picked[at]])
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """np.asarray(store): every clip, read into memory (for small sets only)."""
        return self.read() if dtype is None else self.read().astype(dtype)

    def __getitem__(self, key: int | slice | np.ndarray | Sequence[int] | tuple) -> np.ndarray:
        """Array-like reads: an int gives (n_mels, frames), a slice/index/bool mask (k, n_mels, frames).

        A tuple key (e.g. `store[..., None]`) reads every clip first: for small sets only.
        """
        if isinstance(key, tuple):
            return self.read()[key]
        if isinstance(key, (int, np.integer)):
            return self.read([int(key)])[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self))[key])
        key = np.asarray(key)
        return self.read(np.flatnonzero(key) if key.dtype == bool else key)

    def batches(self, *, batch_size: int) -> Iterator[np.ndarray]:
        """The clips in order, float32 (<= batch_size, n_mels, frames) at a time."""
        for start in range(0, len(self), batch_size):
            yield self.read(np.arange(start, min(start + batch_size, len(self))))

    def mean_std(self, *, re_clip_max: bool = False) -> tuple[float, float]:
        """Mean and (population) standard deviation of every value, in float64, streamed chunk by chunk.

        re_clip_max: of each value minus its clip's maximum (dB re the clip's peak) instead of the values.
        Chunks are merged with Chan et al.'s pairwise update, so the result does not depend on
        holding the set in memory. Returns (0.0, 0.0) for an empty store.
        """
        count, mean, m2 = 0, 0.0, 0.0
        for chunk in self.batches(batch_size=READ_CHUNK_CLIPS):
            clips = chunk.astype(np.float64)
            if re_clip_max:
                clips -= clips.max(axis=tuple(range(1, clips.ndim)), keepdims=True)
            values = clips.ravel()
            n_b, mean_b = values.size, float(values.mean())
            m2_b = float(np.sum((values - mean_b) ** 2))
            total = count + n_b
            delta = mean_b - mean
            mean += delta * n_b / total
            m2 += m2_b + delta * delta * count * n_b / total
            count = total
        return (mean, float(np.sqrt(m2 / count))) if count else (0.0, 0.0)

    def _rows_of(self, source: int, rows: np.ndarray) -> np.ndarray:
        data = self.sources[source]
        if isinstance(data, np.ndarray):
            return data[rows]
        try:
            mapped = np.load(data, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ClipStoreError(f"{data}: cannot read cached clip features ({exc}); the feature cache changed "
                                 "during the run: run it again") from None
        if mapped.ndim != 3 or mapped.shape[1:] != self.clip_shape or int(rows.max()) >= mapped.shape[0]:
            raise ClipStoreError(f"{data}: cached features have shape {mapped.shape}, expected "
                                 f"(>{int(rows.max())}, {self.clip_shape[0]}, {self.clip_shape[1]}); "
                                 "the feature cache changed during the run: run it again")
        return np.array(mapped[rows], dtype=np.float32)  # a copy: the map goes when `mapped` does, on return
