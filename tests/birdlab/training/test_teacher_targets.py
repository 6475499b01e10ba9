"""Training with a teacher: targets line up with the crops, unmapped species stop the run, the run records the
teacher, the distilled student beats the hard-label student where the labels are wrong, and it exports RFFT-free."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.data.species import load_species
from birdlab.data.synth import SynthConfig
from birdlab.features.cache import FeatureCache, fit_clip
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.labels import TeacherLabelError
from birdlab.teacher.model import TeacherModel
from birdlab.teacher.synthetic_task import DistillationTask, DistillationTaskConfig, make_distillation_task
from birdlab.teacher.tiny import TEACHER_SAMPLE_RATE_HZ, TONE_LABELS, TONES_HZ, synth_teacher, tone_teacher
from birdlab.training.augment import AugmentConfig
from birdlab.training.config import TrainConfig, tiny
from birdlab.training.dataset import prepare_training_data
from birdlab.training.teacher_targets import (
    clip_figures,
    prepare_teacher_targets,
    recording_window_scores,
    run_recordings,
)
from edge_runtime.audio import load_audio
from edge_runtime.spec import FeatureSpec

SPEC = FeatureSpec()
TEACHER_ATOL = 1e-6
MIN_MACRO_AP_GAIN = 0.15
"""The distilled student's held-out macro AP must beat the hard-label student's by at least this much."""
TASK = DistillationTaskConfig(
    synth=SynthConfig(n_species=4, recordings_per_species=10, recording_seconds=(5.0, 6.0), recording_median_seconds=5.5, n_soundscapes=1,
                      soundscape_seconds=30),
    labelled_per_species=4, mislabelled_fraction=0.5, unlabelled_per_species=3)
"""4 species: 4 labelled recordings each (2 of them carry the next species' label), 3 unlabelled, 3 held out."""


def student(*, teacher: TeacherConfig | None) -> TrainConfig:
    """The tiny preset, long enough to learn the four voices, on the clean features (seeded)."""
    return dataclasses.replace(tiny(), epochs=15, crops_per_recording=4, validation_fraction=0.25, batch_size=16,
                               early_stopping_patience=15, learning_rate=5e-3, augment=AugmentConfig.off(),
                               teacher=teacher)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> DistillationTask:
    return make_distillation_task(tmp_path_factory.mktemp("task"), config=TASK)


@pytest.fixture(scope="module")
def species():
    return tuple(load_species()[: TASK.synth.n_species])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, task, species) -> TeacherConfig:
    built = synth_teacher(tmp_path_factory.mktemp("teacher"), species=species, seed=TASK.synth.seed)
    return TeacherConfig(teacher_model=str(built.model_path), teacher_labels=str(built.labels_path),
                         teacher_sample_rate_hz=TEACHER_SAMPLE_RATE_HZ, teacher_weight=0.7,
                         unlabeled_dirs=(str(task.unlabelled_dir),))


