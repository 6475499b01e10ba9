"""The training run and the export bundle that the notebooks share.

02_train trains `runs/notebook-<size>` with the size's preset; 03_export exports it to
`export/notebook-<size>`; 04_parity and 05_edge_replay reuse both. Each notebook can also
run alone: `ensure_trained` and `ensure_exported` build what is missing and reuse what is
up to date (same config and dataset for a run; a bundle newer than its run's model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from birdlab import paths
from birdlab.errors import UserError
from birdlab.export.bundle_writer import export_run
from birdlab.notebook_support.sizes import NotebookSize
from birdlab.training.config import TrainConfig, load_config
from birdlab.training.run_dir import CONFIG_FILENAME, METRICS_FILENAME, MODEL_FILENAME, RunDir
from birdlab.training.train import train

RUN_PREFIX = "notebook-"


def notebook_run_dir(size: NotebookSize, *, data_dir: str | Path | None = None) -> Path:
    """runs/notebook-<size>, or runs/notebook-<size>-<dataset folder> for a real dataset."""
    suffix = f"-{Path(data_dir).resolve().name}" if data_dir else ""
    return paths.RUNS_DIR / f"{RUN_PREFIX}{size.name}{suffix}"


def notebook_bundle_dir(run_dir: str | Path) -> Path:
    """export/<run name>: where 03_export writes the bundle of `run_dir`."""
    return paths.EXPORT_DIR / Path(run_dir).name


def is_trained(run_dir: str | Path, *, config: TrainConfig, data_dir: str | Path) -> bool:
    """True when `run_dir` holds a finished run of exactly `config` on `data_dir`."""
    run = RunDir(Path(run_dir))
    try:
        run.require((MODEL_FILENAME, METRICS_FILENAME, CONFIG_FILENAME))
        saved_config, run_info = run.read_config(), run.read_run_info()
    except UserError:
        return False
    return saved_config.to_dict() == config.to_dict() and run_info.get("data_dir") == str(Path(data_dir).resolve())


def ensure_trained(size: NotebookSize, *, data_dir: str | Path, retrain: bool = False, progress: bool = True) -> Path:
    """Train the size's preset on `data_dir` unless an identical finished run exists; returns the run directory.

    retrain: train again even when the run is up to date (the old run directory is replaced).
    """

    config = load_config(size.train_preset)
    is_real = Path(data_dir).resolve() != size.synthetic_dir.resolve()
    run_dir = notebook_run_dir(size, data_dir=data_dir if is_real else None)
    if not retrain and is_trained(run_dir, config=config, data_dir=data_dir):
        return run_dir
    if run_dir.exists():
        shutil.rmtree(run_dir)
    train(config=config, data_dir=data_dir, out_dir=run_dir, progress=progress)
    return run_dir


def is_exported(bundle_dir: str | Path, *, run_dir: str | Path) -> bool:
    """True when `bundle_dir` is a bundle of `run_dir` written after the run's model.keras."""
    bundle_dir, run_dir = Path(bundle_dir), Path(run_dir)
    manifest_path = bundle_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        newer = manifest_path.stat().st_mtime >= RunDir(run_dir).model_path.stat().st_mtime
    except (OSError, json.JSONDecodeError):
        return False
    return newer and manifest.get("run_id") == run_dir.name


def ensure_exported(size: NotebookSize, *, run_dir: str | Path, reexport: bool = False) -> Path:
    """Export `run_dir` (the size's variant shipped) unless its bundle is up to date; returns the bundle directory."""

    bundle_dir = notebook_bundle_dir(run_dir)
    if reexport or not is_exported(bundle_dir, run_dir=run_dir):
        export_run(run_dir=run_dir, out_dir=bundle_dir, variant=size.export_variant)
    return bundle_dir
