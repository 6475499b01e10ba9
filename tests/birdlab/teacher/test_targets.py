"""Teacher targets of many files: cached by content, crop and teacher; parallel == serial; bad files reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_teacher import DISTRACTOR_LABELS, TEACHER_SAMPLE_RATE_HZ

from birdlab.features.cache import fit_clip
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.labels import read_teacher_labels
from birdlab.teacher.model import TeacherModel
from birdlab.teacher.targets import (
    TeacherJob,
    TeacherTargetCache,
    TeacherTargets,
    compute_teacher_targets,
    stack_targets,
)
from edge_runtime.audio import AudioError, load_audio

LAB_RATE_HZ = 32000
CLIP_SAMPLES = 5 * LAB_RATE_HZ


def config_of(teacher, **overrides) -> TeacherConfig:
    return TeacherConfig(teacher_model=str(teacher.model_path), teacher_labels=str(teacher.labels_path),
                         teacher_sample_rate_hz=TEACHER_SAMPLE_RATE_HZ, **overrides)


def compute(jobs, teacher, root, **kwargs):
    kwargs.setdefault("workers", 1)
    config = kwargs.pop("config", None) or config_of(teacher)
    return compute_teacher_targets(jobs, config=config, sample_rate_hz=LAB_RATE_HZ, clip_samples=CLIP_SAMPLES,
                                   root=root, progress=False, **kwargs)


def recordings(dataset: Path) -> list[Path]:
    return sorted((dataset / "train_short_audio").rglob("*.ogg"))


def soundscape(dataset: Path) -> Path:
    return sorted((dataset / "train_soundscapes").glob("*.ogg"))[0]


def entry_of(job: TeacherJob, teacher, root: Path) -> Path:
    cache = TeacherTargetCache.for_model(TeacherModel.from_config(config_of(teacher)), sample_rate_hz=LAB_RATE_HZ,
                                         clip_samples=CLIP_SAMPLES, root=root)
    from birdlab.features.cache import content_hash

    return cache.entry_path(job, file_hash=content_hash(job.path))


def tamper(entry: Path) -> np.ndarray:
    """Overwrite a cache entry's probabilities with a marker (-1): reading it back proves a cache hit."""
    with np.load(entry) as stored:
        arrays = dict(stored)
    arrays["probabilities"] = np.full_like(arrays["probabilities"], -1.0)
    np.savez(entry, **arrays)
    return arrays["probabilities"]


def test_crops_are_the_teachers_clip_probabilities(quick_dataset, tone_teacher, tmp_path):
    path = recordings(quick_dataset)[0]
    job = TeacherJob(path, starts_s=(0.0, 0.5, 1.25))
    [result] = compute([job], tone_teacher, tmp_path)
    assert isinstance(result, TeacherTargets)
    assert result.probabilities.shape == (3, len(tone_teacher.labels)) and result.probabilities.dtype == np.float32
    np.testing.assert_allclose(result.starts_s, [0.0, 0.5, 1.25])
    samples = load_audio(path, sample_rate_hz=LAB_RATE_HZ)
    model = TeacherModel.from_config(config_of(tone_teacher))
    for row, start_s in enumerate(job.starts_s):
        clip = fit_clip(samples[int(round(start_s * LAB_RATE_HZ)):], clip_samples=CLIP_SAMPLES)
        np.testing.assert_array_equal(result.probabilities[row],
                                      model.clip_probabilities(clip, sample_rate_hz=LAB_RATE_HZ))
    assert result.duration_s == pytest.approx(samples.size / LAB_RATE_HZ)


def test_whole_file_windows_cover_unlabelled_audio(quick_dataset, tone_teacher, tmp_path):
    [result] = compute([TeacherJob(soundscape(quick_dataset))], tone_teacher, tmp_path)
    assert result.probabilities.shape == (6, len(tone_teacher.labels))  # a 30-s soundscape: 6 clips of 5 s
    np.testing.assert_allclose(result.starts_s, [0, 5, 10, 15, 20, 25])


def test_cache_hit_and_the_misses(quick_dataset, tone_teacher, other_tone_teacher, tmp_path):
    path = recordings(quick_dataset)[1]
    job = TeacherJob(path, starts_s=(0.0, 1.0))
    root = tmp_path / "cache"
    [first] = compute([job], tone_teacher, root)
    marker = tamper(entry_of(job, tone_teacher, root))

    [hit] = compute([job], tone_teacher, root)
    np.testing.assert_array_equal(hit.probabilities, marker)
    renamed = tmp_path / "renamed.ogg"
    shutil.copyfile(path, renamed)  # same content, other name: a hit
    [hit] = compute([TeacherJob(renamed, starts_s=(0.0, 1.0))], tone_teacher, root)
    np.testing.assert_array_equal(hit.probabilities, marker)

    [other_crop] = compute([TeacherJob(path, starts_s=(0.0, 1.5))], tone_teacher, root)
    np.testing.assert_array_equal(other_crop.probabilities[0], first.probabilities[0])  # recomputed, same clip
    assert (other_crop.probabilities >= 0).all()
    [other_teacher] = compute([job], other_tone_teacher, root)
    assert (other_teacher.probabilities >= 0).all()
    [other_temperature] = compute([job], tone_teacher, root, config=config_of(tone_teacher, teacher_temperature=2.0))
    assert (other_temperature.probabilities >= 0).all()

    edited = tmp_path / "edited.ogg"
    shutil.copyfile(path, edited)
    with open(edited, "ab") as f:
        f.write(b"\0")  # other bytes: another content hash, a miss
    [other_audio] = compute([TeacherJob(edited, starts_s=(0.0, 1.0))], tone_teacher, root)
    np.testing.assert_array_equal(other_audio.probabilities, first.probabilities)


