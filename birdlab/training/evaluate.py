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

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab.features.cache import FeatureCache
from birdlab.metrics import (
    NOCALL,
    choose_threshold,
    macro_mean,
    per_class_figures,
    row_f1_from_arrays,
    species_confusion,
)
from birdlab.training.dataset import LabelledClips, TrainingData, prepare_training_data
from birdlab.training.figures import save_confusion, save_per_class_ap, save_training_curves
from birdlab.training.run_dir import CONFIG_FILENAME, MODEL_FILENAME, SPLIT_FILENAME, RunDir
from birdlab.training.teacher_targets import run_recordings, teacher_clip_figures
from edge_runtime.bundle import LABELS_FILENAME
from edge_runtime.spec import SPEC_FILENAME
from edge_runtime.thresholds import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    import keras

__all__ = ["evaluate_run", "evaluate_saved_run", "predict"]

PREDICT_BATCH = 64
MIN_THRESHOLD_ROWS = 10
"""Validation soundscape rows needed to choose the threshold on them alone (else on every validation clip)."""


def predict(model: keras.Model, clips: LabelledClips) -> np.ndarray:
    """Sigmoid probabilities, float32 (n, n_species); empty input gives (0, n_species)."""
    n_species = int(model.output_shape[-1])
    if len(clips) == 0:
        return np.zeros((0, n_species), np.float32)
    return np.asarray(model.predict(clips.features[..., None], batch_size=PREDICT_BATCH, verbose=0), np.float32)


def _teacher_block(run_dir: RunDir, *, model: keras.Model, data: TrainingData, data_dir: Path | None,
                   cache_root: str | Path | None, teacher_cache_root: str | Path | None) -> dict[str, Any] | None:
    """metrics.json 'teacher' of a distilled run (None without a teacher, or without data_dir):
    teacher_clip_figures on the validation recordings (the held-out recordings this split has)."""
    config = run_dir.read_config()
    if config.teacher is None or data_dir is None:
        return None
    spec = run_dir.read_spec()
    recordings = run_recordings(data_dir, config=config, keys=data.split.validation_recordings)
    return teacher_clip_figures(recordings, teacher=config.teacher, student=model, species=data.species, spec=spec,
                                cache=FeatureCache(spec=spec, root=cache_root), root=teacher_cache_root,
                                evaluated_on=f"validation recordings ({len(recordings)})",
                                workers=config.feature_workers)


def _set_summary(truth: np.ndarray, probabilities: np.ndarray, *, threshold: float) -> dict[str, Any]:
    nocall = ~truth.any(axis=1)
    return {
        "n_rows": int(truth.shape[0]),
        "nocall_rows": int(nocall.sum()),
        "row_wise_micro_f1": row_f1_from_arrays(truth, probabilities, threshold=threshold),
    }


def evaluate_saved_run(run_dir: str | Path, *, data_dir: str | Path | None = None,
                       cache_root: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """`python -m birdlab evaluate`: read a finished run through RunDir, rebuild its held-out clips, score it.

    data_dir defaults to the dataset the run was trained on (run_info.json).
    """
    import keras

    run = RunDir(Path(run_dir))
    run.require((MODEL_FILENAME, CONFIG_FILENAME, SPEC_FILENAME, LABELS_FILENAME, SPLIT_FILENAME))
    config, spec, species = run.read_config(), run.read_spec(), run.read_species()
    data = prepare_training_data(data_dir=Path(data_dir or run.read_run_info().get("data_dir") or ""), config=config,
                                 spec=spec, cache=FeatureCache(spec=spec, root=cache_root), split=run.read_split(),
                                 species=species, include_train=False, progress=progress)
    return evaluate_run(run, model=keras.models.load_model(run.model_path, compile=False), data=data,
                        data_dir=Path(data_dir or run.read_run_info().get("data_dir") or ""), cache_root=cache_root)


def evaluate_run(run_dir: RunDir, *, model: keras.Model, data: TrainingData, data_dir: Path | None = None,
                 cache_root: str | Path | None = None, teacher_cache_root: str | Path | None = None) -> dict[str, Any]:
    """Score `model` on the held-out parts of `data` (what train holds in memory); writes metrics.json and plots/.

    data_dir: the dataset, for a distilled run's `teacher` block (the teacher scores whole recordings).
    Returns the metrics.
    """
    species = data.species
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
    metrics["teacher"] = _teacher_block(run_dir, model=model, data=data, data_dir=data_dir, cache_root=cache_root,
                                        teacher_cache_root=teacher_cache_root)
    run_dir.write_metrics(metrics)

    plots = run_dir.plots_dir
    plots.mkdir(exist_ok=True)
    if run_dir.history_path.is_file():
        save_training_curves(run_dir.history_path, plots / "training_curves.png")
    save_per_class_ap(codes, per_class, per_class_val, plots / "per_class_ap.png", scored_name=evaluated_on)
    save_confusion([*codes, NOCALL], confusion, plots / "confusion.png", title=f"species confusion, {evaluated_on}")
    return metrics
