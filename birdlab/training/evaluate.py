"""`python -m birdlab evaluate`: score a run on what it never saw, each figure beside its baseline.

The headline is clip-level (birdlab.metrics.headline): each held-out test recording is cut into
5-s windows, scored as the max of the model's window probabilities, and the recordings give per-class
AP, macro AP, BirdCLEF 2022+'s padded cmAP, top-1 of the primary label and per-class P/R/F1 at the
threshold (metrics.json 'clip', with 'baseline': what a trivial model scores on the same recordings).
BirdCLEF 2021's row-wise micro F1 on the test soundscapes' rows is reported beside its all-'nocall'
baseline and the count of rows holding a subset species ('soundscape'); below MIN_POSITIVE_ROWS such
rows it is marked degenerate and is never the headline. Top-level 'row_wise_micro_f1' stays for older
readers.

The threshold is chosen on validation to maximise the row-wise micro F1: on the validation
soundscapes' rows when at least MIN_THRESHOLD_POSITIVE_ROWS of them hold a subset species, else on
those rows plus the validation recordings' crops. metrics.json also holds per-window AP, AUROC,
precision/recall/F1 of the scored rows ('per_class', on the test soundscapes, or on validation when there
is none: 'evaluated_on') and the species confusion; plots/ holds the training curves, per-class AP and
the confusion matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab.data.birdclef2021 import DataDirs, Recording, as_roots
from birdlab.features.cache import FeatureCache, FeatureJob, compute_features
from birdlab.metrics import (
    MIN_POSITIVE_ROWS,
    NOCALL,
    choose_threshold,
    clip_scores,
    clip_summary,
    headline,
    macro_mean,
    padded_cmap,
    per_class_figures,
    row_f1_from_arrays,
    soundscape_summary,
    species_confusion,
)
from birdlab.training.dataset import LabelledClips, TrainingData, prepare_training_data, recording_key
from birdlab.training.figures import save_confusion, save_per_class_ap, save_training_curves
from birdlab.training.run_dir import CONFIG_FILENAME, MODEL_FILENAME, SPLIT_FILENAME, RunDir, RunDirError
from birdlab.training.teacher_targets import run_recordings, teacher_clip_figures
from edge_runtime.audio import AudioError
from edge_runtime.bundle import LABELS_FILENAME
from edge_runtime.spec import SPEC_FILENAME
from edge_runtime.thresholds import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    import keras

__all__ = ["RecordingScores", "describe_metrics", "evaluate_run", "evaluate_saved_run", "held_out_metrics",
           "predict", "score_recordings"]

PREDICT_BATCH = 64
MIN_THRESHOLD_POSITIVE_ROWS = 10
"""Validation soundscape rows holding a subset species needed to choose the threshold on those rows alone
(else on every validation clip: rows of all-nocall soundscapes would push it to the top of the grid)."""
RECORDINGS_PER_CHUNK = 32
"""Test recordings whose window features are held at once while scoring: ~36 MB for 32 recordings of the real
median 35 s (7 windows of 160 kB), ~0.6 GB if all 32 ran 10 minutes; memory stays bounded by the chunk."""
NO_TEST_RECORDINGS = ("no clip figures: this run's split.json has no test recordings (it predates the three-way "
                      "split, or every species has fewer than 3 recordings or test_fraction is 0); retrain to get them")


def predict(model: keras.Model, clips: LabelledClips) -> np.ndarray:
    """Sigmoid probabilities, float32 (n, n_species); empty input gives (0, n_species).

    The clips are read and scored PREDICT_BATCH at a time: memory does not grow with the set.
    """
    n_species = int(model.output_shape[-1])
    out = np.zeros((len(clips), n_species), np.float32)
    done = 0
    for batch in clips.features.batches(batch_size=PREDICT_BATCH):
        # model.predict, not predict_on_batch: under MirroredStrategy predict_on_batch returns one copy of the
        # batch's outputs per replica (8 rows for 4 clips on two logical CPUs).
        out[done:done + len(batch)] = predict_features(model, batch)
        done += len(batch)
    return out


def predict_features(model: keras.Model, features: np.ndarray) -> np.ndarray:
    """Sigmoid probabilities of log-mel windows: features (n, n_mels, frames) -> float32 (n, n_species)."""
    n_species = int(model.output_shape[-1])
    if len(features) == 0:
        return np.zeros((0, n_species), np.float32)
    return np.asarray(model.predict(features[..., None], batch_size=PREDICT_BATCH, verbose=0), np.float32)


@dataclass(frozen=True)
class RecordingScores:
    """Held-out recordings, each scored as the max of the model's probabilities over its 5-s windows."""

    keys: tuple[str, ...]
    """recording_key of each scored recording, in row order."""
    truth: np.ndarray
    """bool (n, n_species): the primary label and the secondary labels inside the subset."""
    primary_index: np.ndarray
    """int64 (n,): the column of each recording's primary label."""
    scores: np.ndarray
    """float32 (n, n_species): max over the recording's windows."""
    n_windows: int
    """5-s windows scored over all recordings."""
    skipped: tuple[str, ...] = ()
    """One line per test recording whose audio could not be read (left out)."""


