"""BirdCLEF 2021's row-wise micro F1 and the per-class figures, on hand-made rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from birdlab.metrics import (
    auroc,
    average_precision,
    choose_threshold,
    per_class_figures,
    row_f1,
    row_f1_from_arrays,
    row_wise_micro_f1,
    species_confusion,
)

F1_ATOL = 1e-12
SKLEARN_ATOL = 1e-12


def test_row_f1_known_answers() -> None:
    assert row_f1({"bird1", "bird2"}, {"bird2", "bird3", "bird4"}) == pytest.approx(2 * 1 / (2 + 3), abs=F1_ATOL)
    assert row_f1((), ()) == 1.0  # nocall predicted on a nocall row
    assert row_f1((), {"nocall"}) == 1.0
    assert row_f1((), {"eurrob1"}) == 0.0  # a bird on a nocall row
    assert row_f1({"eurrob1"}, ()) == 0.0  # nocall on a bird row
    assert row_f1({"eurrob1"}, {"eurrob1"}) == 1.0


def test_row_wise_micro_f1_reproduces_the_published_example() -> None:
    # The worked example that Kaggle competitors published for this metric (Cornell 2020 / BirdCLEF 2021):
    # rows score 1, 2*1/(2+2) = 0.5 and 1 -> mean 0.8333...
    true = [["amecro"], ["amecro", "amerob"], []]
    predicted = [["amecro"], ["amecro", "bird666"], ["nocall"]]
    assert row_wise_micro_f1(true, predicted) == pytest.approx(2.5 / 3, abs=F1_ATOL)


def test_row_wise_micro_f1_averages_rows_not_counts() -> None:
    # Micro over rows: a row with many birds weighs as much as a nocall row.
    true = [["a", "b", "c", "d"], []]
    predicted = [["a", "b", "c", "d"], ["a"]]
    assert row_wise_micro_f1(true, predicted) == pytest.approx(0.5, abs=F1_ATOL)


def test_array_form_matches_set_form(rng: np.random.Generator) -> None:
    codes = ["a", "b", "c", "d", "e"]
    targets = rng.random((200, 5)) < 0.2
    probabilities = rng.random((200, 5))
    threshold = 0.7
    true_sets = [[c for c, t in zip(codes, row, strict=True) if t] for row in targets]
    pred_sets = [[c for c, p in zip(codes, row, strict=True) if p >= threshold] for row in probabilities]
    assert row_f1_from_arrays(targets, probabilities, threshold=threshold) == pytest.approx(
        row_wise_micro_f1(true_sets, pred_sets), abs=F1_ATOL)


def test_choose_threshold_picks_the_separating_threshold() -> None:
    targets = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    probabilities = np.array([[0.8, 0.3], [0.2, 0.6], [0.4, 0.1], [0.9, 0.55]])
    threshold, score = choose_threshold(targets, probabilities)
    assert score == 1.0
    assert threshold == pytest.approx(0.48)  # the middle of the perfect range (0.40, 0.55]


def test_average_precision_and_auroc_known_answers() -> None:
    targets = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(targets, scores) == pytest.approx((1 + 2 / 3) / 2, abs=F1_ATOL)
    assert auroc(targets, scores) == pytest.approx(3 / 4, abs=F1_ATOL)
    assert average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5, abs=F1_ATOL)
    assert auroc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5, abs=F1_ATOL)
    assert np.isnan(average_precision(np.zeros(3), np.ones(3)))
    assert np.isnan(auroc(np.ones(3), np.ones(3)))


def test_average_precision_and_auroc_agree_with_scikit_learn(rng: np.random.Generator) -> None:
    for _ in range(5):
        targets = rng.random(300) < 0.3
        scores = np.round(rng.random(300), 2)  # rounding makes ties
        assert average_precision(targets, scores) == pytest.approx(average_precision_score(targets, scores),
                                                                   abs=SKLEARN_ATOL)
        assert auroc(targets, scores) == pytest.approx(roc_auc_score(targets, scores), abs=SKLEARN_ATOL)


def test_per_class_figures_and_confusion() -> None:
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.7], [0.1, 0.8], [0.1, 0.1]])
    figures = per_class_figures(targets, probabilities, threshold=0.5, codes=["a", "b"])
    assert figures["a"] == {"support": 2, "ap": 1.0, "auroc": 1.0, "precision": 1.0, "recall": 0.5, "f1": 2 / 3}
    assert figures["b"]["precision"] == 0.5 and figures["b"]["recall"] == 1.0
    confusion = species_confusion(targets, probabilities, threshold=0.5)
    # rows: true a, b, nocall; columns: predicted a, b, nocall
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])


def test_confusion_separates_hits_misses_and_false_alarms() -> None:
    codes = ["a", "b", "c"]
    rows = [({"a", "b"}, {"a", "b"}),  # both found: diagonal only
            ({"a"}, set()),  # missed, nothing else predicted: [a, nocall]
            (set(), {"c"}),  # false alarm on a nocall row: [nocall, c]
            ({"a", "b"}, {"a", "c"}),  # a found, b taken for c
            (set(), set())]  # nocall found
    targets = np.array([[c in t for c in codes] for t, _ in rows], dtype=float)
    probabilities = np.array([[0.9 if c in p else 0.1 for c in codes] for _, p in rows])
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 2
    expected[1, 1] = 1
    expected[0, 3] = 1
    expected[3, 2] = 1
    expected[1, 2] = 1
    expected[3, 3] = 1
    np.testing.assert_array_equal(species_confusion(targets, probabilities, threshold=0.5), expected)
