"""Scores as BirdCLEF 2021 defines them, plus per-class figures; pure numpy.

The competition metric is the row-wise micro-averaged F1: every scored 5-s row has a
true set of species (or {'nocall'}) and a predicted set (or {'nocall'} when nothing is
above the threshold); each row scores 2 * |P & T| / (|P| + |T|), i.e. 2 TP / (2 TP + FP +
FN), and the score is the mean over rows. 'nocall' is a label like any other: predicting
'nocall' on a nocall row scores 1, predicting a bird there scores 0.

On the Brittany subset of BirdCLEF 2021 that score is meaningless (2382 of the 2400
soundscape rows are 'nocall', so predicting nothing scores ~0.99); it is therefore always
reported beside the all-'nocall' baseline and its count of positive rows, and marked
degenerate below MIN_POSITIVE_ROWS. What is headlined instead is the clip level: each held-out
recording scored as the max over its 5-s windows, then per-class average precision (AP),
macro AP, BirdCLEF 2022+'s padded cmAP and top-1 accuracy of the primary label.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NOCALL = "nocall"
THRESHOLD_GRID = tuple(round(0.02 + 0.01 * i, 2) for i in range(97))
"""Thresholds tried when choosing one on validation: 0.02, 0.03, ..., 0.98."""
MIN_POSITIVE_ROWS = 50
"""A soundscape F1 on fewer scored rows holding a subset species than this is degenerate: never the headline."""
CMAP_PADDING_ROWS = 5
"""Rows of all-ones truth and predictions BirdCLEF 2022+ adds before its macro AP (padded cmAP)."""


def row_f1(true_labels: Iterable[Hashable], predicted_labels: Iterable[Hashable]) -> float:
    """F1 of one row: 2 |P & T| / (|P| + |T|); an empty set stands for {'nocall'}."""
    true_set = set(true_labels) or {NOCALL}
    predicted_set = set(predicted_labels) or {NOCALL}
    return 2.0 * len(true_set & predicted_set) / (len(true_set) + len(predicted_set))


def row_wise_micro_f1(true_rows: Sequence[Iterable[Hashable]], predicted_rows: Sequence[Iterable[Hashable]]
                      ) -> float:
    """BirdCLEF 2021's score: the mean of row_f1 over rows (label sets of codes or column indices; empty = nocall)."""
    if len(true_rows) != len(predicted_rows):
        raise ValueError(f"{len(true_rows)} true rows but {len(predicted_rows)} predicted rows")
    if not true_rows:
        raise ValueError("row-wise F1 needs at least one row")
    return float(np.mean([row_f1(t, p) for t, p in zip(true_rows, predicted_rows, strict=True)]))


def row_f1_from_arrays(targets: np.ndarray, probabilities: np.ndarray, *, threshold: float) -> float:
    """row_wise_micro_f1 from arrays.

    targets: bool/0-1, shape (n_rows, n_species); a row of zeros is 'nocall'.
    probabilities: float, shape (n_rows, n_species); a species is predicted when its
    probability is >= threshold, and a row with none predicted is 'nocall'.
    """
    true = np.asarray(targets) > 0.5
    pred = np.asarray(probabilities) >= threshold
    if true.shape != pred.shape or true.ndim != 2:
        raise ValueError(f"targets {true.shape} and probabilities {pred.shape} must have the same 2-D shape")
    true_nocall = ~true.any(axis=1)
    pred_nocall = ~pred.any(axis=1)
    hits = (true & pred).sum(axis=1) + (true_nocall & pred_nocall)
    sizes = true.sum(axis=1) + true_nocall + pred.sum(axis=1) + pred_nocall
    return float(np.mean(2.0 * hits / sizes))