def score_recordings(model: keras.Model, recordings: Sequence[Recording], *, codes: Sequence[str],
                     cache: FeatureCache, workers: int = 0, progress: bool = False) -> RecordingScores:
    """Cut each recording into the device's consecutive 5-s windows (FeatureJob without a crop plan, i.e.
    birdlab.features.cache.scored_windows), predict every window, keep the max per recording
    (birdlab.metrics.clip_scores). RECORDINGS_PER_CHUNK recordings' features are held at a time."""
    index = {code: i for i, code in enumerate(codes)}
    keys: list[str] = []
    truth, primary, scores, skipped = [], [], [], []
    n_windows = 0
    for start in range(0, len(recordings), RECORDINGS_PER_CHUNK):
        chunk = [r for r in recordings[start:start + RECORDINGS_PER_CHUNK] if r.primary_label in index]
        results = compute_features([FeatureJob(r.audio_path) for r in chunk], cache=cache, workers=workers,
                                   progress=progress, description=f"test recordings ({len(chunk)} files)")
        owners, windows = [], []
        for recording, result in zip(chunk, results, strict=True):
            if isinstance(result, AudioError):
                skipped.append(f"{result.path}: {result.reason}")
                continue
            owners += [recording_key(recording)] * len(result.features)
            windows.append(result.features)
            row = np.zeros(len(codes), bool)
            row[[index[c] for c in recording.labels if c in index]] = True
            truth.append(row)
            primary.append(index[recording.primary_label])
        if not windows:
            continue
        features = np.concatenate(windows)
        n_windows += len(features)
        ids, maxima = clip_scores(predict_features(model, features), owners)
        keys += [str(i) for i in ids]
        scores.append(maxima.astype(np.float32))
    return RecordingScores(keys=tuple(keys), truth=np.array(truth, bool).reshape(-1, len(codes)),
                           primary_index=np.array(primary, np.int64),
                           scores=np.concatenate(scores) if scores else np.zeros((0, len(codes)), np.float32),
                           n_windows=n_windows, skipped=tuple(skipped))


def clip_baselines(recordings: RecordingScores) -> dict[str, Any]:
    """What trivial models score on the same recordings: macro AP of a random ranking (mean prevalence over the
    species with a positive), padded cmAP of a constant score, top-1 of always naming the most frequent primary
    label, and chance top-1 (1 / n_species)."""
    truth = recordings.truth
    n, n_species = truth.shape
    prevalence = truth.mean(axis=0) if n else np.zeros(n_species)
    scored = prevalence[truth.sum(axis=0) > 0]
    majority = np.bincount(recordings.primary_index, minlength=n_species).max() / n if n else None
    return {
        "macro_ap": float(scored.mean()) if scored.size else None,
        "padded_cmap": padded_cmap(truth, np.zeros(truth.shape)) if n else None,
        "top1": float(majority) if majority is not None else None,
        "top1_chance": 1.0 / n_species if n_species else None,
        "rule": "macro_ap: a random ranking (AP = prevalence, mean over species with a held-out positive); "
                "padded_cmap: one constant score for every recording; top1: always the most frequent primary label "
                "of these recordings; top1_chance: 1 / n_species",
    }


def held_out_metrics(*, codes: Sequence[str], threshold: float, recordings: RecordingScores | None,
                     soundscape_truth: np.ndarray, soundscape_probabilities: np.ndarray,
                     soundscape_set: str = "test soundscapes") -> dict[str, Any]:
    """metrics.json's {'headline', 'clip', 'soundscape'} from scores already computed (no model, no audio).

    recordings: the test recordings' scores, or None (no clip figures). soundscape_truth: bool (n_rows, n_species),
    soundscape_probabilities: (n_rows, n_species), the scored soundscape rows (n_rows may be 0: no figure).
    threshold: the one chosen on validation, for per-class P/R/F1 and the row-wise F1.
    """
    clip = soundscape = None
    out: dict[str, Any] = {"clip": None, "soundscape": None}
    if recordings is not None and len(recordings.keys):
        clip = clip_summary(recordings.truth, recordings.scores, primary_index=recordings.primary_index,
                            threshold=threshold, codes=codes)
        baseline = clip_baselines(recordings)
        prevalence = recordings.truth.mean(axis=0)
        per_class = {code: {**figures, "ap_baseline": float(prevalence[j]) if figures["n_positive"] else None}
                     for j, (code, figures) in enumerate(clip.per_class.items())}
        out["clip"] = {**clip.to_dict(), "per_class": per_class, "baseline": baseline,
                       "n_windows": recordings.n_windows, "threshold": threshold,
                       "n_species_scored": clip.n_species_scored, "skipped": list(recordings.skipped)}
    if len(soundscape_truth):
        soundscape = soundscape_summary(soundscape_truth, soundscape_probabilities, threshold=threshold)
        out["soundscape"] = {**soundscape.to_dict(), "scored_on": soundscape_set,
                             "min_positive_rows": MIN_POSITIVE_ROWS}
    out["headline"] = headline(clip, soundscape)
    return out


