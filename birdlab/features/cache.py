"""5-s clip features on disk: computed once per (feature spec, audio content), in parallel.

Layout: <root>/<spec_hash>/feature_spec.json and one entry per audio file and job, named
by the sha256 of the file's bytes (not its path), so a renamed file hits the cache, an
edited file misses it, and a changed FeatureSpec writes to another directory:

    <root>/<spec_hash>/<content_hash>.crops2-k<crops>-e<exponent>-s<seed>.v2.npy  (train_short_audio)
    <root>/<spec_hash>/<content_hash>.windows.v2.npy                              (soundscapes)

An entry is an uncompressed .npy of the features, float32 (n_clips, n_mels, clip_frames),
which training maps and reads a batch at a time (birdlab.features.store) instead of holding
it, and a .json beside it with the clip starts and the audio duration, written last: an
entry without its .json is incomplete and is recomputed. `.v<CACHE_FORMAT_VERSION>` in the
name retires older formats (format 1 was one .npz per entry): they are never read, and are
recomputed on first use.

Training crops are drawn from each recording with probability proportional to window
energy ** exponent (calls are loud, gaps are quiet), by a generator seeded with the
decoded samples; recordings shorter than a clip are zero-padded at the end. Soundscapes are cut into consecutive windows: the window ending
at `seconds` is the scored row of train_soundscape_labels.csv.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import BinaryIO

import numpy as np

from birdlab import paths
from birdlab.features.log_mel import log_mel
from edge_runtime.audio import AudioError, load_audio
from edge_runtime.bundle import sha256_file
from edge_runtime.spec import FeatureSpec
from edge_runtime.windows import sliding_windows

CROP_STEP_SECONDS = 0.1
"""Spacing of the candidate crop starts."""
ENERGY_FLOOR = 1e-12
"""Added to window energies so silent windows keep a small chance."""
CROP_SCHEME_VERSION = 2
"""Part of the cache key of crops: bump it when the way crops are drawn changes."""
CACHE_FORMAT_VERSION = 2
"""Part of every entry's name: bump it when the layout of an entry on disk changes."""


def default_cache_root() -> Path:
    """data/interim/features (git-ignored)."""
    return paths.INTERIM_DIR / "features"


def content_hash(path: str | Path) -> str:
    """sha256 of the file's bytes, hex, first 20 characters."""
    return sha256_file(Path(path))[:20]


@dataclass(frozen=True)
class CropPlan:
    """How training crops are taken from a recording."""

    crops: int
    """Crops per recording (fewer when the recording has fewer candidate starts)."""
    energy_exponent: float
    """Start probability ~ window energy ** exponent; 0 = uniform."""
    seed: int
    """Combined with the content hash: the same file and seed give the same crops."""

    @property
    def key(self) -> str:
        return f"crops{CROP_SCHEME_VERSION}-k{self.crops}-e{self.energy_exponent:g}-s{self.seed}"


@dataclass(frozen=True)
class ClipFeatures:
    """Log-mel features of the 5-s clips taken from one audio file, as a cache entry on disk."""

    source: Path
    features_path: Path
    """The entry's .npy: float32 dB, shape (n_clips, n_mels, clip_frames), each exactly log_mel(clip)."""
    starts_s: np.ndarray
    """float64, shape (n_clips,): where each clip starts in the file, seconds."""
    duration_s: float
    """Length of the decoded audio, seconds."""

    @property
    def n_clips(self) -> int:
        return int(self.starts_s.shape[0])

    @property
    def features(self) -> np.ndarray:
        """The features, memory-mapped read-only (np.memmap, shape (n_clips, n_mels, clip_frames))."""
        return np.load(self.features_path, mmap_mode="r")


@dataclass(frozen=True)
class FeatureJob:
    """One audio file to turn into clip features: `plan` None means soundscape windows."""

    path: Path
    plan: CropPlan | None = None


def fit_clip(samples: np.ndarray, *, clip_samples: int) -> np.ndarray:
    """The first clip_samples samples, zero-padded at the end when shorter. Shape (clip_samples,)."""
    out = np.zeros(clip_samples, dtype=np.float32)
    n = min(clip_samples, samples.shape[0])
    out[:n] = samples[:n]
    return out


