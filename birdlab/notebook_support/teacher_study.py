"""Notebook 06's study: a teacher, a distilled student and a hard-label student on the synthetic distillation task.

The teacher is $BIRDLAB_TEACHER_MODEL (with $BIRDLAB_TEACHER_LABELS and, when not 48000,
$BIRDLAB_TEACHER_SAMPLE_RATE_HZ) when set, else the tiny RFFT teacher of birdlab.teacher.tiny that knows
the synthetic voices, built once under the size's work directory. The task (birdlab.teacher.synthetic_task)
gives few labels, some of them wrong, and unlabelled audio; both students train with the size's preset on
the same labelled data, the distilled one also on the teacher's targets and the unlabelled audio.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdlab import paths
from birdlab.data.species import Species, load_species
from birdlab.data.synth import SynthConfig
from birdlab.features.cache import FeatureCache, FeatureJob, compute_features
from birdlab.metrics import average_precision
from birdlab.notebook_support.sizes import NotebookSize
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.synthetic_task import DistillationTask, DistillationTaskConfig, make_distillation_task
from birdlab.teacher.targets import compute_teacher_targets, unlabeled_jobs
from birdlab.teacher.tiny import TEACHER_SAMPLE_RATE_HZ, synth_teacher
from birdlab.training.config import TrainConfig, load_config
from birdlab.training.run_dir import RunDir
from birdlab.training.teacher_targets import clip_figures, recording_window_scores, species_indices
from birdlab.training.train import train
from edge_runtime.spec import FeatureSpec

TEACHER_MODEL_ENV = "BIRDLAB_TEACHER_MODEL"
"""A raw-audio teacher .tflite to use instead of the tiny one (e.g. BirdNET v2.4, fetched by `teacher fetch-birdnet`)."""
TEACHER_LABELS_ENV = "BIRDLAB_TEACHER_LABELS"
TEACHER_RATE_ENV = "BIRDLAB_TEACHER_SAMPLE_RATE_HZ"
STUDENTS = ("hard", "distilled")
"""The two students: hard labels only; hard labels + teacher targets + unlabelled audio."""


def task_config(size: NotebookSize) -> DistillationTaskConfig:
    """Smoke: 4 species x 6 short recordings (2 labelled, one of them wrong, 2 unlabelled, 2 held out);
    full: 6 species x 12 recordings of 5-8 s (4 labelled, 2 of them wrong, 4 unlabelled, 4 held out)."""
    if size.name == "smoke":
        synth = SynthConfig(n_species=4, recordings_per_species=6, recording_seconds=(3.0, 5.0), n_soundscapes=1,
                            soundscape_seconds=30, seed=size.synth.seed)
        return DistillationTaskConfig(synth=synth, labelled_per_species=2, unlabelled_per_species=2)
    return DistillationTaskConfig()


def student_config(size: NotebookSize, *, teacher: TeacherConfig | None) -> TrainConfig:
    """The size's preset, 1 validation recording per species, the teacher (or none)."""
    base = load_config(size.train_preset)
    return dataclasses.replace(base, name=f"{base.name}-{'distilled' if teacher else 'hard'}",
                               validation_fraction=0.25, teacher=teacher)


def notebook_teacher(size: NotebookSize, *, species: tuple[Species, ...], task: DistillationTask) -> TeacherConfig:
    """The teacher of notebook 06, reading its outputs as logits, with task.unlabelled_dir as unlabelled audio."""
    model = os.environ.get(TEACHER_MODEL_ENV, "").strip()
    if model:
        labels = os.environ.get(TEACHER_LABELS_ENV, "").strip() or str(Path(model).with_name(
            Path(model).name.replace("Model_FP32.tflite", "Labels.txt")))
        rate = int(os.environ.get(TEACHER_RATE_ENV, "48000"))
    else:
        out = size.work_dir / "tiny_teacher" / f"seed{task_seed(size)}-{len(species)}"
        if not (out / "teacher.tflite").is_file() or not (out / "labels.txt").is_file():
            shutil.rmtree(out, ignore_errors=True)
            synth_teacher(out, species=species, seed=task_seed(size))
        model, labels, rate = str(out / "teacher.tflite"), str(out / "labels.txt"), TEACHER_SAMPLE_RATE_HZ
    return TeacherConfig(teacher_model=model, teacher_labels=labels, teacher_sample_rate_hz=rate,
                         teacher_weight=0.7, unlabeled_dirs=(str(task.unlabelled_dir),))


def task_seed(size: NotebookSize) -> int:
    return task_config(size).synth.seed


