"""birdlab.export.run_features: which clips the export's Keras-vs-TFLite comparison runs on, on real files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from lab_fixtures import write_run_dir

from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.data.species import load_species
from birdlab.export.run_features import RunFeaturesError, load_run_features
from birdlab.training.config import tiny
from birdlab.training.dataset import Split, recording_key
from birdlab.training.run_dir import RunDir
from edge_runtime.spec import FeatureSpec


def _run_holding_nothing_out(root: Path, data: Path, model, *, validation_fraction: float) -> RunDir:
    """A finished run directory whose split trains on every recording and scores no soundscape."""
    dataset = BirdCLEF2021(data)
    run = RunDir(write_run_dir(root, model=model, spec=FeatureSpec()))
    config = dataclasses.replace(tiny(), validation_fraction=validation_fraction, test_fraction=0.0)
    keys = tuple(recording_key(r) for r in dataset.recordings())
    run.write_inputs(config=config, spec=FeatureSpec(), species=load_species(),
                     split=Split(keys, (), (), ()))
    run.write_run_info({"git_commit": "0" * 40, "seed": config.seed, "packages": {}, "data_dirs": [str(data)]})
    return run


def test_a_run_that_holds_nothing_out_is_compared_on_its_training_crops_and_says_so(synthetic_quick, small_keras_model, tmp_path):
    run = _run_holding_nothing_out(tmp_path / "run", synthetic_quick, small_keras_model, validation_fraction=0.0)
    features = load_run_features(run.load(), data_dir=synthetic_quick)
    assert features.heldout_source.startswith("training crops")
    assert len(features.heldout) > 0 and features.heldout.shape[1:] == features.representative.shape[1:]


def test_a_run_that_should_hold_recordings_out_but_has_none_is_an_error(synthetic_quick, small_keras_model, tmp_path):
    run = _run_holding_nothing_out(tmp_path / "run", synthetic_quick, small_keras_model, validation_fraction=0.2)
    with pytest.raises(RunFeaturesError, match="no held-out clips"):
        load_run_features(run.load(), data_dir=synthetic_quick)
