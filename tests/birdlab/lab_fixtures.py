"""Helpers of tests/birdlab (importable by name: `from lab_fixtures import ...`): small real inputs.

A shrunk FeatureSpec, the real model preset shrunk with dataclasses.replace, dB features and a run
directory written through birdlab's own RunDir. Everything is built by code from seeded randomness.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

from birdlab.data.species import Species
from birdlab.features.log_mel import FeatureSpec
from birdlab.training import model as model_lib
from birdlab.training.config import tiny
from birdlab.training.dataset import Split
from birdlab.training.run_dir import RunDir

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


PNG_MAGIC = b"\x89PNG"


def png_bytes(fig) -> bytes:
    """A matplotlib Figure rendered to PNG bytes (at a low resolution: tests check it draws, not how well)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def small_species() -> tuple[Species, ...]:
    return tuple(Species(code, scientific, common) for code, scientific, common in SPECIES[:N_SPECIES])


def write_run_dir(run_dir: Path, *, model, spec: FeatureSpec, threshold: float = 0.5) -> Path:
    """A finished run directory around `model`, written by birdlab's RunDir as training writes it."""
    run = RunDir(run_dir)
    run.start()
    config = dataclasses.replace(tiny(), name="small", model=small_model_config(), seed=SEED)
    run.write_inputs(config=config, spec=spec, species=small_species(), split=Split((), (), (), ()))
    model.save(run.model_path)
    run.write_metrics({"row_wise_micro_f1": 0.61, "threshold": threshold, "per_class": {}})
    run.history_path.write_text("epoch,loss,val_loss\n0,0.7,0.69\n", encoding="utf-8")
    run.write_run_info({"git_commit": "0" * 40, "seed": SEED, "packages": {}})
    return run_dir
