"""The clips export needs from a run: training features for int8 calibration, held-out clips for equivalence.

Both are rebuilt from the run's own dataset, config and split through the training data
path (`birdlab.training.dataset.prepare_training_data`, whose feature cache is warm after
training), so the representative dataset is the training distribution and the held-out
clips are exactly the rows the run was scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdlab.data.birdclef2021 import DataDirs, as_roots
from birdlab.errors import UserError
from birdlab.features.cache import FeatureCache
from birdlab.features.store import ClipStore
from birdlab.training.dataset import prepare_training_data
from birdlab.training.run_dir import TrainedRun

MAX_REPRESENTATIVE_CLIPS = 200
"""int8 calibration clips drawn (seeded) from the training features."""
MAX_HELDOUT_CLIPS = 400
"""Held-out clips used for the equivalence figures."""
SAMPLE_SEED = 0


class RunFeaturesError(UserError):
    """The run's clips cannot be rebuilt; the message says which file or setting is missing."""


@dataclass(frozen=True)
class RunFeatures:
    """Model inputs for export, channel axis included."""

    representative: np.ndarray
    """float32 (n_rep, n_mels, frames, 1): training clips for int8 calibration."""
    heldout: np.ndarray
    """float32 (n_held, n_mels, frames, 1): clips the model was not trained on."""
    heldout_truth: np.ndarray | None
    """bool (n_held, n_species): label sets of the held-out clips (all False = nocall), or None."""
    heldout_source: str = ""
    """Which set the held-out clips come from (e.g. 'test soundscape rows')."""

    def __post_init__(self) -> None:
        for name in ("representative", "heldout"):
            value = getattr(self, name)
            if value.ndim != 4 or value.shape[-1] != 1 or len(value) == 0:
                raise RunFeaturesError(f"{name} features must be non-empty float32 (n, n_mels, frames, 1), "
                                       f"got shape {value.shape}")
        if self.heldout_truth is not None and len(self.heldout_truth) != len(self.heldout):
            raise RunFeaturesError(f"heldout_truth has {len(self.heldout_truth)} rows for {len(self.heldout)} clips")


def _sample(features: ClipStore, *, limit: int, seed: int) -> np.ndarray:
    """At most `limit` clips (seeded), read from the store: float32 (k, n_mels, frames)."""
    if len(features) <= limit:
        return features.read()
    keep = np.sort(np.random.default_rng(seed).choice(len(features), size=limit, replace=False))
    return features.read(keep)


def load_run_features(run: TrainedRun, *, data_dir: DataDirs | None = None) -> RunFeatures:
    """Rebuild the run's training and held-out clips from its config, split and dataset.

    data_dir: the dataset root(s) (default: the ones recorded in run_info.json).
    Held-out: the test soundscape rows, else the validation rows, else the validation recordings; a run that
    holds nothing out (validation_fraction 0, e.g. the real-audio bench, which keeps its own test recordings
    outside the run's dataset) is compared on its training crops, and heldout_source says so.
    """
    run_dir = run.run_dir.root
    roots = as_roots(data_dir) if data_dir else run.run_dir.read_data_dirs()
    if not roots:
        raise RunFeaturesError(f"{run_dir}: no data_dir in run_info.json; pass the dataset directory explicitly")
    absent = [str(r) for r in roots if not r.is_dir()]
    if absent:
        raise RunFeaturesError(f"{run_dir}: the run's dataset {', '.join(absent)} is absent; export needs its training "
                               "and held-out clips (re-create it, e.g. python -m birdlab data synth)")
    recorded = ", ".join(map(str, roots))
    data = prepare_training_data(data_dir=roots, config=run.config, spec=run.spec,
                                 cache=FeatureCache(spec=run.spec), split=run.split, species=run.species,
                                 include_train=True, progress=False)
    if not len(data.train):
        raise RunFeaturesError(f"{run_dir}: the run's training split has no clips in {recorded}")
    candidates = ((data.test_rows, "test soundscape rows"), (data.validation_rows, "validation soundscape rows"),
                  (data.validation, "validation recordings"))
    chosen = next(((clips, name) for clips, name in candidates if len(clips)), None)
    if chosen is None and run.config.validation_fraction == 0 and run.config.test_fraction == 0:
        chosen = (data.train, "training crops (the run holds no recording out)")
    if chosen is None:
        raise RunFeaturesError(f"{run_dir}: no held-out clips (test/validation) in {recorded}")
    heldout, truth, source = chosen[0].features, chosen[0].truth, chosen[1]
    keep = np.arange(len(heldout))[:MAX_HELDOUT_CLIPS]
    return RunFeatures(
        representative=_sample(data.train.features, limit=MAX_REPRESENTATIVE_CLIPS, seed=SAMPLE_SEED)[..., np.newaxis]
        .astype(np.float32),
        heldout=heldout[keep][..., np.newaxis].astype(np.float32),
        heldout_truth=np.asarray(truth[keep], dtype=bool),
        heldout_source=source,
    )
