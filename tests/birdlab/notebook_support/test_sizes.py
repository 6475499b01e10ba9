"""Notebook sizes: the smoke size is small, the environment variable selects it, data_dir is checked."""

from __future__ import annotations

import pytest

from birdlab.data import birdclef2021 as bc
from birdlab.data.synth import SynthConfig
from birdlab.errors import UserError
from birdlab.notebook_support.sizes import SIZE_ENV, full, notebook_dataset, notebook_size, smoke


def test_environment_variable_selects_the_size(monkeypatch):
    monkeypatch.setenv(SIZE_ENV, "smoke")
    assert notebook_size() == smoke()
    monkeypatch.delenv(SIZE_ENV)
    assert notebook_size() == full()


def test_explicit_name_wins_over_environment(monkeypatch):
    monkeypatch.setenv(SIZE_ENV, "smoke")
    assert notebook_size("full").name == "full"


def test_unknown_size_names_the_variable_and_the_choices():
    with pytest.raises(UserError, match=r"'huge'.*BIRDLAB_NOTEBOOK_SIZE.*\['full', 'smoke'\]"):
        notebook_size("huge")


def test_smoke_is_smaller_than_full():
    assert smoke().synth == SynthConfig.quick()
    assert smoke().synthetic_dir != full().synthetic_dir
    assert smoke().synth.n_species * smoke().synth.recordings_per_species < (
        full().synth.n_species * full().synth.recordings_per_species)


def test_dataset_is_synthesised_once_into_the_size_directory(tmp_path):
    import dataclasses

    size = dataclasses.replace(smoke(), synthetic_dir=tmp_path / "synthetic")
    root = notebook_dataset(size)
    assert root == tmp_path / "synthetic"
    metadata = root / bc.METADATA_CSV
    stamp = metadata.stat().st_mtime_ns
    assert notebook_dataset(size) == root
    assert metadata.stat().st_mtime_ns == stamp, "an existing dataset of the same config must be reused"


def test_real_data_dir_is_returned_as_is(synthetic_quick):
    assert notebook_dataset(smoke(), data_dir=str(synthetic_quick)) == synthetic_quick


def test_data_dir_without_metadata_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"no train_metadata\.csv; set DATA_DIR"):
        notebook_dataset(smoke(), data_dir=tmp_path)