def choose_crop_starts(samples: np.ndarray, *, clip_samples: int, step_samples: int, crops: int,
                       energy_exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Distinct crop starts (samples), sorted; drawn with probability ~ window energy ** exponent.

    samples: float32 (n,). Returns int64 (k,), k = min(crops, candidates); [0] when n <= clip_samples.
    """
    n = samples.shape[0]
    if n <= clip_samples:
        return np.zeros(1, dtype=np.int64)
    candidates = np.arange(0, n - clip_samples + 1, step_samples, dtype=np.int64)
    energy_cumsum = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    energy = energy_cumsum[candidates + clip_samples] - energy_cumsum[candidates]
    weights = (energy / clip_samples + ENERGY_FLOOR) ** energy_exponent
    k = min(crops, candidates.size)
    chosen = rng.choice(candidates.size, size=k, replace=False, p=weights / weights.sum())
    return np.sort(candidates[chosen])


def crop_features(samples: np.ndarray, *, spec: FeatureSpec, plan: CropPlan) -> tuple[np.ndarray, np.ndarray]:
    """(features (k, n_mels, clip_frames), starts_s (k,)) of the training crops of one recording.

    The crops are drawn with a generator seeded by plan.seed and the decoded samples (not the
    file bytes), so the same audio in another container (e.g. a new Ogg serial) gives the same crops.
    """
    samples_hash = hashlib.sha256(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()
    rng = np.random.default_rng([plan.seed, int(samples_hash[:12], 16)])
    starts = choose_crop_starts(samples, clip_samples=spec.clip_samples,
                                step_samples=max(1, int(round(CROP_STEP_SECONDS * spec.sample_rate_hz))),
                                crops=plan.crops, energy_exponent=plan.energy_exponent, rng=rng)
    clips = [fit_clip(samples[s:], clip_samples=spec.clip_samples) for s in starts]
    features = np.stack([log_mel(c, spec=spec) for c in clips])
    return features, starts / spec.sample_rate_hz


def scored_windows(samples: np.ndarray, *, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """The consecutive model windows that BirdCLEF scores (and the device analyses at overlap 0).

    Cut by the edge runtime's own windowing (edge_runtime.windows), so lab and device cut audio alike.
    samples: float32 (n,). Returns (float32 (n_windows, spec.clip_samples), float64 starts_s (n_windows,)),
    n_windows = max(1, ceil(n / clip_samples)); the last window is zero-padded.
    """
    windows = list(sliding_windows([samples], clip_samples=spec.clip_samples, step_samples=spec.clip_samples))
    if not windows:  # empty audio: one silent window, as a file shorter than a clip gets one padded window
        return np.zeros((1, spec.clip_samples), np.float32), np.zeros(1)
    starts = np.array([w.start_sample for w in windows], dtype=np.int64)
    return np.stack([w.samples for w in windows]), starts / spec.sample_rate_hz


def window_features(samples: np.ndarray, *, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """(features (n_windows, n_mels, clip_frames), starts_s (n_windows,)) of scored_windows(samples)."""
    windows, starts_s = scored_windows(samples, spec=spec)
    return np.stack([log_mel(w, spec=spec) for w in windows]), starts_s


class FeatureCache:
    """Clip features of audio files, cached under <root>/<spec_hash>/."""

    def __init__(self, *, spec: FeatureSpec, root: str | Path | None = None) -> None:
        self.spec = spec
        self.root = Path(root) if root is not None else default_cache_root()

    @property
    def directory(self) -> Path:
        return self.root / self.spec.spec_hash

    def entry_path(self, job: FeatureJob, *, file_hash: str) -> Path:
        """The entry's features file (.npy); its metadata is the same name with .json."""
        kind = job.plan.key if job.plan is not None else "windows"
        return self.directory / f"{file_hash}.{kind}.v{CACHE_FORMAT_VERSION}.npy"

    def is_cached(self, job: FeatureJob) -> bool:
        """True when the job's entry is complete on disk (its .json is written last)."""
        return self.entry_path(job, file_hash=content_hash(job.path)).with_suffix(".json").is_file()

    def load(self, job: FeatureJob) -> ClipFeatures:
        """Features of `job`, from the cache or computed (and stored). Raises AudioError for unusable audio."""
        entry = self.entry_path(job, file_hash=content_hash(job.path))
        cached = self._read_entry(entry, source=job.path)
        if cached is not None:
            return cached
        samples = load_audio(job.path, sample_rate_hz=self.spec.sample_rate_hz)
        if job.plan is not None:
            features, starts_s = crop_features(samples, spec=self.spec, plan=job.plan)
        else:
            features, starts_s = window_features(samples, spec=self.spec)
        duration_s = samples.shape[0] / self.spec.sample_rate_hz
        self._store(entry, features=features, starts_s=starts_s, duration_s=duration_s)
        return ClipFeatures(job.path, entry, starts_s, duration_s)

    def _read_entry(self, entry: Path, *, source: Path) -> ClipFeatures | None:
        """The stored entry, or None when it is absent, torn or foreign (its files are then removed)."""
        meta_path = entry.with_suffix(".json")
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            starts_s = np.asarray(meta["starts_s"], dtype=np.float64)
            shape = np.load(entry, mmap_mode="r").shape
            if shape != (starts_s.shape[0], self.spec.n_mels, self.spec.clip_frames):
                raise ValueError(f"shape {shape}")
            return ClipFeatures(source, entry, starts_s, float(meta["duration_s"]))
        except (OSError, ValueError, KeyError, TypeError):
            meta_path.unlink(missing_ok=True)  # a torn or foreign entry: recompute it
            entry.unlink(missing_ok=True)
            return None

    def _store(self, entry: Path, *, features: np.ndarray, starts_s: np.ndarray, duration_s: float) -> None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        spec_file = entry.parent / "feature_spec.json"
        if not spec_file.exists():
            self.spec.save(spec_file)
        meta = json.dumps({"format_version": CACHE_FORMAT_VERSION, "starts_s": [float(s) for s in starts_s],
                           "duration_s": float(duration_s)})
        _write_atomically(entry, lambda f: np.save(f, np.ascontiguousarray(features, dtype=np.float32)))
        _write_atomically(entry.with_suffix(".json"), lambda f: f.write(meta.encode("utf-8")))


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same directory, then rename it onto `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=f".tmp{path.suffix}")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_in_worker(spec_json: str, root: str, job: FeatureJob) -> ClipFeatures | tuple[str, str]:
    """Features, or (path, reason) for unusable audio (AudioError itself does not pickle)."""
    cache = FeatureCache(spec=FeatureSpec.from_json(spec_json), root=root)
    try:
        return cache.load(job)
    except AudioError as exc:
        return (exc.path, exc.reason)


def _as_result(value: ClipFeatures | tuple[str, str]) -> ClipFeatures | AudioError:
    return AudioError(*value) if isinstance(value, tuple) else value


def compute_features(jobs: Sequence[FeatureJob], *, cache: FeatureCache, workers: int = 0,
                     progress: bool = True, description: str = "features") -> list[ClipFeatures | AudioError]:
    """Features of every job, in job order; unusable audio yields its AudioError instead.

    Cached entries are read in this process; the rest are computed by `workers` processes
    (0 = one per CPU core; 1 = in this process) with a tqdm progress bar on stderr. Only entry
    names and clip starts come back: the features stay on disk (ClipFeatures.features maps them).
    """
    from tqdm import tqdm

    results: list[ClipFeatures | AudioError | None] = [None] * len(jobs)
    missing: list[int] = []
    for i, job in enumerate(jobs):
        if cache.is_cached(job):
            results[i] = _as_result(_load_in_worker(cache.spec.to_json(), str(cache.root), job))
        else:
            missing.append(i)
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(jobs), initial=len(jobs) - len(missing), desc=description, disable=not progress,
              unit="file", leave=False) as bar:
        if workers == 1 or len(missing) <= 1:
            for i in missing:
                results[i] = _as_result(_load_in_worker(cache.spec.to_json(), str(cache.root), jobs[i]))
                bar.update()
        else:
            # fork is fast and needs no `if __name__ == "__main__"` guard, but not once TensorFlow's threads exist.
            context = get_context("spawn" if "tensorflow" in sys.modules else "fork")
            with ProcessPoolExecutor(max_workers=min(workers, len(missing)), mp_context=context) as pool:
                futures = {pool.submit(_load_in_worker, cache.spec.to_json(), str(cache.root), jobs[i]): i
                           for i in missing}
                for future in as_completed(futures):
                    results[futures[future]] = _as_result(future.result())
                    bar.update()
    return results  # type: ignore[return-value]