@pytest.fixture(scope="module")
def caches(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("caches")
    return {"features": root / "features", "teacher": root / "teacher"}


def test_the_task_is_what_it_says(task):
    n = TASK.synth.n_species
    assert (task.n_labelled, task.n_mislabelled, task.n_unlabelled, task.n_heldout) == (4 * n, 2 * n, 3 * n, 3 * n)
    assert len(list(task.unlabelled_dir.glob("*.ogg"))) == 3 * n
    assert len(task.heldout_recordings()) == 3 * n


def test_teacher_targets_line_up_with_the_crops(task, teacher, caches):
    # every labelled recording in train or validation (no test side), so half of the crops carry a wrong label
    config = dataclasses.replace(student(teacher=teacher), test_fraction=0.0)
    cache = FeatureCache(spec=SPEC, root=caches["features"])
    data = prepare_training_data(data_dir=task.labelled_dir, config=config, spec=SPEC, cache=cache, progress=False)
    targets = prepare_teacher_targets(data=data, data_dir=task.labelled_dir, config=config, spec=SPEC, cache=cache,
                                      root=caches["teacher"], progress=False)
    n_species = len(data.species)
    assert targets.train.shape == (len(data.train), n_species)
    assert targets.validation.shape == (len(data.validation), n_species)
    assert targets.unlabelled_teacher.shape == (len(targets.unlabelled), n_species)
    assert not targets.unlabelled.truth.any() and not targets.skipped
    # the first training crop, by hand: the teacher on the audio the student sees, its species' columns
    first = run_recordings(task.labelled_dir, config=config, keys=data.split.train_recordings)[0]
    start_s = float(data.train.sources[0].rsplit("@", 1)[1].rstrip("s"))
    samples = load_audio(first.audio_path, sample_rate_hz=SPEC.sample_rate_hz)
    start = int(round(start_s * SPEC.sample_rate_hz))
    clip = fit_clip(samples[start:], clip_samples=SPEC.clip_samples)
    by_hand = TeacherModel.from_config(teacher).clip_probabilities(clip, sample_rate_hz=SPEC.sample_rate_hz)
    np.testing.assert_allclose(targets.train[0], by_hand[targets.indices], atol=1e-2)  # start rounded to 10 ms
    # the teacher knows the voices the labels get wrong: its top species is the true one far more often than the label
    true_of = {r.filename: r.primary_label for r in BirdCLEF2021(task.labelled_dir.parent / "source").recordings()}
    codes = [s.ebird_code for s in data.species]
    given = np.array([codes.index(src.split("/")[0]) for src in data.train.sources])
    true = np.array([codes.index(true_of[src.split("/")[1].split("@")[0]]) for src in data.train.sources])
    assert 0.3 < np.mean(given != true) < 0.7  # half the labelled recordings carry the wrong species
    teacher_top = np.argmax(targets.train, axis=1)
    assert np.mean(teacher_top == true) >= 0.75 > np.mean(teacher_top == given)
    assert targets.record["n_labels"] == len(Path(teacher.teacher_labels).read_text(encoding="utf-8").splitlines())


def test_unmapped_species_stop_the_run_and_name_them(task, tmp_path, caches):
    from birdlab.training.train import train

    tones = tone_teacher(tmp_path / "tones", frequencies_hz=TONES_HZ, labels=TONE_LABELS)
    config = student(teacher=TeacherConfig(teacher_model=str(tones.model_path), teacher_labels=str(tones.labels_path),
                                           teacher_sample_rate_hz=TEACHER_SAMPLE_RATE_HZ))
    codes = [s.ebird_code for s in load_species()[: TASK.synth.n_species]]
    with pytest.raises(TeacherLabelError, match=f"4 of 4 species have no teacher output: {codes[0]} "):
        train(config=config, data_dir=task.labelled_dir, out_dir=tmp_path / "run", cache_root=caches["features"],
              teacher_cache_root=caches["teacher"], progress=False)
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.fixture(scope="module")
def students(task, teacher, caches, tmp_path_factory) -> dict[str, Path]:
    from birdlab.training.train import train

    root = tmp_path_factory.mktemp("students")
    for name, config in (("hard", student(teacher=None)), ("distilled", student(teacher=teacher))):
        train(config=config, data_dir=task.labelled_dir, out_dir=root / name, cache_root=caches["features"],
              teacher_cache_root=caches["teacher"], progress=False)
    return {"hard": root / "hard", "distilled": root / "distilled"}


def heldout_figures(run_dir: Path, task: DistillationTask, species, caches) -> dict:
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    scores, truth, primary, skipped = recording_window_scores(
        task.heldout_recordings(), teacher=None, model=model, species=species, spec=SPEC,
        cache=FeatureCache(spec=SPEC, root=caches["features"]))
    assert not skipped
    return clip_figures(scores, truth, primary)


@pytest.mark.slow
def test_the_distilled_student_beats_the_hard_label_student(students, task, teacher, species, caches):
    hard = heldout_figures(students["hard"], task, species, caches)
    distilled = heldout_figures(students["distilled"], task, species, caches)
    print(f"held-out recordings {task.n_heldout}: hard-label student {hard}, distilled student {distilled}")
    assert hard["n_recordings"] == distilled["n_recordings"] == task.n_heldout
    assert distilled["macro_ap"] >= hard["macro_ap"] + MIN_MACRO_AP_GAIN, (hard, distilled)
    assert distilled["top1"] > hard["top1"], (hard, distilled)


@pytest.mark.slow
def test_the_distilled_run_records_its_teacher(students, teacher):
    from birdlab.training.run_dir import RunDir

    run = RunDir(students["distilled"]).load()
    assert run.config.teacher == teacher
    assert run.teacher is not None and run.teacher["model_sha256"] == TeacherModel.from_config(teacher).sha256
    assert run.teacher["licence_known"] is False  # the tiny teacher's licence is not given: the run says so
    info = run.run_info["teacher"]
    assert info["clips"]["unlabelled"] > 0 and info["clips"]["unlabelled_files"] == TASK.unlabelled_per_species * 4
    figures = run.metrics["teacher"]
    assert set(figures) >= {"macro_ap", "top1", "n_recordings", "evaluated_on", "student"}
    assert figures["n_recordings"] == figures["student"]["n_recordings"] > 0
    assert RunDir(students["hard"]).load().teacher is None
    assert RunDir(students["hard"]).read_metrics()["teacher"] is None
    history = (students["distilled"] / "history.csv").read_text().splitlines()[0]
    assert history.split(",") == ["epoch", "loss", "pr_auc", "val_loss", "val_pr_auc"]


@pytest.mark.slow
def test_the_distilled_student_exports_rfft_free_for_tflite_1_15(students, tmp_path):
    import keras

    from birdlab.export.audit import audit_tflite
    from birdlab.export.convert import convert_variant

    model = keras.saving.load_model(students["distilled"] / "model.keras", compile=False)
    path = tmp_path / "student.tflite"
    path.write_bytes(convert_variant(model, variant="f32"))
    audit = audit_tflite(path, floor="1.15.0")
    assert audit.ok, audit.problems
    assert not {op.name for op in audit.ops} & {"RFFT2D", "RFFT", "FLEX_DELEGATE", "CUSTOM"}


def test_the_model_card_states_the_teacher_and_its_terms():
    from types import SimpleNamespace

    from birdlab.export.model_card import render_model_card
    from birdlab.teacher.birdnet import BIRDNET_LICENCE

    record = {"model_file": "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite", "model_sha256": "ab" * 32, "n_labels": 6522,
              "labels_file": "BirdNET_GLOBAL_6K_V2.4_Labels.txt", "output": "logits", "temperature": 1.0,
              "weight": 0.5, "sample_rate_hz": 48000, "window_s": 3.0, "unlabeled_dirs": [], "is_birdnet_v2_4": True,
              "licence": BIRDNET_LICENCE, "licence_known": True, "non_commercial": True}
    run = SimpleNamespace(spec=SPEC, run_info={}, teacher=record)
    audit = SimpleNamespace(floor="1.15.0", ok=True, ops=(), metadata_min_runtime=None, table_min_runtime=None)
    fields = {"model_id": "m-f32", "run_id": "m", "variant": "f32", "birdlab_version": "0", "git_commit": "x",
              "threshold": 0.5, "metrics": {"teacher": {"macro_ap": 0.9, "top1": 0.8, "evaluated_on": "test",
                                                        "student": {"macro_ap": 0.7, "top1": 0.6}}}, "parity": {}}
    card = render_model_card(run=run, fields=fields, audit=audit, equivalence_text="", chosen=None, labels=())
    assert "## Teacher" in card and "Distilled from BirdNET v2.4" in card
    assert "NonCommercial-ShareAlike" in card and "carries those terms" in card
    assert "teacher on test: macro AP 0.9" in card


@pytest.mark.slow
def test_a_student_of_several_members_is_distilled_member_by_member(task, teacher, caches, tmp_path):
    import json

    import keras

    from birdlab.training.model import member_outputs_model
    from birdlab.training.train import train

    config = student(teacher=teacher)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, members=2))
    train(config=config, data_dir=task.labelled_dir, out_dir=tmp_path / "run", cache_root=caches["features"],
          teacher_cache_root=caches["teacher"], progress=False)
    history = (tmp_path / "run" / "history.csv").read_text(encoding="utf-8").splitlines()
    assert "pr_auc" in history[0].split(",") and len(history) == 1 + config.epochs
    assert json.loads((tmp_path / "run" / "run_info.json").read_text(encoding="utf-8"))["teacher"] is not None
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    x = np.random.default_rng(3).uniform(-80.0, 0.0, (2, *SPEC.input_shape)).astype(np.float32)
    each = member_outputs_model(model, members=2).predict(x, verbose=0).reshape(2, 2, -1)
    np.testing.assert_allclose(model.predict(x, verbose=0), each.mean(axis=1), atol=1e-6)
