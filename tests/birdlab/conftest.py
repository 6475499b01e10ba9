"""Fixtures of tests/birdlab: a small real model, features and run directory, and the bundle exported from it.

Built from lab_fixtures' helpers; every fixture is seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lab_fixtures import N_SPECIES, SEED, build_small_model, db_features, small_spec, write_run_dir

from birdlab.features.log_mel import FeatureSpec


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    """melspec.wasm of the current sources (built into the cache when missing)."""
    from birdlab.frontend.wasm import build_wasm

    return build_wasm()


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
    from birdlab.export.run_features import RunFeatures

    return RunFeatures(representative=export_features[:16], heldout=export_features[16:],
                       heldout_truth=export_targets[16:] > 0.5, heldout_source="fixture")


@pytest.fixture(scope="session")
def exported_bundle(tmp_path_factory, export_run_dir, export_run_features):
    """birdlab.export.bundle_writer.export_run of export_run_dir (f32 shipped): the ExportResult; do not modify its files."""
    from birdlab.export.bundle_writer import export_run

    out = tmp_path_factory.mktemp("export") / "small"
    return export_run(run_dir=export_run_dir, out_dir=out, variant="f32", features=export_run_features)
