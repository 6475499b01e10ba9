"""Sizes of the research notebooks: `smoke` for CI (nbval), `full` for a researcher's run.

A notebook's `parameters` cell (papermill's convention) reads the size name from
$BIRDLAB_NOTEBOOK_SIZE (default `full`) and an optional data directory; everything
else it needs comes from the frozen `NotebookSize` returned here, so the notebook
holds no numbers of its own and CI runs the same code at a smaller size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import birdlab.data.birdclef2021 as bc
from birdlab import paths
from birdlab.data.synth import SynthConfig, ensure_synthetic
from birdlab.errors import UserError

SIZE_ENV = "BIRDLAB_NOTEBOOK_SIZE"
"""Environment variable that selects the notebook size (`smoke` in CI)."""
DEFAULT_SIZE = "full"


@dataclass(frozen=True)
class NotebookSize:
    """How much work the notebooks do."""

    name: str
    """`smoke` (CI, minutes on 2 cores for all notebooks) or `full`."""
    synth: SynthConfig
    """The synthetic dataset used when no real BirdCLEF 2021 directory is given."""
    synthetic_dir: Path
    """Where that synthetic dataset is written (git-ignored)."""
    examples_per_species: int
    """Example spectrograms shown per species in 01_data."""
    max_species_shown: int
    """Species shown in per-species figures (the first n in label order)."""
    work_dir: Path
    """Where the notebooks write reports (parity.json, report.html, ...); git-ignored."""
    parity_max_files: int
    """Audio files compared in 04_parity (the first n, sorted by path)."""
    parity_worst_files: int
    """Worst files drawn side by side in 04_parity."""
    train_preset: str
    """birdlab.training.config preset trained by 02_train (and reused by 03-05)."""
    export_variant: str
    """Variant shipped as the bundle's model.tflite by 03_export ('f32', 'f16' or 'int8')."""
    compat_runtimes: tuple[str, ...]
    """Runtimes of the compatibility matrix (birdlab.export.compat names; each is a cached venv, one pip install)."""
    latency_repeats: int
    """Timed single-clip inferences per variant in 03_export (the median is reported)."""


def smoke() -> NotebookSize:
    """The CI size: the quick synthetic dataset (4 species x 3 recordings, one 30-s soundscape)."""
    return NotebookSize(
        name="smoke",
        synth=SynthConfig.quick(),
        synthetic_dir=paths.INTERIM_DIR / "notebooks-smoke" / "synthetic",
        examples_per_species=1,
        max_species_shown=4,
        work_dir=paths.INTERIM_DIR / "notebooks-smoke",
        parity_max_files=6,
        parity_worst_files=2,
        train_preset="tiny",
        export_variant="f32",
        compat_runtimes=("ai-edge-litert", "tflite-runtime-2.14"),
        latency_repeats=10,
    )


def full() -> NotebookSize:
    """A researcher's run: the default synthetic dataset (24 species x 10 recordings, 4 soundscapes)."""
    return NotebookSize(
        name="full",
        synth=SynthConfig(),
        synthetic_dir=paths.SYNTHETIC_DIR,
        examples_per_species=2,
        max_species_shown=12,
        work_dir=paths.INTERIM_DIR / "notebooks",
        parity_max_files=60,
        parity_worst_files=3,
        train_preset="demo",
        export_variant="f32",
        compat_runtimes=("ai-edge-litert", "tflite-runtime-2.14", "tensorflow-1.15", "tract"),
        latency_repeats=50,
    )


SIZES = {"smoke": smoke, "full": full}


def notebook_size(name: str | None = None) -> NotebookSize:
    """The named size; None reads $BIRDLAB_NOTEBOOK_SIZE (default `full`)."""
    name = (name if name is not None else os.environ.get(SIZE_ENV, DEFAULT_SIZE)).strip() or DEFAULT_SIZE
    if name not in SIZES:
        raise UserError(f"notebook size {name!r} (from ${SIZE_ENV} or the parameters cell) is unknown; "
                        f"use one of {sorted(SIZES)}")
    return SIZES[name]()


def notebook_dataset(size: NotebookSize, *, data_dir: str | Path | None = None) -> Path:
    """The dataset directory of a notebook run.

    `data_dir` given (a real BirdCLEF 2021 directory): checked for train_metadata.csv and returned.
    Otherwise the synthetic dataset of `size` is written when absent and its directory returned.
    """
    if data_dir:
        root = Path(data_dir).expanduser()
        if not (root / bc.METADATA_CSV).is_file():
            raise UserError(f"{root}: no {bc.METADATA_CSV}; set DATA_DIR in the parameters cell to a BirdCLEF 2021 "
                            "directory (python -m birdlab data download) or leave it empty for the synthetic data")
        return root
    ensure_synthetic(dest=size.synthetic_dir, config=size.synth)
    return size.synthetic_dir