def choose_threshold(targets: np.ndarray, probabilities: np.ndarray,
                     *, grid: Sequence[float] = THRESHOLD_GRID) -> tuple[float, float]:
    """(threshold, row-wise F1) maximising the row-wise F1 over `grid`.

    On few rows the score is flat over a range of thresholds; the median of the best
    thresholds is taken, away from the edges of that range.
    """
    scores = np.array([row_f1_from_arrays(targets, probabilities, threshold=t) for t in grid])
    best = np.flatnonzero(scores == scores.max())
    pick = int(best[(best.size - 1) // 2])
    return float(grid[pick]), float(scores[pick])


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float | np.ndarray:
    """Average precision as scikit-learn defines it: step-wise, no interpolation.

    AP = sum over thresholds of (R_k - R_(k-1)) * P_k, evaluated at every distinct score
    (a block of tied scores is ranked as one, as scikit-learn does).

    Parameters
    ----------
    targets : array, shape (n,) or (n, n_classes)
        Truth, bool or 0/1.
    scores : array, same shape as targets
        Higher = more confident.

    Returns
    -------
    float for 1-D input; float64 array of shape (n_classes,) for 2-D input, one AP per column.
    NaN for a class without positives (scikit-learn returns 0 there, with a warning).
    """
    targets = np.asarray(targets) > 0.5
    scores = np.asarray(scores, dtype=np.float64)
    if targets.shape != scores.shape or targets.ndim not in (1, 2):
        raise ValueError(f"targets {targets.shape} and scores {scores.shape} must have the same 1-D or 2-D shape")
    if targets.ndim == 2:
        return np.array([_binary_average_precision(targets[:, j], scores[:, j]) for j in range(targets.shape[1])])
    return _binary_average_precision(targets, scores)


def _per_class_average_precision(targets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """average_precision of 2-D input (n, n_classes): float64, shape (n_classes,)."""
    per_class = average_precision(targets, scores)
    assert isinstance(per_class, np.ndarray)  # 2-D input gives one AP per column
    return per_class


def _binary_average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """AP of one class; targets bool, scores float64, both shape (n,)."""
    n_positive = int(targets.sum())
    if n_positive == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_targets = scores[order], targets[order]
    # Last index of each block of tied scores: precision/recall are evaluated there.
    block_ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_targets)[block_ends]
    predicted = block_ends + 1
    precision = true_positives / predicted
    recall_step = np.diff(np.r_[0, true_positives]) / n_positive
    return float(np.sum(precision * recall_step))


@dataclass(frozen=True)
class MacroAveragePrecision:
    """Macro AP over the classes that have at least one positive."""

    value: float | None
    """Mean AP over the scored classes; None when no class has a positive."""
    n_scored: int
    """Classes with at least one positive (averaged)."""
    n_skipped: int
    """Classes without a positive (AP undefined, left out of the mean)."""


def macro_average_precision(targets: np.ndarray, scores: np.ndarray) -> MacroAveragePrecision:
    """Mean of the per-class AP over the classes that have at least one positive.

    Classes without a positive are skipped and counted (scikit-learn's average='macro' would
    count them as AP 0 instead). targets, scores: shape (n, n_classes).
    """
    per_class = _per_class_average_precision(_as_2d(targets, "targets"), _as_2d(scores, "scores"))
    defined = per_class[np.isfinite(per_class)]
    return MacroAveragePrecision(value=float(defined.mean()) if defined.size else None, n_scored=int(defined.size),
                                 n_skipped=int(per_class.size - defined.size))


def padded_cmap(targets: np.ndarray, scores: np.ndarray, *, padding_rows: int = CMAP_PADDING_ROWS) -> float:
    """BirdCLEF 2022+'s padded cmAP: add `padding_rows` rows of all-ones truth and all-ones
    scores, then the macro AP over ALL classes (scikit-learn's average_precision_score(...,
    average='macro') on the padded arrays).

    The padding gives every class positives, so a class absent from the truth still counts (its AP
    is high unless a negative scores 1.0, which ties with the padding).

    targets, scores: shape (n, n_classes). Returns a float in (0, 1].
    """
    targets, scores = _as_2d(targets, "targets"), _as_2d(scores, "scores")
    if padding_rows < 1:
        raise ValueError(f"padding_rows must be >= 1, got {padding_rows}")
    pad = np.ones((padding_rows, targets.shape[1]))
    per_class = average_precision(np.vstack([targets > 0.5, pad]), np.vstack([scores, pad]))
    return float(np.mean(per_class))


def top1_accuracy(primary_index: np.ndarray, scores: np.ndarray) -> float:
    """Share of items whose highest score is their primary label.

    primary_index: int, shape (n,), the column of each item's primary label.
    scores: shape (n, n_classes). Ties go to the lowest column (np.argmax).
    """
    primary_index = np.asarray(primary_index)
    scores = _as_2d(scores, "scores")
    if primary_index.shape != (scores.shape[0],):
        raise ValueError(f"primary_index {primary_index.shape} must have shape ({scores.shape[0]},)")
    if not primary_index.size:
        raise ValueError("top-1 accuracy needs at least one item")
    return float(np.mean(np.argmax(scores, axis=1) == primary_index))


def clip_scores(window_scores: np.ndarray, recording_of_window: Sequence[Hashable]
                ) -> tuple[list[Hashable], np.ndarray]:
    """Each recording scored as the max over its 5-s windows.

    window_scores: shape (n_windows, n_classes). recording_of_window: n_windows ids (any hashable).
    Returns (recording ids in order of first appearance, scores of shape (n_recordings, n_classes)).
    """
    window_scores = _as_2d(window_scores, "window_scores")
    if len(recording_of_window) != window_scores.shape[0]:
        raise ValueError(f"{len(recording_of_window)} recording ids for {window_scores.shape[0]} windows")
    index: dict[Hashable, int] = {}
    rows = np.array([index.setdefault(r, len(index)) for r in recording_of_window], dtype=np.int64)
    out = np.full((len(index), window_scores.shape[1]), -np.inf, dtype=np.result_type(window_scores.dtype, np.float32))
    np.maximum.at(out, rows, window_scores)
    return list(index), out


def nocall_baseline_row_f1(rows: Sequence[Iterable[Hashable]]) -> float:
    """BirdCLEF 2021's row-wise micro F1 of predicting 'nocall' for every row (label sets of codes or column
    indices; empty = nocall)."""
    return row_wise_micro_f1(rows, [()] * len(rows))


def auroc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class is absent."""
    targets = np.asarray(targets) > 0.5
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(targets.sum()), int((~targets).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size, dtype=np.float64)
    sorted_scores = scores[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], scores.size]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = 0.5 * (start + end - 1) + 1.0
    u = ranks[targets].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def per_class_figures(targets: np.ndarray, probabilities: np.ndarray, *, threshold: float,
                      codes: Sequence[str]) -> dict[str, dict[str, float | int | None]]:
    """Per species: support, AP, AUROC, precision, recall, F1 at `threshold` (None where undefined).

    targets, probabilities: shape (n_rows, n_species) in the order of `codes`.
    """
    true = np.asarray(targets) > 0.5
    probabilities = np.asarray(probabilities)
    pred = probabilities >= threshold
    out: dict[str, dict[str, float | int | None]] = {}
    for j, code in enumerate(codes):
        tp = int((true[:, j] & pred[:, j]).sum())
        fp = int((~true[:, j] & pred[:, j]).sum())
        fn = int((true[:, j] & ~pred[:, j]).sum())
        out[code] = {
            "support": int(true[:, j].sum()),
            "ap": _finite_or_none(float(average_precision(true[:, j], probabilities[:, j]))),
            "auroc": _finite_or_none(auroc(true[:, j], probabilities[:, j])),
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        }
    return out


def macro_mean(per_class: dict[str, dict[str, float | int | None]], key: str) -> float | None:
    """Mean of one per-class figure over the classes where it is defined (None if none is)."""
    values = [float(v) for c in per_class.values() if (v := c[key]) is not None]
    return float(np.mean(values)) if values else None


def species_confusion(targets: np.ndarray, probabilities: np.ndarray, *, threshold: float) -> np.ndarray:
    """Multi-label confusion counts, shape (n_species + 1, n_species + 1); the last index is 'nocall'.

    Rows are true labels, columns predicted ones. Per row of the data: each hit i adds
    [i, i]; each missed species i is paired with each wrongly predicted species j ([i, j]),
    or with 'nocall' when nothing wrong was predicted ([i, nocall]); a wrongly predicted
    species j with nothing missed is a false alarm ([nocall, j]); nocall predicted on a
    nocall row adds [nocall, nocall]. Two birds both found add nothing off the diagonal.
    """
    true = np.asarray(targets) > 0.5
    pred = np.asarray(probabilities) >= threshold
    n_species = true.shape[1]
    nocall = n_species
    matrix = np.zeros((n_species + 1, n_species + 1), dtype=np.int64)
    for t, p in zip(true, pred, strict=True):
        hits, missed, extra = np.flatnonzero(t & p), np.flatnonzero(t & ~p), np.flatnonzero(~t & p)
        matrix[hits, hits] += 1
        if missed.size and extra.size:
            matrix[np.ix_(missed, extra)] += 1
        elif missed.size:
            matrix[missed, nocall] += 1
        elif extra.size:
            matrix[nocall, extra] += 1
        elif not t.any():
            matrix[nocall, nocall] += 1
    return matrix


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _as_2d(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, n_classes), got shape {array.shape}")
    return array


# --- the figures metrics.json reports ---------------------------------------------------------------------


@dataclass(frozen=True)
class SoundscapeSummary:
    """BirdCLEF 2021's row-wise micro F1 on scored soundscape rows, with its baseline and counts."""

    rows: int
    """Scored 5-s rows."""
    positive_rows: int
    """Rows holding at least one species of the subset (the rest are 'nocall')."""
    row_wise_micro_f1: float
    """The model's score at the chosen threshold."""
    nocall_baseline_f1: float
    """The score of predicting 'nocall' on every one of the same rows."""
    degenerate: bool
    """positive_rows < MIN_POSITIVE_ROWS: the F1 mostly measures silence, never the headline."""

    def to_dict(self) -> dict[str, Any]:
        """Exactly {rows, positive_rows, row_wise_micro_f1, nocall_baseline_f1, degenerate}."""
        return {"rows": self.rows, "positive_rows": self.positive_rows, "row_wise_micro_f1": self.row_wise_micro_f1,
                "nocall_baseline_f1": self.nocall_baseline_f1, "degenerate": self.degenerate}


def soundscape_summary(targets: np.ndarray, probabilities: np.ndarray, *, threshold: float) -> SoundscapeSummary:
    """SoundscapeSummary of scored rows.

    targets: bool/0-1, shape (n_rows, n_species), subset species only (a row of zeros is 'nocall').
    probabilities: shape (n_rows, n_species). A species is predicted when >= threshold.
    """
    true = _as_2d(targets, "targets") > 0.5
    positive_rows = int(true.any(axis=1).sum())
    true_rows = [tuple(np.flatnonzero(t)) for t in true]
    return SoundscapeSummary(rows=int(true.shape[0]), positive_rows=positive_rows,
                             row_wise_micro_f1=row_f1_from_arrays(true, probabilities, threshold=threshold),
                             nocall_baseline_f1=nocall_baseline_row_f1(true_rows),
                             degenerate=positive_rows < MIN_POSITIVE_ROWS)


@dataclass(frozen=True)
class ClipSummary:
    """Scores of held-out recordings, each scored as the max over its 5-s windows (see clip_scores)."""

    n_recordings: int
    """Held-out recordings scored."""
    macro_ap: float | None
    """Macro AP over the species with at least one held-out positive (None if none has)."""
    padded_cmap: float
    """BirdCLEF 2022+'s padded cmAP over every species (CMAP_PADDING_ROWS padding rows)."""
    top1: float
    """Share of recordings whose highest-scored species is their primary label."""
    per_class: dict[str, dict[str, float | int | None]]
    """Per species: ap, precision, recall, f1 at the threshold (None where undefined), n_positive, n_predicted,
    true_positives (counts of recordings)."""

    @property
    def n_species_scored(self) -> int:
        """Species that enter macro_ap (at least one held-out positive)."""
        return sum(1 for v in self.per_class.values() if v["n_positive"])

    def to_dict(self) -> dict[str, Any]:
        """Exactly {n_recordings, macro_ap, padded_cmap, top1, per_class}."""
        return {"n_recordings": self.n_recordings, "macro_ap": self.macro_ap, "padded_cmap": self.padded_cmap,
                "top1": self.top1, "per_class": self.per_class}


def clip_summary(targets: np.ndarray, scores: np.ndarray, *, primary_index: np.ndarray, threshold: float,
                 codes: Sequence[str]) -> ClipSummary:
    """ClipSummary of held-out recordings.

    targets: bool/0-1, shape (n_recordings, n_species): primary and in-subset secondary labels.
    scores: shape (n_recordings, n_species), e.g. from clip_scores. primary_index: int (n_recordings,).
    threshold: a species is predicted when its score >= threshold. codes: n_species names, in column order.
    """
    true = _as_2d(targets, "targets") > 0.5
    scores = _as_2d(scores, "scores")
    if len(codes) != true.shape[1]:
        raise ValueError(f"{len(codes)} codes for {true.shape[1]} columns")
    predicted = scores >= threshold
    ap = _per_class_average_precision(true, scores)
    per_class: dict[str, dict[str, float | int | None]] = {}
    for j, code in enumerate(codes):
        tp, n_positive, n_predicted = int((true[:, j] & predicted[:, j]).sum()), int(true[:, j].sum()), int(
            predicted[:, j].sum())
        per_class[code] = {
            "ap": _finite_or_none(ap[j]),
            "precision": tp / n_predicted if n_predicted else None,
            "recall": tp / n_positive if n_positive else None,
            "f1": 2 * tp / (n_positive + n_predicted) if n_positive + n_predicted else None,
            "n_positive": n_positive,
            "n_predicted": n_predicted,
            "true_positives": tp,
        }
    return ClipSummary(n_recordings=int(true.shape[0]), macro_ap=macro_average_precision(true, scores).value,
                       padded_cmap=padded_cmap(true, scores), top1=top1_accuracy(primary_index, scores),
                       per_class=per_class)


def headline(clip: ClipSummary | None, soundscape: SoundscapeSummary | None) -> dict[str, Any]:
    """The one figure a run is judged by: {metric, value, why}.

    Clip-level macro AP when there are held-out recordings; otherwise the soundscape row-wise F1,
    but only when it is not degenerate; otherwise no headline (metric and value None). `metric` is
    the figure's path in metrics.json ('clip.macro_ap', 'soundscape.row_wise_micro_f1').
    """
    if clip is not None and clip.n_recordings and clip.macro_ap is not None:
        why = (f"macro AP of {clip.n_recordings} held-out recordings (never trained on), each scored as the max "
               f"over its 5-s windows, over the {clip.n_species_scored} of {len(clip.per_class)} species with a "
               "held-out positive; recognising species in unseen recordings is what the model is for")
        if soundscape is not None:
            why += (f"; the soundscape F1 {soundscape.row_wise_micro_f1:.3f} is reported beside its all-nocall "
                    f"baseline {soundscape.nocall_baseline_f1:.3f}"
                    + (f" and is degenerate ({soundscape.positive_rows} positive rows < {MIN_POSITIVE_ROWS})"
                       if soundscape.degenerate else ""))
        return {"metric": "clip.macro_ap", "value": clip.macro_ap, "why": why}
    if soundscape is not None and not soundscape.degenerate:
        return {"metric": "soundscape.row_wise_micro_f1", "value": soundscape.row_wise_micro_f1,
                "why": (f"no held-out recordings to score; row-wise micro F1 on {soundscape.rows} soundscape rows, "
                        f"{soundscape.positive_rows} of them with a subset species (>= {MIN_POSITIVE_ROWS}); "
                        f"predicting nocall everywhere scores {soundscape.nocall_baseline_f1:.3f}")}
    if soundscape is not None:
        why = (f"no headline: no held-out recordings, and the soundscape F1 {soundscape.row_wise_micro_f1:.3f} is "
               f"degenerate: only {soundscape.positive_rows} of {soundscape.rows} rows hold a subset species "
               f"(< {MIN_POSITIVE_ROWS}) and predicting nocall everywhere scores {soundscape.nocall_baseline_f1:.3f}")
    else:
        why = "no headline: neither held-out recordings nor scored soundscape rows"
    return {"metric": None, "value": None, "why": why}
