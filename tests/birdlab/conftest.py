"""Fixtures of tests/birdlab: small real inputs for the export tests.

A shrunk FeatureSpec, the real model preset shrunk with dataclasses.replace, dB
features and a run directory in the runs/NAME contract; used by test_export.py,
test_tflite_audit.py, test_equivalence.py, test_compat.py and test_bundle_cli.py.
Everything is built by code from seeded randomness.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from birdlab import model as model_lib
from birdlab.features import FeatureSpec

SEED = 20210601
N_SPECIES = 5
CLIP_SECONDS = 1.0
"""1-s clips (64 x 101 inputs) instead of 5 s: the same graph, five times less work."""
DB_MEAN = -45.0
DB_STD = 15.0
SPECIES = (
    ("eurrob1", "Erithacus rubecula", "European Robin"),
    ("blackc1", "Sylvia atricapilla", "Eurasian Blackcap"),
    ("comcha", "Fringilla coelebs", "Common Chaffinch"),
    ("eurwre", "Troglodytes troglodytes", "Eurasian Wren"),
    ("grtit1", "Parus major", "Great Tit"),
)


def small_spec() -> FeatureSpec:
    """The default FeatureSpec with 1-s clips: input (64, 101, 1)."""
    return dataclasses.replace(FeatureSpec(), clip_seconds=CLIP_SECONDS)


def small_model_config() -> model_lib.ModelConfig:
    """The default preset shrunk; its weight tensors are large enough (>= 1024 values) to be quantised."""
    return dataclasses.replace(model_lib.default(), name="small", block_filters=(32, 64), head_units=64)


def build_small_model(*, spec: FeatureSpec, config: model_lib.ModelConfig | None = None, seed: int = SEED):
    """The real birdlab CNN (untrained, seeded weights) for `spec`: input (batch, *spec.input_shape)."""
    import keras

    keras.utils.set_random_seed(seed)
    return model_lib.build_model(config=config or small_model_config(), input_shape=spec.input_shape,
                                 n_species=N_SPECIES, norm_mean_db=DB_MEAN, norm_std_db=DB_STD)


def db_features(rng: np.random.Generator, *, n_clips: int, spec: FeatureSpec) -> np.ndarray:
    """Log-mel-like dB values in [-80, 0] with smooth structure: float32 (n_clips, *spec.input_shape)."""
    n_mels, n_frames, _ = spec.input_shape
    base = rng.normal(DB_MEAN, DB_STD, size=(n_clips, n_mels, 1, 1))
    texture = rng.normal(0.0, 6.0, size=(n_clips, n_mels, n_frames, 1))
    return np.clip(base + texture, -80.0, 0.0).astype(np.float32)


def write_labels_csv(path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "ebird_code", "scientific_name", "common_name"])
        for i, (code, scientific, common) in enumerate(SPECIES[:N_SPECIES]):
            writer.writerow([i, code, scientific, common])


def write_run_dir(run_dir: Path, *, model, spec: FeatureSpec, threshold: float = 0.5) -> Path:
    """A run directory as the training step writes it (runs/NAME/ contract), around `model`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec.save(run_dir)
    write_labels_csv(run_dir / "labels.csv")
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps({"model": small_model_config().to_dict(), "seed": SEED}),
                                         encoding="utf-8")
    metrics = {"row_wise_micro_f1": 0.61, "threshold": threshold, "per_class": {}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (run_dir / "history.csv").write_text("epoch,loss,val_loss\n0,0.7,0.69\n", encoding="utf-8")
    run_info = {"git_commit": "0" * 40, "seed": SEED, "packages": {}}
    (run_dir / "run_info.json").write_text(json.dumps(run_info), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="session")
def export_spec() -> FeatureSpec:
    return small_spec()


@pytest.fixture(scope="session")
def small_keras_model(export_spec):
    """The shrunk birdlab CNN for export_spec, seeded; shared by the session (do not train it)."""
    return build_small_model(spec=export_spec)


@pytest.fixture(scope="session")
def export_features(export_spec) -> np.ndarray:
    """24 clips of dB features, float32 (24, 64, 101, 1)."""
    return db_features(np.random.default_rng(SEED), n_clips=24, spec=export_spec)


@pytest.fixture(scope="session")
def export_targets() -> np.ndarray:
    """Multi-hot labels for export_features, float32 (24, N_SPECIES); one or two species per clip."""
    rng = np.random.default_rng(SEED + 1)
    targets = np.zeros((24, N_SPECIES), dtype=np.float32)
    targets[np.arange(24), rng.integers(0, N_SPECIES, size=24)] = 1.0
    targets[np.arange(0, 24, 3), rng.integers(0, N_SPECIES, size=8)] = 1.0
    return targets


@pytest.fixture(scope="session")
def export_run_dir(tmp_path_factory, small_keras_model, export_spec) -> Path:
    """runs/small/ as training writes it, around small_keras_model."""
    return write_run_dir(tmp_path_factory.mktemp("runs") / "small", model=small_keras_model, spec=export_spec)


@pytest.fixture(scope="session")
def export_run_features(export_features, export_targets):
    """Representative = the first 16 clips, held-out = the last 8 with their labels."""
    from birdlab.run_features import RunFeatures

    return RunFeatures(representative=export_features[:16], heldout=export_features[16:],
                       heldout_truth=export_targets[16:] > 0.5, heldout_source="fixture")


@pytest.fixture(scope="session")
def exported_bundle(tmp_path_factory, export_run_dir, export_run_features):
    """birdlab.bundle.export_run of export_run_dir (f32 shipped): the ExportResult; do not modify its files."""
    from birdlab.bundle import export_run

    out = tmp_path_factory.mktemp("export") / "small"
    return export_run(run_dir=export_run_dir, out_dir=out, variant="f32", features=export_run_features)
