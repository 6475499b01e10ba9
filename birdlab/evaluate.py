"""`python -m birdlab evaluate`: score a run the way BirdCLEF 2021 scores it.

The threshold is chosen on validation to maximise the row-wise micro F1: on the
validation soundscapes' rows when there are at least MIN_THRESHOLD_ROWS of them (the
metric is defined on soundscape rows), else on those rows plus the validation
recordings' crops. The run is then scored
on the test soundscapes' rows at that threshold (or, when the dataset has no test
soundscape, on validation, and metrics.json says so in `evaluated_on`). metrics.json
also holds per-class AP, AUROC, precision/recall/F1 at the threshold and the species
confusion; plots/ holds the training curves, per-class AP and the confusion matrix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab.feature_cache import FeatureCache
from birdlab.metrics import (
    NOCALL,
    choose_threshold,
    macro_mean,
    per_class_figures,
    row_f1,
    row_f1_from_arrays,
    row_wise_micro_f1,
    species_confusion,
)
from birdlab.training_data import SPLIT_FILENAME, LabelledClips, Split, TrainingData, prepare_training_data

if TYPE_CHECKING:
    import keras

__all__ = ["NOCALL", "evaluate_run", "predict", "row_f1", "row_wise_micro_f1"]

METRICS_FILENAME = "metrics.json"
PREDICT_BATCH = 64
MIN_THRESHOLD_ROWS = 10
"""Validation soundscape rows needed to choose the threshold on them alone (else on every validation clip)."""
DEFAULT_THRESHOLD = 0.5


def predict(model: keras.Model, clips: LabelledClips) -> np.ndarray:
    """Sigmoid probabilities, float32 (n, n_species); empty input gives (0, n_species)."""
    n_species = int(model.output_shape[-1])
    if len(clips) == 0:
        return np.zeros((0, n_species), np.float32)
    return np.asarray(model.predict(clips.features[..., None], batch_size=PREDICT_BATCH, verbose=0), np.float32)


def _set_summary(truth: np.ndarray, probabilities: np.ndarray, *, threshold: float) -> dict[str, Any]:
    nocall = ~truth.any(axis=1)
    return {
        "n_rows": int(truth.shape[0]),
        "nocall_rows": int(nocall.sum()),
        "row_wise_micro_f1": row_f1_from_arrays(truth, probabilities, threshold=threshold),
    }


def evaluate_run(run_dir: str | Path, *, data_dir: str | Path | None = None, cache_root: str | Path | None = None,
                 model: keras.Model | None = None, data: TrainingData | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Score the run in `run_dir`; writes metrics.json and plots/*.png and returns the metrics.

    data_dir defaults to the dataset the run was trained on (run_info.json); `model` and
    `data` let `train` pass what it already holds in memory.
    """
    from birdlab.run_plots import plot_confusion, plot_per_class_ap, plot_training_curves
    from birdlab.train import load_run_inputs

    run_dir = Path(run_dir)
    config, spec, species, run_info = load_run_inputs(run_dir)
    if data is None:
        data_dir = Path(data_dir or run_info.get("data_dir") or "")
        data = prepare_training_data(data_dir=data_dir, config=config, spec=spec,
                                     cache=FeatureCache(spec=spec, root=cache_root),
                                     split=Split.load(run_dir / SPLIT_FILENAME), species=species,
                                     include_train=False, progress=progress)
    if model is None:
        import keras

        model = keras.models.load_model(run_dir / "model.keras")
    codes = [s.ebird_code for s in species]

    validation = LabelledClips.concatenate([data.validation, data.validation_rows])
    val_probabilities = predict(model, validation)
    test = data.test_rows
    test_probabilities = predict(model, test)
    # The metric is defined on soundscape rows: choose the threshold there when validation has enough of them.
    n_val_rows = len(data.validation_rows)
    if n_val_rows >= MIN_THRESHOLD_ROWS:
        threshold, _ = choose_threshold(data.validation_rows.truth, val_probabilities[len(data.validation):])
        chosen_on = f"validation soundscape rows ({n_val_rows})"
    elif len(validation):
        threshold, _ = choose_threshold(validation.truth, val_probabilities)
        chosen_on = f"validation: {len(data.validation)} recording crops + {n_val_rows} soundscape rows"
    else:
        threshold, chosen_on = DEFAULT_THRESHOLD, "default (no validation data)"
    if len(test):
        scored, scored_probabilities, evaluated_on = test, test_probabilities, "test soundscapes"
    else:
        scored, scored_probabilities, evaluated_on = validation, val_probabilities, "validation (no test soundscape)"
    per_class = per_class_figures(scored.truth, scored_probabilities, threshold=threshold, codes=codes)
    per_class_val = per_class_figures(validation.truth, val_probabilities, threshold=threshold, codes=codes)
    confusion = species_confusion(scored.truth, scored_probabilities, threshold=threshold)

    metrics: dict[str, Any] = {
        "row_wise_micro_f1": row_f1_from_arrays(scored.truth, scored_probabilities, threshold=threshold),
        "threshold": threshold,
        "evaluated_on": evaluated_on,
        "threshold_chosen_on": chosen_on,
        "test": _set_summary(test.truth, test_probabilities, threshold=threshold) if len(test) else None,
        "validation": _set_summary(validation.truth, val_probabilities, threshold=threshold) if len(validation) else None,
        "validation_soundscape_rows": _set_summary(data.validation_rows.truth, val_probabilities[len(data.validation):],
                                                   threshold=threshold) if n_val_rows else None,
        "test_soundscapes": list(data.split.test_soundscapes),
        "macro_ap": macro_mean(per_class, "ap"),
        "macro_auroc": macro_mean(per_class, "auroc"),
        "validation_macro_ap": macro_mean(per_class_val, "ap"),
        "validation_macro_auroc": macro_mean(per_class_val, "auroc"),
        "per_class": per_class,
        "per_class_validation": per_class_val,
        "confusion": {"labels": [*codes, NOCALL], "matrix": confusion.tolist(),
                      "note": "rows true, columns predicted; hits on the diagonal, misses paired with wrong predictions or nocall (see birdlab.metrics.species_confusion)"},
    }
    (run_dir / METRICS_FILENAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")

    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    if (run_dir / "history.csv").is_file():
        plot_training_curves(run_dir / "history.csv", plots / "training_curves.png")
    plot_per_class_ap(codes, per_class, per_class_val, plots / "per_class_ap.png", scored_name=evaluated_on)
    plot_confusion([*codes, NOCALL], confusion, plots / "confusion.png", title=f"species confusion, {evaluated_on}")
    return metrics