def test_a_torn_entry_is_recomputed(quick_dataset, tone_teacher, tmp_path):
    job = TeacherJob(recordings(quick_dataset)[2], starts_s=(0.0,))
    [first] = compute([job], tone_teacher, tmp_path)
    entry = entry_of(job, tone_teacher, tmp_path)
    entry.write_bytes(entry.read_bytes()[:50])
    [again] = compute([job], tone_teacher, tmp_path)
    np.testing.assert_array_equal(again.probabilities, first.probabilities)


@pytest.mark.slow
def test_parallel_equals_serial_and_bad_files_are_reported(quick_dataset, tone_teacher, tmp_path):
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"OggS but not really")
    jobs = [TeacherJob(p, starts_s=(0.0, 0.7)) for p in recordings(quick_dataset)[:5]]
    jobs += [TeacherJob(bad, starts_s=(0.0,)), TeacherJob(soundscape(quick_dataset)),
             TeacherJob(tmp_path / "missing.ogg", starts_s=(0.0,))]
    serial = compute(jobs, tone_teacher, tmp_path / "serial", workers=1)
    parallel = compute(jobs, tone_teacher, tmp_path / "parallel", workers=2)
    for s, p, job in zip(serial, parallel, jobs, strict=True):
        if job.path.name in ("broken.ogg", "missing.ogg"):
            assert isinstance(s, AudioError) and isinstance(p, AudioError)
            assert s.path == p.path == str(job.path)
        else:
            assert s.source == p.source == job.path
            np.testing.assert_array_equal(s.probabilities, p.probabilities)
            np.testing.assert_array_equal(s.starts_s, p.starts_s)
    assert stack_targets(serial).shape == (5 * 2 + 6, len(tone_teacher.labels))


@pytest.mark.slow
def test_mapped_to_the_run_species(quick_dataset, tone_teacher, tmp_path):
    labels = read_teacher_labels(tone_teacher.labels_path)
    assert labels == tone_teacher.labels
    indices = np.array([len(DISTRACTOR_LABELS) + 2, len(DISTRACTOR_LABELS)])
    jobs = [TeacherJob(p, starts_s=(0.0, 1.0)) for p in recordings(quick_dataset)[:3]]
    full = compute(jobs, tone_teacher, tmp_path)
    for workers in (1, 2):
        mapped = compute(jobs, tone_teacher, tmp_path / f"w{workers}", species_indices=indices, workers=workers)
        for f, m in zip(full, mapped, strict=True):
            assert m.probabilities.shape == (2, 2)
            np.testing.assert_array_equal(m.probabilities, f.probabilities[:, indices])
    cached = compute(jobs, tone_teacher, tmp_path, species_indices=indices)  # from the full entries
    np.testing.assert_array_equal(stack_targets(cached), stack_targets(full)[:, indices])


def test_species_targets_check_labels_and_map(quick_dataset, tone_teacher, tmp_path):
    from birdlab.data.species import Species
    from birdlab.teacher.labels import TeacherLabelError
    from birdlab.teacher.model import TeacherModelError
    from birdlab.teacher.targets import species_teacher_targets

    species = [Species("gam", "Gamma gamma", "Gamma"), Species("alp", "ALPHA alpha", "Alpha")]
    jobs = [TeacherJob(recordings(quick_dataset)[0], starts_s=(0.0,))]
    kwargs = dict(sample_rate_hz=LAB_RATE_HZ, clip_samples=CLIP_SAMPLES, root=tmp_path, workers=1, progress=False)
    [mapped] = species_teacher_targets(jobs, config=config_of(tone_teacher), species=species, **kwargs)
    [full] = compute(jobs, tone_teacher, tmp_path)
    np.testing.assert_array_equal(mapped.probabilities, full.probabilities[:, [len(DISTRACTOR_LABELS) + 2,
                                                                               len(DISTRACTOR_LABELS)]])
    with pytest.raises(TeacherLabelError, match="zzz"):
        species_teacher_targets(jobs, config=config_of(tone_teacher), species=[Species("zzz", "Z z", "Z")], **kwargs)
    short = tmp_path / "short_labels.txt"
    short.write_text("\n".join(tone_teacher.labels[:-1]), encoding="utf-8")
    config = TeacherConfig(teacher_model=str(tone_teacher.model_path), teacher_labels=str(short),
                           teacher_sample_rate_hz=TEACHER_SAMPLE_RATE_HZ)
    with pytest.raises(TeacherModelError, match="5 labels for the 6 outputs"):
        species_teacher_targets(jobs, config=config, species=species, **kwargs)


def test_unlabeled_jobs_find_audio_recursively(tmp_path, quick_dataset):
    from birdlab.teacher.config import TeacherConfigError
    from birdlab.teacher.targets import unlabeled_jobs

    site = tmp_path / "site"
    (site / "day2").mkdir(parents=True)
    shutil.copyfile(soundscape(quick_dataset), site / "day2" / "b.OGG")
    shutil.copyfile(recordings(quick_dataset)[0], site / "a.ogg")
    (site / "notes.txt").write_text("not audio", encoding="utf-8")
    jobs = unlabeled_jobs([site])
    assert [j.path.relative_to(site).as_posix() for j in jobs] == ["a.ogg", "day2/b.OGG"]
    assert all(j.starts_s is None for j in jobs)
    with pytest.raises(TeacherConfigError, match="is not a folder"):
        unlabeled_jobs([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TeacherConfigError, match="holds no audio"):
        unlabeled_jobs([tmp_path / "empty"])
