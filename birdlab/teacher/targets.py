"""Teacher targets of many clips on disk: computed once per (teacher, audio content, crop), in parallel.

Layout, after the feature cache's ideas (content-addressed entries, one folder per setting
that changes the values, atomic writes, torn entries recomputed):

    <root>/<teacher key>/<clip key>/<content_hash>.<starts key>.npz

- teacher key: the teacher's sha256 (not its file name), output kind, temperature, sample rate
  and window: another teacher, or the same one read otherwise, writes elsewhere;
- clip key: the lab's sample rate and clip length (the audio the student sees) and
  TARGET_SCHEME_VERSION (bump it when the way clips become targets changes);
- content_hash: sha256 of the audio file's bytes, so a renamed file hits and an edited one misses;
- starts key: `windows` for consecutive whole-file windows, else a hash of the crop starts in
  samples at the lab's rate (another crop of the same file misses).

Each entry holds the full teacher output (n_clips, n_teacher_labels), so a new species list reuses
it; `compute_teacher_targets(..., species_indices=...)` maps to the run's species (n_clips,
n_species) in the workers, which keeps only those columns in memory.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from birdlab import paths
from birdlab.data.species import Species
from birdlab.features.cache import content_hash, fit_clip
from birdlab.teacher.config import TeacherConfig, TeacherConfigError
from birdlab.teacher.labels import read_teacher_labels, teacher_indices
from birdlab.teacher.model import TeacherInfo, TeacherModel, TeacherModelError
from edge_runtime.audio import AUDIO_SUFFIXES, AudioError, load_audio

TARGET_SCHEME_VERSION = 1
"""Part of the cache key: bump it when the way clips become teacher targets changes."""


def default_cache_root() -> Path:
    """data/interim/teacher_targets (git-ignored)."""
    return paths.INTERIM_DIR / "teacher_targets"


@dataclass(frozen=True)
class TeacherJob:
    """One audio file to label: crops at `starts_s`, or (None) consecutive clips covering the whole file."""

    path: Path
    starts_s: tuple[float, ...] | None = None
    """Start of each clip in the file, seconds (the student's crops); None = whole-file windows (unlabelled audio)."""


@dataclass(frozen=True)
class TeacherTargets:
    """Teacher probabilities of the clips of one audio file."""

    source: Path
    probabilities: np.ndarray
    """float32, shape (n_clips, n_teacher_labels), or (n_clips, n_species) once mapped to the run's species."""
    starts_s: np.ndarray
    """float64, shape (n_clips,): where each clip starts in the file, seconds."""
    duration_s: float
    """Length of the decoded audio, seconds."""

    def for_species(self, indices: np.ndarray) -> TeacherTargets:
        """The same targets with only the run's species' columns: probabilities (n_clips, n_species).
        indices: int (n_species,) from birdlab.teacher.labels.teacher_indices."""
        return TeacherTargets(self.source, np.ascontiguousarray(self.probabilities[:, indices]), self.starts_s,
                              self.duration_s)


def clip_starts(job: TeacherJob, *, n_samples: int, sample_rate_hz: int, clip_samples: int) -> np.ndarray:
    """Clip starts in samples: int64 (n_clips,). Whole-file windows: ceil(n_samples / clip_samples)
    consecutive clips (as the feature cache cuts soundscapes; the last one is zero-padded)."""
    if job.starts_s is None:
        return np.arange(max(1, -(-n_samples // clip_samples)), dtype=np.int64) * clip_samples
    return np.round(np.asarray(job.starts_s, dtype=np.float64) * sample_rate_hz).astype(np.int64)


@dataclass(frozen=True)
class TeacherTargetCache:
    """Teacher targets of audio files under <root>/<teacher key>/<clip key>/."""

    teacher: TeacherInfo
    """The teacher whose targets these are (TeacherModel.info)."""
    sample_rate_hz: int
    """The lab's sample rate: audio is decoded at it and crop starts are rounded to its samples."""
    clip_samples: int
    """Length of the student's clip in samples at sample_rate_hz (5 s: 160000 at 32 kHz)."""
    root: Path
    """Cache root (default_cache_root() unless given)."""

    @classmethod
    def for_model(cls, model: TeacherModel, *, sample_rate_hz: int, clip_samples: int,
                  root: str | Path | None = None) -> TeacherTargetCache:
        return cls(teacher=model.info, sample_rate_hz=sample_rate_hz, clip_samples=clip_samples,
                   root=Path(root) if root is not None else default_cache_root())

    @property
    def directory(self) -> Path:
        t = self.teacher
        teacher_key = f"{t.sha256[:20]}-{t.output}-t{t.temperature:g}-r{t.sample_rate_hz}-w{t.window_samples}"
        clip_key = f"lab{self.sample_rate_hz}-clip{self.clip_samples}-v{TARGET_SCHEME_VERSION}"
        return self.root / teacher_key / clip_key

    def entry_path(self, job: TeacherJob, *, file_hash: str) -> Path:
        if job.starts_s is None:
            kind = "windows"
        else:
            starts = clip_starts(job, n_samples=0, sample_rate_hz=self.sample_rate_hz, clip_samples=self.clip_samples)
            kind = "crops-" + hashlib.sha256(starts.astype("<i8").tobytes()).hexdigest()[:16]
        return self.directory / f"{file_hash}.{kind}.npz"

    def cached(self, job: TeacherJob) -> TeacherTargets | None:
        """The stored targets of `job`, or None (missing, unreadable or torn entries are None)."""
        try:
            entry = self.entry_path(job, file_hash=content_hash(job.path))
        except OSError:
            return None
        if not entry.is_file():
            return None
        try:
            with np.load(entry) as stored:
                return TeacherTargets(job.path, stored["probabilities"], stored["starts_s"],
                                      float(stored["duration_s"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            entry.unlink(missing_ok=True)  # a torn or foreign file: recompute it
            return None

    def load(self, job: TeacherJob, *, model: TeacherModel) -> TeacherTargets:
        """Targets of `job`, from the cache or computed with `model` (and stored). Raises AudioError for
        unusable audio."""
        if model.sha256 != self.teacher.sha256:
            raise TeacherModelError(f"{model.path}: the teacher file changed while targets were computed "
                                    f"(sha256 {model.sha256[:12]}..., expected {self.teacher.sha256[:12]}...)")
        hit = self.cached(job)
        if hit is not None:
            return hit
        try:
            file_hash = content_hash(job.path)
        except OSError as exc:
            raise AudioError(job.path, f"cannot read ({exc.strerror or exc})") from None
        samples = load_audio(job.path, sample_rate_hz=self.sample_rate_hz)
        starts = clip_starts(job, n_samples=samples.shape[0], sample_rate_hz=self.sample_rate_hz,
                             clip_samples=self.clip_samples)
        probabilities = np.zeros((starts.size, model.n_labels), dtype=np.float32)
        for row, start in enumerate(starts):
            clip = fit_clip(samples[max(0, int(start)):], clip_samples=self.clip_samples)
            probabilities[row] = model.clip_probabilities(clip, sample_rate_hz=self.sample_rate_hz)
        starts_s = starts / self.sample_rate_hz
        duration_s = samples.shape[0] / self.sample_rate_hz
        self._store(self.entry_path(job, file_hash=file_hash), probabilities=probabilities, starts_s=starts_s,
                    duration_s=duration_s)
        return TeacherTargets(job.path, probabilities, starts_s, duration_s)

    def _store(self, entry: Path, **arrays: npt.ArrayLike) -> None:
        # np.savez's stubs read every **kwarg as a possible allow_pickle: bool; our names never are
        named_arrays: dict[str, Any] = arrays
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp.npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **named_arrays)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_worker_model: TeacherModel | None = None
"""The teacher of this worker process, loaded once by _init_worker (one interpreter per process)."""


def _init_worker(config: TeacherConfig) -> None:
    global _worker_model
    _worker_model = TeacherModel.from_config(config)


def _targets_in_worker(cache: TeacherTargetCache, job: TeacherJob,
                       species_indices: np.ndarray | None) -> TeacherTargets | tuple[str, str]:
    """Targets, or (path, reason) for unusable audio (AudioError itself does not pickle)."""
    assert _worker_model is not None, "_init_worker did not run"
    return _targets_with(_worker_model, cache, job, species_indices)


def _targets_with(model: TeacherModel, cache: TeacherTargetCache, job: TeacherJob,
                  species_indices: np.ndarray | None) -> TeacherTargets | tuple[str, str]:
    try:
        targets = cache.load(job, model=model)
    except AudioError as exc:
        return (exc.path, exc.reason)
    return targets if species_indices is None else targets.for_species(species_indices)


def _as_result(value: TeacherTargets | tuple[str, str]) -> TeacherTargets | AudioError:
    return AudioError(*value) if isinstance(value, tuple) else value


def compute_teacher_targets(jobs: Sequence[TeacherJob], *, config: TeacherConfig, sample_rate_hz: int,
                            clip_samples: int, root: str | Path | None = None,
                            species_indices: np.ndarray | None = None, workers: int = 0, progress: bool = True,
                            description: str = "teacher targets") -> list[TeacherTargets | AudioError]:
    """Teacher targets of every job, in job order; unusable audio yields its AudioError instead.

    sample_rate_hz, clip_samples: the student's clips (FeatureSpec.sample_rate_hz, .clip_samples).
    species_indices: None -> probabilities (n_clips, n_teacher_labels); int (n_species,) from
    teacher_indices -> (n_clips, n_species). Cached entries are read in this process; the rest are
    computed by `workers` processes (0 = one per CPU core; 1 = in this process), each loading the
    teacher once, with a tqdm progress bar on stderr.
    """
    from tqdm import tqdm

    model = TeacherModel.from_config(config)
    cache = TeacherTargetCache.for_model(model, sample_rate_hz=sample_rate_hz, clip_samples=clip_samples, root=root)
    results: list[TeacherTargets | AudioError | None] = [None] * len(jobs)
    missing: list[int] = []
    for i, job in enumerate(jobs):
        hit = cache.cached(job)
        if hit is None:
            missing.append(i)
        else:
            results[i] = hit if species_indices is None else hit.for_species(species_indices)
    workers = workers or os.cpu_count() or 1
    with tqdm(total=len(jobs), initial=len(jobs) - len(missing), desc=description, disable=not progress,
              unit="file", leave=False) as bar:
        if workers == 1 or len(missing) <= 1:
            for i in missing:
                results[i] = _as_result(_targets_with(model, cache, jobs[i], species_indices))
                bar.update()
        else:
            # fork is fast and needs no `if __name__ == "__main__"` guard, but not once TensorFlow's threads exist.
            context = get_context("spawn" if "tensorflow" in sys.modules else "fork")
            with ProcessPoolExecutor(max_workers=min(workers, len(missing)), mp_context=context,
                                     initializer=_init_worker, initargs=(config,)) as pool:
                futures = {pool.submit(_targets_in_worker, cache, jobs[i], species_indices): i for i in missing}
                for future in as_completed(futures):
                    results[futures[future]] = _as_result(future.result())
                    bar.update()
    return results  # type: ignore[return-value]


def stack_targets(results: Sequence[TeacherTargets | AudioError]) -> np.ndarray:
    """The probabilities of every usable result, stacked in order: float32 (total n_clips, n_columns).
    AudioErrors are skipped (the caller reports them)."""
    arrays = [r.probabilities for r in results if isinstance(r, TeacherTargets)]
    if not arrays:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(arrays).astype(np.float32, copy=False)


def species_teacher_targets(jobs: Sequence[TeacherJob], *, config: TeacherConfig, species: Sequence[Species],
                            sample_rate_hz: int, clip_samples: int, root: str | Path | None = None,
                            workers: int = 0, progress: bool = True) -> list[TeacherTargets | AudioError]:
    """compute_teacher_targets mapped to the run's species: probabilities (n_clips, n_species) per job.

    Reads config.teacher_labels (one per output, checked against the model), maps `species` by scientific
    name and config.teacher_label_map (TeacherLabelError listing every unmapped species), then computes.
    """
    model = TeacherModel.from_config(config)
    labels = read_teacher_labels(config.teacher_labels)
    model.check_labels(labels, labels_path=config.teacher_labels)
    indices = teacher_indices(species, teacher_labels=labels, label_map=config.teacher_label_map)
    return compute_teacher_targets(jobs, config=config, sample_rate_hz=sample_rate_hz, clip_samples=clip_samples,
                                   root=root, species_indices=indices, workers=workers, progress=progress)


def unlabeled_jobs(dirs: Sequence[str | Path]) -> list[TeacherJob]:
    """Whole-file jobs for every audio file (AUDIO_SUFFIXES, any case) under each folder, recursively, sorted.

    Raises TeacherConfigError naming a folder that does not exist or holds no audio.
    """
    jobs: list[TeacherJob] = []
    for folder in map(Path, dirs):
        if not folder.is_dir():
            raise TeacherConfigError(f"teacher config field 'unlabeled_dirs': {folder} is not a folder")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not found:
            raise TeacherConfigError(f"teacher config field 'unlabeled_dirs': {folder} holds no audio files "
                                     f"({', '.join(AUDIO_SUFFIXES)})")
        jobs += [TeacherJob(p) for p in found]
    return jobs