def describe_metrics(metrics: dict[str, Any]) -> str:
    """The headline, the clip figures and the soundscape F1, each beside its baseline and counts; a few lines."""
    lines = []
    top = metrics.get("headline") or {}
    if top.get("metric"):
        lines.append(f"headline: {top['metric']} = {top['value']:.3f} ({top['why']})")
    else:
        lines.append(f"headline: none ({top.get('why', 'metrics.json predates the headline; re-run evaluate')})")
    clip = metrics.get("clip")
    if clip:
        base = clip.get("baseline", {})
        lines.append(
            f"clip: {clip['n_recordings']} held-out recordings ({clip.get('n_windows', '?')} windows, "
            f"{clip.get('n_species_scored', '?')} of {len(clip['per_class'])} species with a positive): "
            f"macro AP {_num(clip['macro_ap'])} (random ranking {_num(base.get('macro_ap'))}), "
            f"padded cmAP {_num(clip['padded_cmap'])} (constant score {_num(base.get('padded_cmap'))}), "
            f"top-1 {_num(clip['top1'])} (majority class {_num(base.get('top1'))}, chance {_num(base.get('top1_chance'))})")
    else:
        lines.append(f"clip: {metrics.get('clip_note') or NO_TEST_RECORDINGS}")
    scape = metrics.get("soundscape")
    if scape:
        text = (f"soundscape ({scape.get('scored_on', 'test soundscapes')}): row-wise micro F1 "
                f"{scape['row_wise_micro_f1']:.3f} vs all-nocall baseline {scape['nocall_baseline_f1']:.3f} on "
                f"{scape['rows']} rows, {scape['positive_rows']} with a subset species")
        if scape["degenerate"]:
            text += (f": DEGENERATE (< {scape.get('min_positive_rows', MIN_POSITIVE_ROWS)} positive rows: too few "
                     "to tell the model from one that never predicts a bird; never the headline)")
        lines.append(text)
    else:
        lines.append("soundscape: no test soundscape rows scored")
    lines.append(f"threshold {metrics['threshold']:.2f}, chosen on {metrics.get('threshold_chosen_on')}")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _teacher_block(run_dir: RunDir, *, model: keras.Model, data: TrainingData, cache: FeatureCache | None,
                   teacher_cache_root: str | Path | None) -> dict[str, Any] | None:
    """metrics.json 'teacher' of a distilled run (None without a teacher): teacher_clip_figures on the held-out
    test recordings, the ones the student's `clip` figures score; on the validation recordings when the split has
    no test recording (an older split, or species too small for one), and `evaluated_on` says which."""
    config = run_dir.read_config()
    if config.teacher is None:
        return None
    spec = run_dir.read_spec()
    if data.test_recordings:
        recordings, where = list(data.test_recordings), "test recordings"
    else:
        recordings = run_recordings(run_dir.read_data_dirs(), config=config, keys=data.split.validation_recordings)
        where = "validation recordings (no test recording in this split)"
    if not recordings:
        return None
    return teacher_clip_figures(recordings, teacher=config.teacher, student=model, species=data.species, spec=spec,
                                cache=cache or FeatureCache(spec=spec), root=teacher_cache_root,
                                evaluated_on=f"{where} ({len(recordings)})", workers=config.feature_workers)


def _set_summary(truth: np.ndarray, probabilities: np.ndarray, *, threshold: float) -> dict[str, Any]:
    nocall = ~truth.any(axis=1)
    return {
        "n_rows": int(truth.shape[0]),
        "nocall_rows": int(nocall.sum()),
        "row_wise_micro_f1": row_f1_from_arrays(truth, probabilities, threshold=threshold),
    }


