"""Training end to end on the quick synthetic dataset: run directory, determinism, CLI, augmentations, configs."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.training.augment import AugmentConfig
from birdlab.training.config import ConfigError, TrainConfig, load_config, tiny
from birdlab.training.dataset import build_split, class_balance_weights, usable_recordings
from edge_runtime.spec import FeatureSpec

RUN_FILES = ("config.json", "feature_spec.json", "labels.csv", "model.keras", "metrics.json", "history.csv",
             "run_info.json", "split.json", "checkpoints/best.keras", "plots/training_curves.png",
             "plots/per_class_ap.png", "plots/confusion.png")
SPEC = FeatureSpec()
N_SPECIES = 3
DB_ATOL = 1e-4


@pytest.fixture(scope="module")
def quick_runs(synthetic_quick: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny preset trained twice with the same seed: in this process, and through the CLI in another."""
    from birdlab.training.train import train

    root = tmp_path_factory.mktemp("runs")
    cache = root / "cache"
    train(config=tiny(), data_dir=synthetic_quick, out_dir=root / "a", cache_root=cache, progress=False)
    proc = subprocess.run([sys.executable, "-m", "birdlab", "train", "--config", "tiny", "--data", str(synthetic_quick),
                           "--out", str(root / "b"), "--cache", str(cache)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "headline: clip.macro_ap" in proc.stdout and "row-wise micro F1" in proc.stdout
    return {"a": root / "a", "b": root / "b", "cache": cache, "data": synthetic_quick}


@pytest.mark.slow
def test_run_directory_holds_the_contract(quick_runs: dict[str, Path]) -> None:
    run = quick_runs["a"]
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert load_config(run / "config.json") == tiny()
    assert FeatureSpec.load(run) == SPEC
    with (run / "labels.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "ebird_code", "scientific_name", "common_name"]
    species_in_data = {r.primary_label for r in BirdCLEF2021(quick_runs["data"]).recordings()}
    assert {r["ebird_code"] for r in rows} == species_in_data
    info = json.loads((run / "run_info.json").read_text())
    assert info["seed"] == tiny().seed and "git_commit" in info
    assert info["missing_audio"] == {"listed": 12, "missing": 0, "first_missing": []}
    versions = info["package_versions"]
    assert {"keras", "numpy", "librosa"} <= set(versions) and {"tensorflow", "tensorflow-cpu"} & set(versions)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["row_wise_micro_f1"] <= 1.0
    assert metrics["evaluated_on"] == "test soundscapes"
    assert set(metrics["per_class"]) == {r["ebird_code"] for r in rows}
    assert np.array(metrics["confusion"]["matrix"]).shape == (len(rows) + 1, len(rows) + 1)
    # The keys: headline, clip (held-out recordings), soundscape (with its baseline); F1 kept for old readers.
    assert set(metrics["headline"]) == {"metric", "value", "why"}
    assert metrics["headline"]["metric"] == "clip.macro_ap" and 0.0 <= metrics["headline"]["value"] <= 1.0
    split = json.loads((run / "split.json").read_text())
    clip = metrics["clip"]
    assert {"n_recordings", "macro_ap", "padded_cmap", "top1", "per_class"} <= set(clip)
    assert clip["n_recordings"] == len(split["test_recordings"]) == info["clips"]["test_recordings"] == len(rows)
    assert clip["n_windows"] >= clip["n_recordings"] and set(clip["per_class"]) == {r["ebird_code"] for r in rows}
    assert {"macro_ap", "padded_cmap", "top1", "top1_chance"} <= set(clip["baseline"])
    assert set(metrics["soundscape"]) >= {"rows", "positive_rows", "row_wise_micro_f1", "nocall_baseline_f1",
                                          "degenerate"}
    assert metrics["soundscape"]["rows"] == metrics["test"]["n_rows"] and metrics["soundscape"]["degenerate"]
    assert not set(split["test_recordings"]) & set(split["train_recordings"] + split["validation_recordings"])
    assert set(split["grouping"]) == {r["ebird_code"] for r in rows}
    with (run / "history.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == info["epochs_run"] >= 1


@pytest.mark.slow
def test_same_seed_gives_the_same_split_weights_and_metrics(quick_runs: dict[str, Path]) -> None:
    a, b = quick_runs["a"], quick_runs["b"]
    assert (a / "split.json").read_text() == (b / "split.json").read_text()
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())


@pytest.mark.slow
def test_evaluate_from_disk_reproduces_the_metrics(quick_runs: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    from birdlab.cli import main

    run = quick_runs["b"]
    written = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").unlink()
    assert main(["evaluate", "--run", str(run), "--cache", str(quick_runs["cache"])]) == 0
    out = capsys.readouterr().out
    assert "headline: clip.macro_ap" in out and "all-nocall baseline" in out and "DEGENERATE" in out
    assert json.loads((run / "metrics.json").read_text()) == written


@pytest.mark.slow
def test_test_recordings_scored_one_at_a_time_give_the_same_metrics(quick_runs: dict[str, Path], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from birdlab.training import evaluate

    run = Path(shutil.copytree(quick_runs["a"], tmp_path / "one_by_one"))
    monkeypatch.setattr(evaluate, "RECORDINGS_PER_CHUNK", 1)
    metrics = evaluate.evaluate_saved_run(run, cache_root=quick_runs["cache"], progress=False)
    assert metrics == json.loads((quick_runs["a"] / "metrics.json").read_text())


@pytest.mark.slow
def test_an_older_run_without_test_recordings_is_evaluated_without_clip_figures_and_says_so(
        quick_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    from birdlab.cli import main

    run = Path(shutil.copytree(quick_runs["a"], tmp_path / "old"))
    split = json.loads((run / "split.json").read_text())
    old = {k: split[k] for k in ("train_recordings", "validation_recordings", "validation_soundscapes",
                                 "test_soundscapes")}
    (run / "split.json").write_text(json.dumps(old))
    assert main(["evaluate", "--run", str(run), "--cache", str(quick_runs["cache"])]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["clip"] is None and "no test recordings" in metrics["clip_note"]
    assert "clip: no clip figures" in out and "headline: none" in out  # the quick soundscape is degenerate


def test_split_is_seeded_stratified_and_disjoint(synthetic_quick: Path) -> None:
    config = tiny()
    _, recordings = usable_recordings(BirdCLEF2021(synthetic_quick), config=config)
    split = build_split(recordings, [7, 8, 9, 10], config=config)
    assert split == build_split(recordings, [7, 8, 9, 10], config=config)
    sides = [set(split.train_recordings), set(split.validation_recordings), set(split.test_recordings)]
    assert sum(map(len, sides)) == len(set.union(*sides)) == len(recordings)
    assert {k.split("/")[0] for k in split.validation_recordings} == {r.primary_label for r in recordings}
    assert {k.split("/")[0] for k in split.test_recordings} == {r.primary_label for r in recordings}
    assert len(split.validation_soundscapes) == 2 and len(split.test_soundscapes) == 2
    other = build_split(recordings, [7, 8, 9, 10], config=dataclasses.replace(config, seed=config.seed + 1))
    assert other != split


def test_class_balance_weights_favour_rare_species() -> None:
    targets = np.zeros((4, 2), np.float32)
    targets[:3, 0] = 1.0
    targets[3, 1] = 1.0
    weights = class_balance_weights(targets, power=1.0)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[3] == pytest.approx(3 * weights[0])
    np.testing.assert_allclose(class_balance_weights(targets, power=0.0), 1.0)


def _batch(rng: np.random.Generator, n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = rng.uniform(-80.0, 0.0, (n, SPEC.n_mels, SPEC.clip_frames, 1)).astype(np.float32)
    targets = np.eye(N_SPECIES, dtype=np.float32)[np.arange(n) % N_SPECIES]
    return features, targets, np.ones(n, np.float32)


def test_augmentations_are_seeded_and_keep_shapes(rng: np.random.Generator) -> None:
    import tensorflow as tf

    from birdlab.training.augment import augment_batch

    features, targets, weights = _batch(rng)
    kwargs = {"noise_bank": tf.constant(_batch(rng, 2)[0]), "top_db": SPEC.top_db, "amin": SPEC.db_amin}
    config = AugmentConfig(mixup_probability=1.0, noise_probability=1.0)
    one = augment_batch(features, targets, weights, seed=tf.constant([1, 2]), config=config, **kwargs)
    same = augment_batch(features, targets, weights, seed=tf.constant([1, 2]), config=config, **kwargs)
    other = augment_batch(features, targets, weights, seed=tf.constant([3, 4]), config=config, **kwargs)
    for a, b in zip(one, same, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(one[0].numpy(), other[0].numpy())
    x, y, _ = (t.numpy() for t in one)
    assert x.shape == features.shape and y.shape == targets.shape
    # Mixup with probability 1: every label set is a union of two rows (one or two species).
    assert np.all(y.sum(axis=1) >= 1) and np.all(y.sum(axis=1) <= 2) and np.any(y.sum(axis=1) == 2)
    # power_to_db's top_db holds after mixing.
    assert np.all(x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)) <= SPEC.top_db + DB_ATOL)


def test_augmentations_off_is_the_identity(rng: np.random.Generator) -> None:
    import tensorflow as tf

    from birdlab.training.augment import augment_batch

    features, targets, weights = _batch(rng)
    out = augment_batch(features, targets, weights, seed=tf.constant([1, 2]), config=AugmentConfig.off(),
                        noise_bank=None, top_db=SPEC.top_db, amin=SPEC.db_amin)
    np.testing.assert_array_equal(np.asarray(out[0]), features)
    np.testing.assert_array_equal(np.asarray(out[1]), targets)


def test_masks_fill_bands_with_the_clip_floor(rng: np.random.Generator) -> None:
    import tensorflow as tf

    from birdlab.training.augment import augment_batch

    features, targets, weights = _batch(rng)
    config = AugmentConfig(gain_db=0.0, noise_probability=0.0, mixup_probability=0.0, time_masks=1,
                           time_mask_max_frames=SPEC.clip_frames, freq_masks=0)
    x = augment_batch(features, targets, weights, seed=tf.constant([5, 6]), config=config, noise_bank=None,
                      top_db=None, amin=SPEC.db_amin)[0].numpy()
    changed = np.any(x != features, axis=(1, 3))  # (batch, frames)
    assert changed.any()
    for i in range(len(x)):
        masked_frames = np.flatnonzero(changed[i])
        if masked_frames.size:  # one contiguous band, set to the clip's minimum
            assert masked_frames.size == masked_frames[-1] - masked_frames[0] + 1
            np.testing.assert_array_equal(x[i, :, masked_frames], features[i].min())


def test_load_config_presets_and_files(tmp_path: Path) -> None:
    assert load_config("tiny") == tiny()
    assert load_config("demo").model.name == "default"
    toml = tmp_path / "small.toml"
    toml.write_text('preset = "demo"\nepochs = 3\n[model]\npreset = "tiny"\nhead_units = 8\n[augment]\nmixup_probability = 0.0\n')
    config = load_config(toml)
    assert (config.name, config.epochs, config.model.name, config.model.head_units) == ("small", 3, "tiny", 8)
    assert config.augment.mixup_probability == 0.0 and config.crops_per_recording == load_config("demo").crops_per_recording
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 3, "learning_rat": 0.1}')
    with pytest.raises(ConfigError, match=r"bad.json: unknown field\(s\) \['learning_rat'\]"):
        load_config(bad)
    bad.write_text('{"epochs": 0}')
    with pytest.raises(ConfigError, match="bad.json.*'epochs': must be >= 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config("huge")


def test_time_budget_stops_after_the_epoch_that_would_overrun(rng: np.random.Generator) -> None:
    import keras

    from birdlab.training.train import time_budget_callback

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = rng.random((8, 4)), rng.random((8, 1))
    tight = time_budget_callback(1e-6)
    assert len(model.fit(x, y, epochs=5, verbose=0, callbacks=[tight]).history["loss"]) == 1 and tight.stopped
    generous = time_budget_callback(3600.0)
    assert len(model.fit(x, y, epochs=3, verbose=0, callbacks=[generous]).history["loss"]) == 3
    assert not generous.stopped


@pytest.mark.slow
def test_weight_average_is_the_moving_average_of_every_step_and_ends_in_the_model(rng: np.random.Generator) -> None:
    import keras

    from birdlab.training.train import make_optimizer

    momentum, steps = 0.9, 12
    config = dataclasses.replace(tiny(), learning_rate=0.05, epochs=3, weight_average_momentum=momentum)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(make_optimizer(config, steps_per_epoch=steps // config.epochs), "mse")
    live: list[np.ndarray] = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: live.append(
        model.get_weights()[0].copy()))
    x, y = rng.standard_normal((8 * steps // config.epochs, 3)), rng.standard_normal((8 * steps // config.epochs, 1))
    model.fit(x, y, batch_size=8, epochs=config.epochs, shuffle=False, verbose=0, callbacks=[record])
    assert len(live) == steps
    average = live[0]  # the first step starts the average at the weights it produced
    for weights in live[1:]:
        average = momentum * average + (1 - momentum) * weights
    np.testing.assert_allclose(model.get_weights()[0], average, rtol=1e-5, atol=1e-6)
    assert np.abs(average - live[-1]).max() > 1e-3  # the model holds the average, not the last step
    with pytest.raises(ConfigError, match="weight_average_momentum"):
        dataclasses.replace(config, weight_average_momentum=1.0)


@pytest.mark.slow
def test_a_run_of_several_members_saves_their_average(quick_runs: dict[str, Path], tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    import keras

    from birdlab.training.model import member_outputs_model
    from birdlab.training.train import train

    members = 2
    config = dataclasses.replace(tiny(), model=dataclasses.replace(tiny().model, members=members))
    train(config=config, data_dir=quick_runs["data"], out_dir=tmp_path / "run", cache_root=quick_runs["cache"],
          progress=False)
    single = json.loads((quick_runs["a"] / "run_info.json").read_text(encoding="utf-8"))["parameters"]
    assert json.loads((tmp_path / "run" / "run_info.json").read_text(encoding="utf-8"))["parameters"] == members * single
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    x = rng.uniform(-80.0, 0.0, (3, *SPEC.input_shape)).astype(np.float32)
    each = member_outputs_model(model, members=members).predict(x, verbose=0).reshape(3, members, -1)
    assert model.output_shape == (None, each.shape[-1])
    np.testing.assert_allclose(model.predict(x, verbose=0), each.mean(axis=1), atol=1e-6)
    assert np.abs(each[:, 0] - each[:, 1]).max() > 1e-4  # two trained networks, not one


@pytest.mark.slow
def test_without_test_soundscapes_the_score_is_on_validation_and_says_so(quick_runs: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    import shutil

    import keras

    from birdlab.features.cache import FeatureCache
    from birdlab.training.dataset import LabelledClips, prepare_training_data
    from birdlab.training.evaluate import evaluate_run
    from birdlab.training.run_dir import RunDir

    run = RunDir(Path(shutil.copytree(quick_runs["a"], tmp_path / "run"))).load()
    data = prepare_training_data(data_dir=quick_runs["data"], config=run.config, spec=run.spec,
                                 cache=FeatureCache(spec=run.spec, root=quick_runs["cache"]),
                                 split=run.split, species=run.species, include_train=False, progress=False)
    data.test_rows = LabelledClips.empty(spec=run.spec, n_species=len(run.species))
    metrics = evaluate_run(run.run_dir, model=keras.models.load_model(run.run_dir.model_path), data=data)
    assert metrics["evaluated_on"] == "validation (no test soundscape)" and metrics["test"] is None
    assert metrics["row_wise_micro_f1"] == metrics["validation"]["row_wise_micro_f1"]


def test_cli_reports_a_missing_dataset_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "birdlab", "train", "--config", "tiny", "--data",
                           str(tmp_path / "absent"), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "train_metadata.csv" in proc.stderr and "Traceback" not in proc.stderr