@dataclass(frozen=True)
class TeacherStudy:
    """Everything notebook 06 shows."""

    task: DistillationTask
    species: tuple[Species, ...]
    teacher: TeacherConfig
    run_dirs: dict[str, Path]
    """Run directory of each student ('hard', 'distilled')."""
    scores: dict[str, np.ndarray]
    """Clip-level scores (n_heldout, n_species) of 'teacher', 'hard', 'distilled' on the held-out recordings."""
    truth: np.ndarray
    """bool (n_heldout, n_species)."""
    primary: np.ndarray
    """int64 (n_heldout,)."""

    def figures(self) -> dict[str, dict[str, Any]]:
        """{model: {macro_ap, n_species_scored, top1, n_recordings}} on the held-out recordings."""
        return {name: clip_figures(s, self.truth, self.primary) for name, s in self.scores.items()}


def run_teacher_study(size: NotebookSize, *, progress: bool = True) -> TeacherStudy:
    """Write the task, get the teacher, train both students (runs/notebook-<size>-teacher-<student>), score them."""
    config = task_config(size)
    task = make_distillation_task(size.work_dir / "distillation_task", config=config)
    species = tuple(load_species()[: config.synth.n_species])
    teacher = notebook_teacher(size, species=species, task=task)
    spec = FeatureSpec()
    cache = FeatureCache(spec=spec)
    heldout = task.heldout_recordings()
    run_dirs, scores = {}, {}
    truth = primary = np.zeros(0)
    for student in STUDENTS:
        run_dir = paths.RUNS_DIR / f"notebook-{size.name}-teacher-{student}"
        shutil.rmtree(run_dir, ignore_errors=True)
        train(config=student_config(size, teacher=teacher if student == "distilled" else None),
              data_dir=task.labelled_dir, out_dir=run_dir, progress=progress)
        run_dirs[student] = run_dir
        scores[student], truth, primary, _ = recording_window_scores(
            heldout, teacher=None, model=_load_student(run_dir), species=species, spec=spec, cache=cache)
    scores["teacher"], _, _, _ = recording_window_scores(heldout, teacher=teacher, model=None, species=species,
                                                         spec=spec, cache=cache)
    return TeacherStudy(task=task, species=species, teacher=teacher, run_dirs=run_dirs, scores=scores, truth=truth,
                        primary=primary)


def _load_student(run_dir: Path) -> Any:
    import keras

    return keras.saving.load_model(RunDir(run_dir).model_path, compile=False)


def per_species_frame(study: TeacherStudy) -> pd.DataFrame:
    """One row per species: held-out recordings and the AP of the teacher, the distilled and the hard-label student."""
    rows = []
    for j, sp in enumerate(study.species):
        row: dict[str, Any] = {"species": sp.ebird_code, "held-out recordings": int(study.truth[:, j].sum())}
        for name in ("teacher", "distilled", "hard"):
            ap = float(average_precision(study.truth[:, j], study.scores[name][:, j]))
            row[f"AP {name}"] = round(ap, 3) if np.isfinite(ap) else None
        rows.append(row)
    return pd.DataFrame(rows)


def unlabelled_agreement(study: TeacherStudy, *, min_teacher_probability: float = 0.5) -> dict[str, Any]:
    """How often each student's top species equals the teacher's on the unlabelled 5-s windows where the teacher
    is confident (max probability >= min_teacher_probability), with the counts."""
    jobs = unlabeled_jobs([study.task.unlabelled_dir])
    spec = FeatureSpec()
    indices = species_indices(study.teacher, species=study.species)
    teacher = compute_teacher_targets(jobs, config=study.teacher, sample_rate_hz=spec.sample_rate_hz,
                                      clip_samples=spec.clip_samples, species_indices=indices, workers=1,
                                      progress=False)
    features = compute_features([FeatureJob(j.path) for j in jobs], cache=FeatureCache(spec=spec), workers=1,
                                progress=False)
    t_rows, x_rows = [], []
    for t, f in zip(teacher, features, strict=True):
        if hasattr(t, "probabilities") and hasattr(f, "features"):
            t_rows.append(t.probabilities)
            x_rows.append(f.features)
    t_all, x_all = np.concatenate(t_rows), np.concatenate(x_rows)
    confident = t_all.max(axis=1) >= min_teacher_probability
    out: dict[str, Any] = {"windows": int(len(t_all)), "teacher-confident windows": int(confident.sum())}
    for student in STUDENTS:
        p = np.asarray(_load_student(study.run_dirs[student]).predict(x_all[..., None], verbose=0))
        same = np.argmax(p, axis=1) == np.argmax(t_all, axis=1)
        out[f"{student}: top-1 agrees with the teacher"] = round(float(same[confident].mean()), 3) \
            if confident.any() else None
    out["chance"] = round(1.0 / len(study.species), 3)
    return out
