"""The notebooks' shared run and bundle: reused when up to date, rebuilt otherwise (real training and export)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from birdlab import paths
from birdlab.notebook_support.runs import (
    ensure_exported,
    ensure_trained,
    is_exported,
    is_trained,
    notebook_bundle_dir,
    notebook_run_dir,
)
from birdlab.notebook_support.sizes import smoke
from birdlab.training.config import load_config


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    """runs/ and export/ under tmp_path, so the tests never touch the repository's."""
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(paths, "EXPORT_DIR", tmp_path / "export")
    return tmp_path


def test_run_and_bundle_names(isolated_dirs, tmp_path):
    assert notebook_run_dir(smoke()) == isolated_dirs / "runs" / "notebook-smoke"
    assert notebook_run_dir(smoke(), data_dir=tmp_path / "birdclef-2021").name == "notebook-smoke-birdclef-2021"
    assert notebook_bundle_dir(isolated_dirs / "runs" / "notebook-smoke") == isolated_dirs / "export" / "notebook-smoke"


def _fake_run(run_dir, *, config, data_dir):
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(config.to_json(), encoding="utf-8")
    (run_dir / "run_info.json").write_text(json.dumps({"data_dir": str(data_dir.resolve())}), encoding="utf-8")
    (run_dir / "model.keras").write_bytes(b"model")
    (run_dir / "metrics.json").write_text("{}", encoding="utf-8")
    return run_dir


def test_is_trained_needs_same_config_same_data_and_a_finished_run(tmp_path):
    config = load_config("tiny")
    data_dir = tmp_path / "data"
    run_dir = _fake_run(tmp_path / "run", config=config, data_dir=data_dir)
    assert is_trained(run_dir, config=config, data_dir=data_dir)
    assert not is_trained(run_dir, config=dataclasses.replace(config, seed=1), data_dir=data_dir)
    assert not is_trained(run_dir, config=config, data_dir=tmp_path / "other")
    (run_dir / "metrics.json").unlink()
    assert not is_trained(run_dir, config=config, data_dir=data_dir)


def test_is_exported_needs_the_run_id_and_a_newer_manifest(tmp_path):
    run_dir = _fake_run(tmp_path / "notebook-smoke", config=load_config("tiny"), data_dir=tmp_path)
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    assert not is_exported(bundle_dir, run_dir=run_dir)
    manifest = bundle_dir / "manifest.json"
    manifest.write_text(json.dumps({"run_id": "notebook-smoke"}), encoding="utf-8")
    model_time = (run_dir / "model.keras").stat().st_mtime
    os.utime(manifest, (model_time + 10, model_time + 10))
    assert is_exported(bundle_dir, run_dir=run_dir)
    os.utime(manifest, (model_time - 10, model_time - 10))
    assert not is_exported(bundle_dir, run_dir=run_dir), "a bundle older than the model is stale"
    manifest.write_text(json.dumps({"run_id": "other"}), encoding="utf-8")
    assert not is_exported(bundle_dir, run_dir=run_dir)


@pytest.mark.slow
def test_ensure_trains_and_exports_once(isolated_dirs, synthetic_quick):
    size = dataclasses.replace(smoke(), synthetic_dir=synthetic_quick)
    run_dir = ensure_trained(size, data_dir=synthetic_quick, progress=False)
    assert run_dir == isolated_dirs / "runs" / "notebook-smoke"
    assert is_trained(run_dir, config=load_config("tiny"), data_dir=synthetic_quick)
    model_time = (run_dir / "model.keras").stat().st_mtime_ns
    assert ensure_trained(size, data_dir=synthetic_quick, progress=False) == run_dir
    assert (run_dir / "model.keras").stat().st_mtime_ns == model_time, "an up-to-date run is reused"

    bundle_dir = ensure_exported(size, run_dir=run_dir)
    assert bundle_dir == isolated_dirs / "export" / "notebook-smoke"
    from edge_runtime.bundle import open_bundle

    bundle = open_bundle(bundle_dir)
    assert bundle.manifest["run_id"] == "notebook-smoke" and bundle.manifest["variant"] == size.export_variant
    manifest_time = (bundle_dir / "manifest.json").stat().st_mtime_ns
    assert ensure_exported(size, run_dir=run_dir) == bundle_dir
    assert (bundle_dir / "manifest.json").stat().st_mtime_ns == manifest_time, "an up-to-date bundle is reused"