def evaluate_saved_run(run_dir: str | Path, *, data_dir: DataDirs | None = None,
                       cache_root: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """`python -m birdlab evaluate`: read a finished run through RunDir, rebuild its held-out clips, score it.

    data_dir defaults to the dataset the run was trained on (run_info.json).
    """
    import keras

    run = RunDir(Path(run_dir))
    run.require((MODEL_FILENAME, CONFIG_FILENAME, SPEC_FILENAME, LABELS_FILENAME, SPLIT_FILENAME))
    config, spec, species = run.read_config(), run.read_spec(), run.read_species()
    roots = as_roots(data_dir) if data_dir else run.read_data_dirs()
    if not roots:
        raise RunDirError(f"{run.run_info_path}: no dataset recorded; pass --data")
    cache = FeatureCache(spec=spec, root=cache_root)
    data = prepare_training_data(data_dir=roots, config=config, spec=spec, cache=cache, split=run.read_split(),
                                 species=species, include_train=False, progress=progress)
    return evaluate_run(run, model=keras.models.load_model(run.model_path, compile=False), data=data, cache=cache,
                        workers=config.feature_workers, progress=progress)


def _choose_threshold(data: TrainingData, validation: LabelledClips, val_probabilities: np.ndarray
                      ) -> tuple[float, str]:
    rows = data.validation_rows
    positive_rows = int(rows.truth.any(axis=1).sum()) if len(rows) else 0
    if positive_rows >= MIN_THRESHOLD_POSITIVE_ROWS:
        threshold, _ = choose_threshold(rows.truth, val_probabilities[len(data.validation):])
        return threshold, f"validation soundscape rows ({len(rows)}, {positive_rows} with a subset species)"
    if len(validation):
        threshold, _ = choose_threshold(validation.truth, val_probabilities)
        return threshold, (f"validation: {len(data.validation)} recording crops + {len(rows)} soundscape rows "
                           f"({positive_rows} with a subset species < {MIN_THRESHOLD_POSITIVE_ROWS})")
    return DEFAULT_THRESHOLD, "default (no validation data)"


def evaluate_run(run_dir: RunDir, *, model: keras.Model, data: TrainingData, cache: FeatureCache | None = None,
                 workers: int = 0, progress: bool = False,
                 teacher_cache_root: str | Path | None = None) -> dict[str, Any]:
    """Score `model` on the held-out parts of `data` (what train holds in memory) and on its test recordings
    (read through `cache`, default: the run's spec under the default root); writes metrics.json and plots/.
    A distilled run also gets the teacher's figures on the same test recordings (teacher_cache_root: its targets).

    Returns the metrics.
    """
    species = data.species
    codes = [s.ebird_code for s in species]

    validation = LabelledClips.concatenate([data.validation, data.validation_rows])
    val_probabilities = predict(model, validation)
    test = data.test_rows
    test_probabilities = predict(model, test)
    threshold, chosen_on = _choose_threshold(data, validation, val_probabilities)
    if len(test):
        scored, scored_probabilities, evaluated_on = test, test_probabilities, "test soundscapes"
    else:
        scored, scored_probabilities, evaluated_on = validation, val_probabilities, "validation (no test soundscape)"
    per_class = per_class_figures(scored.truth, scored_probabilities, threshold=threshold, codes=codes)
    per_class_val = per_class_figures(validation.truth, val_probabilities, threshold=threshold, codes=codes)
    confusion = species_confusion(scored.truth, scored_probabilities, threshold=threshold)

    recordings = None
    if data.test_recordings:
        cache = cache or FeatureCache(spec=run_dir.read_spec())
        recordings = score_recordings(model, data.test_recordings, codes=codes, cache=cache, workers=workers,
                                      progress=progress)
    metrics: dict[str, Any] = held_out_metrics(codes=codes, threshold=threshold, recordings=recordings,
                                               soundscape_truth=test.truth, soundscape_probabilities=test_probabilities)
    if recordings is None:
        metrics["clip_note"] = NO_TEST_RECORDINGS
    metrics |= {
        "row_wise_micro_f1": row_f1_from_arrays(scored.truth, scored_probabilities, threshold=threshold),
        "threshold": threshold,
        "evaluated_on": evaluated_on,
        "threshold_chosen_on": chosen_on,
        "test": _set_summary(test.truth, test_probabilities, threshold=threshold) if len(test) else None,
        "validation": _set_summary(validation.truth, val_probabilities, threshold=threshold) if len(validation) else None,
        "validation_soundscape_rows": _set_summary(data.validation_rows.truth, val_probabilities[len(data.validation):],
                                                   threshold=threshold) if len(data.validation_rows) else None,
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
    metrics["teacher"] = _teacher_block(run_dir, model=model, data=data, cache=cache,
                                        teacher_cache_root=teacher_cache_root)
    run_dir.write_metrics(metrics)

    plots = run_dir.plots_dir
    plots.mkdir(exist_ok=True)
    if run_dir.history_path.is_file():
        save_training_curves(run_dir.history_path, plots / "training_curves.png")
    save_per_class_ap(codes, per_class, per_class_val, plots / "per_class_ap.png", scored_name=evaluated_on)
    save_confusion([*codes, NOCALL], confusion, plots / "confusion.png", title=f"species confusion, {evaluated_on}")
    return metrics
