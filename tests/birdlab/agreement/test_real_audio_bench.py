"""The real-audio benchmark: the held-out split (known answers), and one end-to-end run (train, export, the edge
runtime as a subprocess over the held-out files) on the quick synthetic dataset or, when $BIRDLAB_REAL_AUDIO is
set, a handful of real species recordings."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from birdlab.agreement.real_audio_bench import (
    EDGE_THRESHOLD,
    RealAudioBenchError,
    baselines,
    clip_figures,
    describe,
    held_out_split,
    run_real_audio_bench,
    write_train_root,
)
from birdlab.data.birdclef2021 import BirdCLEF2021, Recording
from birdlab.data.species import Species, load_species
from birdlab.training.config import tiny
from edge_runtime.audio import load_audio
from edge_runtime.spec import FeatureSpec

REPO_ROOT = Path(__file__).resolve().parents[3]
SEED = 2021
REAL_SPECIES = 3
"""Species taken from the real recordings for the end-to-end run (those with >= 3 files, seeded)."""


def _recording(code: str, name: str) -> Recording:
    fields = {f.name: None for f in dataclasses.fields(Recording)}
    fields.update(primary_label=code, filename=name)
    return Recording(**fields)  # type: ignore[arg-type]


def _recordings(counts: dict[str, int]) -> list[Recording]:
    return [_recording(code, f"XC{i}.ogg") for code, n in counts.items() for i in range(n)]


SPECIES = (Species("b", "B b", "Bee"), Species("a", "A a", "Ay"), Species("c", "C c", "See"), Species("d", "D d", "Dee"))


def test_the_split_holds_out_a_third_per_species_and_leaves_out_rare_species():
    split = held_out_split(_recordings({"a": 3, "b": 6, "c": 2, "d": 4}), SPECIES, seed=SEED)
    assert [s.ebird_code for s in split.species] == ["b", "a", "d"], "the species list's order, rare ones out"
    held = {code: sum(r.primary_label == code for r in split.test) for code in "abd"}
    assert held == {"a": 1, "b": 2, "d": 1}
    assert len(split.train) == 3 + 6 + 4 - 4
    assert split.species_left_out == 1
    assert not {(r.primary_label, r.filename) for r in split.train} & {(r.primary_label, r.filename) for r in split.test}


def test_rare_species_can_join_the_training_as_extra_classes_without_changing_what_is_scored():
    recordings = _recordings({"a": 3, "b": 6, "c": 2, "d": 4})
    plain = held_out_split(recordings, SPECIES, seed=SEED)
    split = held_out_split(recordings, SPECIES, seed=SEED, train_rare_species=True)
    assert split.species == plain.species and split.test == plain.test, "the scored species and held-out files"
    assert [s.ebird_code for s in split.extra_species] == ["c"] and split.species_left_out == 0
    assert [s.ebird_code for s in split.model_species] == ["b", "a", "d", "c"], "scored first, extra after"
    assert set(split.train) - set(plain.train) == {r for r in recordings if r.primary_label == "c"}
    assert split.train_of_scored_species == plain.train == plain.train_of_scored_species
    assert split.to_dict()["extra_species"] == ["c"] and plain.to_dict()["extra_species"] == []


def test_extra_classes_count_in_top1_but_not_in_the_scored_ap():
    # 3 recordings of scored species 0, 1, 0; column 2 is an extra (trained-only) class.
    scores = np.array([[0.9, 0.1, 0.95],   # the extra class outranks the right species: top-1 wrong
                       [0.2, 0.8, 0.10],
                       [0.7, 0.3, 0.20]])
    primary = np.array([0, 1, 0])
    figures = clip_figures(scores, primary, n_scored=2)
    assert figures["top1"] == pytest.approx(2 / 3)
    assert figures["macro_ap"] == pytest.approx(1.0) and figures["n_species_scored"] == 2
    assert clip_figures(scores[:, :2], primary)["top1"] == pytest.approx(1.0)


def test_the_split_is_seeded_and_independent_of_input_order():
    recordings = _recordings({"a": 6, "b": 6})
    first = held_out_split(recordings, SPECIES, seed=SEED).to_dict()
    assert held_out_split(recordings[::-1], SPECIES, seed=SEED).to_dict() == first
    others = [held_out_split(recordings, SPECIES, seed=s).to_dict()["test"] for s in range(SEED + 1, SEED + 6)]
    assert any(o != first["test"] for o in others), "another seed holds out other recordings"


def test_the_split_refuses_settings_that_leave_nothing_to_train_on():
    with pytest.raises(RealAudioBenchError, match="min_recordings"):
        held_out_split(_recordings({"a": 3}), SPECIES, min_recordings=1, seed=SEED)
    with pytest.raises(RealAudioBenchError, match="test_fraction"):
        held_out_split(_recordings({"a": 3}), SPECIES, test_fraction=1.0, seed=SEED)


def test_baselines_are_chance_and_prevalence():
    primary = np.array([0, 0, 1, 2])
    b = baselines(primary, n_species=5)
    assert b["chance_top1"] == pytest.approx(1 / 5)
    assert b["prevalence_macro_ap"] == pytest.approx(np.mean([2 / 4, 1 / 4, 1 / 4]))
    assert b["majority_top1"] == pytest.approx(2 / 4)


def test_the_train_root_links_only_the_train_recordings(synthetic_quick, tmp_path):
    dataset = BirdCLEF2021(synthetic_quick)
    species = tuple(s for s in load_species() if s.ebird_code in {r.primary_label for r in dataset.recordings()})
    split = held_out_split(dataset.recordings(), species, seed=SEED)
    root = write_train_root(split, dataset_root=synthetic_quick, dest=tmp_path / "train_root")
    linked = BirdCLEF2021(root).recordings()
    assert sorted((r.primary_label, r.filename) for r in linked) == sorted((r.primary_label, r.filename)
                                                                           for r in split.train)
    assert all(r.audio_path.is_symlink() and r.audio_path.is_file() for r in linked)
    assert [s.ebird_code for s in load_species(root / "species.csv")] == [s.ebird_code for s in split.species]
    write_train_root(split, dataset_root=synthetic_quick, dest=tmp_path / "train_root")  # a re-run replaces it
    assert len(BirdCLEF2021(root).recordings()) == len(split.train)


def _real_subset(real_audio: Path, work: Path) -> Path:
    """REAL_SPECIES seeded species with >= 3 files, 3 files each, as a SOURCES.csv (absolute paths): the bench
    imports it itself."""
    with (real_audio / "species" / "SOURCES.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_species: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_species.setdefault(row["species_scientific"], []).append(row)
    eligible = sorted(s for s, r in by_species.items() if len(r) >= 3)
    chosen = sorted(np.random.default_rng(SEED).choice(eligible, REAL_SPECIES, replace=False))
    work.mkdir(parents=True)
    with (work / "SOURCES.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "file": str(real_audio / "species" / r["file"])} for s in chosen
                         for r in by_species[s][:3])
    return work


@pytest.fixture(scope="module")
def bench_data(synthetic_quick, tmp_path_factory) -> Path:
    """A handful of real recordings when $BIRDLAB_REAL_AUDIO is set (imported by the bench), else the quick
    synthetic dataset (4 species x 3 recordings)."""
    value = os.environ.get("BIRDLAB_REAL_AUDIO", "")
    if value and (Path(value) / "species" / "SOURCES.csv").is_file():
        return _real_subset(Path(value).resolve(), tmp_path_factory.mktemp("real") / "sources")
    return synthetic_quick


@pytest.mark.slow
def test_the_bench_scores_held_out_recordings_through_the_edge_runtime(bench_data, tmp_path):
    out = tmp_path / "bench.json"
    config = dataclasses.replace(tiny(), seed=SEED)
    result = run_real_audio_bench(data=bench_data, out=out, config=config, work_dir=tmp_path / "work",
                                  import_root=tmp_path / "import", progress=False)
    assert json.loads(out.read_text()) == result
    n_species = result["n_species"]
    assert n_species >= 3
    assert result["n_train"] + result["n_test"] == 3 * n_species, "every species has 3 recordings here"
    assert result["n_test"] == n_species, "one of three held out per species"
    assert len(result["split"]["test"]) == result["n_test"] and len(result["split"]["train"]) == result["n_train"]
    assert not set(result["split"]["test"]) & set(result["split"]["train"])
    student = result["student"]
    assert set(student) >= {"top1", "macro_ap", "padded_cmap", "n_species_scored", "n_recordings"}
    assert student["n_recordings"] == result["n_test"] and student["n_species_scored"] == n_species
    assert 0.0 <= student["top1"] <= 1.0 and 0.0 < student["macro_ap"] <= 1.0
    assert result["baselines"]["chance_top1"] == pytest.approx(1 / n_species)
    assert result["baselines"]["prevalence_macro_ap"] == pytest.approx(1 / n_species)
    assert result["config"]["seed"] == SEED and result["config"]["name"] == "tiny"
    assert {"student_train_s", "student_export_s", "student_edge_s", "total_s"} <= set(result["timings_s"])
    # The edge runtime saw every window of every held-out file and reported every species in each one.
    root = BirdCLEF2021(result["data"])
    by_key = {f"{r.primary_label}/{r.filename}": r for r in root.recordings()}
    spec = FeatureSpec()
    windows = sum(int(np.ceil(load_audio(by_key[k].audio_path, sample_rate_hz=spec.sample_rate_hz).size
                              / spec.clip_samples)) for k in result["split"]["test"])
    edge = result["edge"]
    assert (edge["n_windows"], edge["files_failed"], edge["threshold"]) == (windows, 0, EDGE_THRESHOLD)
    assert edge["n_detections"] == windows * n_species, "threshold ~0 and top_n 0: every species in every window"
    # Training never saw a held-out recording.
    trained_on = {f"{r.primary_label}/{r.filename}" for r in BirdCLEF2021(tmp_path / "work" / "train_root").recordings()}
    assert trained_on == set(result["split"]["train"])


def test_the_cli_names_a_folder_that_is_no_dataset(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "birdlab", "bench", "real-audio", "--data", str(tmp_path),
                           "--out", str(tmp_path / "x.json"), "--config", "tiny"],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(tmp_path) in proc.stderr and "data import" in proc.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_with_a_teacher_the_bench_scores_it_and_a_distilled_student(synthetic_quick, tmp_path):
    """The tiny RFFT2D teacher that knows the synthetic voices (birdlab.teacher.tiny) on the quick dataset: its
    figures on the same held-out recordings, and a second student trained with it."""
    from birdlab.data.synth import SynthConfig
    from birdlab.teacher.config import TeacherConfig
    from birdlab.teacher.tiny import synth_teacher

    codes = {r.primary_label for r in BirdCLEF2021(synthetic_quick).recordings()}
    species = [s for s in load_species() if s.ebird_code in codes]
    tiny_teacher = synth_teacher(tmp_path / "teacher", species=species, seed=SynthConfig.quick().seed)
    teacher = TeacherConfig(teacher_model=str(tiny_teacher.model_path), teacher_labels=str(tiny_teacher.labels_path),
                            teacher_sample_rate_hz=tiny_teacher.sample_rate_hz, teacher_weight=0.5)
    result = run_real_audio_bench(data=synthetic_quick, out=tmp_path / "bench.json",
                                  config=dataclasses.replace(tiny(), seed=SEED), teacher=teacher,
                                  work_dir=tmp_path / "work", progress=False)
    for key in ("teacher", "student", "student_distilled"):
        assert result[key]["n_recordings"] == result["n_test"] == len(species), key
        assert result[key]["n_species_scored"] == len(species), key
        assert 0.0 < result[key]["macro_ap"] <= 1.0, key
    assert result["teacher"]["unmapped_species"] == [] and result["teacher"]["files_failed"] == 0
    assert result["teacher"]["macro_ap"] > result["baselines"]["prevalence_macro_ap"], "the teacher knows the voices"
    assert result["student_distilled_training"]["teacher_weight"] == 0.5
    assert result["student_distilled_edge"]["n_windows"] == result["edge"]["n_windows"]
    config = json.loads((Path(result["student_distilled_training"]["run_dir"]) / "config.json").read_text())
    assert config["teacher"]["teacher_model"] == str(tiny_teacher.model_path)
    cost = result["cost"]  # both measured in this run, one thread each
    assert cost["teacher_ms_per_audio_second"] > 0 and cost["student_ms_per_audio_second"] > 0
    assert cost["student_over_teacher"] == pytest.approx(
        cost["student_ms_per_audio_second"] / cost["teacher_ms_per_audio_second"], rel=0.01, abs=1e-4)
    assert cost["meets_target"] == (cost["student_over_teacher"] <= 0.1)
    assert "compute per audio second" in describe(result)


def test_the_real_audio_preset_changes_only_the_data_use_crops_schedule_and_members():
    from birdlab.training.config import REAL_AUDIO_MEMBERS, TrainConfig, birdclef2021_brittany, load_config

    assert birdclef2021_brittany() == TrainConfig(), "the other presets keep their behaviour"
    real, base = load_config("real_audio"), birdclef2021_brittany()
    changed = {f.name for f in dataclasses.fields(TrainConfig) if getattr(real, f.name) != getattr(base, f.name)}
    assert changed == {"name", "validation_fraction", "crops_per_recording", "crop_energy_exponent", "batch_size",
                       "learning_rate", "epochs", "early_stopping_patience", "max_train_seconds", "model"}
    assert real.validation_fraction == 0.0 and real.early_stopping_patience >= real.epochs  # trained to the end
    assert real.model == dataclasses.replace(base.model, members=REAL_AUDIO_MEMBERS) and REAL_AUDIO_MEMBERS > 1
    assert real.augment == base.augment
