"""Scores as BirdCLEF 2021 defines them, plus per-class figures; pure numpy.

The competition metric is the row-wise micro-averaged F1: every scored 5-s row has a
true set of species (or {'nocall'}) and a predicted set (or {'nocall'} when nothing is
above the threshold); each row scores 2 * |P & T| / (|P| + |T|), i.e. 2 TP / (2 TP + FP +
FN), and the score is the mean over rows. 'nocall' is a label like any other: predicting
'nocall' on a nocall row scores 1, predicting a bird there scores 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

NOCALL = "nocall"
THRESHOLD_GRID = tuple(round(0.02 + 0.01 * i, 2) for i in range(97))
"""Thresholds tried when choosing one on validation: 0.02, 0.03, ..., 0.98."""


def row_f1(true_labels: Iterable[str], predicted_labels: Iterable[str]) -> float:
    """F1 of one row: 2 |P & T| / (|P| + |T|); an empty set stands for {'nocall'}."""
    true_set = set(true_labels) or {NOCALL}
    predicted_set = set(predicted_labels) or {NOCALL}
    return 2.0 * len(true_set & predicted_set) / (len(true_set) + len(predicted_set))


def row_wise_micro_f1(true_rows: Sequence[Iterable[str]], predicted_rows: Sequence[Iterable[str]]) -> float:
    """BirdCLEF 2021's score: the mean of row_f1 over rows (label sets of codes; empty = nocall)."""
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


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one class: sum over positives of precision at their rank / n positives.

    Tied scores are ranked as one block (as scikit-learn does). NaN when there are no positives.
    targets, scores: shape (n,).
    """
    targets = np.asarray(targets) > 0.5
    scores = np.asarray(scores, dtype=np.float64)
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
            "ap": _finite_or_none(average_precision(true[:, j], probabilities[:, j])),
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
