"""birdlab.metrics on hand-made rows: BirdCLEF 2021's row-wise micro F1 and per-class figures, clip-level scores
(AP, padded cmAP, top-1), the soundscape F1 with its nocall baseline, and the headline chooser.

Known answers are worked by hand in the comments; the AP family is also checked against scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from birdlab.data.birdclef2021 import SoundscapeRow
from birdlab.data.species import SpeciesFilter, birdclef2021_codes, load_species
from birdlab.metrics import (
    MIN_POSITIVE_ROWS,
    ClipSummary,
    auroc,
    average_precision,
    choose_threshold,
    clip_scores,
    clip_summary,
    headline,
    macro_average_precision,
    nocall_baseline_row_f1,
    padded_cmap,
    per_class_figures,
    row_f1,
    row_f1_from_arrays,
    row_wise_micro_f1,
    soundscape_summary,
    species_confusion,
    top1_accuracy,
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


EXACT_ATOL = 1e-12
"""Hand-worked fractions and scikit-learn agree to rounding."""

# Three recordings, three classes. Class 0 is in row 0, class 1 in row 1, class 2 nowhere.
HAND_TRUTH = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
HAND_SCORES = np.array([[0.2, 0.7, 1.0], [0.6, 0.5, 0.2], [0.4, 0.1, 0.0]])


def test_padded_cmap_known_answer():
    # Padding adds 5 rows of truth 1 / score 1.0 to every class; AP = sum over score blocks of dRecall * Precision.
    # class 0: ranking 1.0 x5 (pos), 0.6 (neg), 0.4 (neg), 0.2 (pos); 6 positives
    #          AP = 5/6 * 5/5 + 1/6 * 6/8 = 5/6 + 1/8 = 23/24
    # class 1: 1.0 x5 (pos), 0.7 (neg), 0.5 (pos), 0.1 (neg)
    #          AP = 5/6 * 1 + 1/6 * 6/7 = 41/42
    # class 2: no positive of its own; row 0 (negative) scores 1.0 and ties with the padding:
    #          one block of 6 rows holding all 5 positives -> AP = 1 * 5/6 = 5/6
    # padded cmAP = (23/24 + 41/42 + 5/6) / 3 = (161 + 164 + 140) / 168 / 3 = 155/168
    assert padded_cmap(HAND_TRUTH, HAND_SCORES) == pytest.approx(155 / 168, abs=EXACT_ATOL)
    padded_truth = np.vstack([HAND_TRUTH, np.ones((5, 3))])
    padded_scores = np.vstack([HAND_SCORES, np.ones((5, 3))])
    assert padded_cmap(HAND_TRUTH, HAND_SCORES) == pytest.approx(
        average_precision_score(padded_truth, padded_scores, average="macro"), abs=EXACT_ATOL)


def test_macro_ap_skips_classes_without_positives_and_counts_them():
    # Unpadded: class 0 ranks neg 0.6, neg 0.4, pos 0.2 -> AP 1/3; class 1: neg 0.7, pos 0.5 -> AP 1/2;
    # class 2 has no positive: skipped and counted. Macro AP = (1/3 + 1/2) / 2 = 5/12.
    result = macro_average_precision(HAND_TRUTH, HAND_SCORES)
    assert result.value == pytest.approx(5 / 12, abs=EXACT_ATOL)
    assert (result.n_scored, result.n_skipped) == (2, 1)
    per_class = average_precision(HAND_TRUTH, HAND_SCORES)
    assert per_class[:2] == pytest.approx([1 / 3, 1 / 2], abs=EXACT_ATOL) and np.isnan(per_class[2])
    assert macro_average_precision(np.zeros((2, 2)), np.ones((2, 2))).value is None


@pytest.mark.parametrize("n_rows", [7, 40, 300])
def test_ap_family_matches_scikit_learn_with_ties(rng: np.random.Generator, n_rows: int):
    truth = rng.random((n_rows, 6)) < 0.25
    truth[0, :5] = True  # every class but the last has a positive
    truth[:, 5] = False
    scores = np.round(rng.random((n_rows, 6)), 1)  # one decimal: many ties
    with_positives = truth.any(axis=0)

    ours = average_precision(truth, scores)
    theirs = average_precision_score(truth[:, with_positives], scores[:, with_positives], average=None)

    assert ours[with_positives] == pytest.approx(theirs, abs=EXACT_ATOL)
    assert macro_average_precision(truth, scores).value == pytest.approx(np.mean(theirs), abs=EXACT_ATOL)
    assert average_precision(truth[:, 0], scores[:, 0]) == pytest.approx(theirs[0], abs=EXACT_ATOL)
    padded_truth, padded_scores = np.vstack([truth, np.ones((5, 6))]), np.vstack([scores, np.ones((5, 6))])
    assert padded_cmap(truth, scores) == pytest.approx(
        average_precision_score(padded_truth, padded_scores, average="macro"), abs=EXACT_ATOL)


def test_clip_scores_take_the_max_over_each_recordings_windows():
    windows = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.3], [0.5, 0.4], [0.0, 0.6]])
    ids, scores = clip_scores(windows, ["b/XC2", "a/XC1", "b/XC2", "a/XC1", "c/XC3"])
    assert ids == ["b/XC2", "a/XC1", "c/XC3"]  # order of first appearance
    assert scores.tolist() == [[0.3, 0.9], [0.8, 0.4], [0.0, 0.6]]
    with pytest.raises(ValueError, match="2 recording ids for 5 windows"):
        clip_scores(windows, ["a", "b"])


def test_top1_accuracy():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.2, 0.1], [0.3, 0.3, 0.2]])
    # argmax: 1, 0, 0 (a tie goes to the lowest column) against primaries 1, 2, 0 -> 2 of 3
    assert top1_accuracy(np.array([1, 2, 0]), scores) == pytest.approx(2 / 3, abs=EXACT_ATOL)


def test_nocall_baseline_on_hand_rows():
    # Predicting nocall everywhere: {a} -> 0, nocall -> 1, nocall -> 1, {a, b} -> 0; mean 0.5.
    assert nocall_baseline_row_f1([{"a"}, (), (), {"a", "b"}]) == pytest.approx(0.5, abs=EXACT_ATOL)


def test_clip_summary_counts_and_per_class_figures():
    summary = clip_summary(HAND_TRUTH, HAND_SCORES, primary_index=np.array([0, 1, 2]), threshold=0.5,
                           codes=["eurrob1", "grtit1", "comcha"])
    assert set(summary.to_dict()) == {"n_recordings", "macro_ap", "padded_cmap", "top1", "per_class"}
    assert summary.n_recordings == 3 and summary.n_species_scored == 2
    assert summary.macro_ap == pytest.approx(5 / 12, abs=EXACT_ATOL)
    assert summary.padded_cmap == pytest.approx(155 / 168, abs=EXACT_ATOL)
    # argmax per row: 2, 0, 0 against primaries 0, 1, 2 -> 0
    assert summary.top1 == 0.0
    # eurrob1 at >= 0.5: predicted on row 1 only (0.6), its positive is row 0 -> tp 0, fp 1, fn 1
    assert summary.per_class["eurrob1"] == {"ap": pytest.approx(1 / 3), "precision": 0.0, "recall": 0.0, "f1": 0.0,
                                            "n_positive": 1, "n_predicted": 1, "true_positives": 0}
    # grtit1: predicted on rows 0 (0.7) and 1 (0.5), positive row 1 -> P 1/2, R 1, F1 2/3
    assert summary.per_class["grtit1"] == {"ap": pytest.approx(0.5), "precision": 0.5, "recall": 1.0,
                                           "f1": pytest.approx(2 / 3), "n_positive": 1, "n_predicted": 2,
                                           "true_positives": 1}
    # comcha: no positive; predicted on row 0 (1.0) -> AP, recall undefined; precision 0
    assert summary.per_class["comcha"] == {"ap": None, "precision": 0.0, "recall": None, "f1": 0.0,
                                           "n_positive": 0, "n_predicted": 1, "true_positives": 0}


# --- the real BirdCLEF 2021 label layout -------------------------------------------------------------------

SITES = ("COR", "SSW")
ROWS_PER_SOUNDSCAPE = 120  # 10 minutes of 5-s rows
N_SOUNDSCAPES = 20
CANGOO_ROWS = 18


def real_2021_rows() -> list[SoundscapeRow]:
    """The layout of the real train_soundscape_labels.csv: 20 ten-minute soundscapes at sites COR and SSW
    (2400 rows, ~64 % nocall raw); the only Brittany-subset species is cangoo, in 18 rows of one file; the
    other birds are North American species outside the subset."""
    subset = {s.ebird_code for s in load_species()}
    foreign = [c for c in birdclef2021_codes() if c not in subset][:12]
    rows = []
    for i in range(N_SOUNDSCAPES):
        audio_id, site = 2782 + 2003 * i, SITES[i % 2]
        for k in range(ROWS_PER_SOUNDSCAPE):
            seconds = 5 * (k + 1)
            birds: tuple[str, ...] = ()
            if k % 3 == 0:
                birds = (foreign[(i + k) % len(foreign)],)
            if i == 7 and 40 <= k < 40 + CANGOO_ROWS:
                birds = ("cangoo", *birds)
            rows.append(SoundscapeRow(row_id=f"{audio_id}_{site}_{seconds}", site=site, audio_id=audio_id,
                                      seconds=seconds, birds=birds))
    return rows


def test_a_model_that_never_predicts_a_bird_is_degenerate_on_the_real_2021_layout_and_never_the_headline():
    species = load_species()
    codes = [s.ebird_code for s in species]
    raw = real_2021_rows()
    assert len(raw) == 2400 and 0.6 < np.mean([r.is_nocall for r in raw]) < 0.7
    rows = SpeciesFilter.for_species(species).soundscape_rows(raw)
    targets = np.array([[code in r.birds for code in codes] for r in rows])
    silent_model = np.zeros(targets.shape)

    summary = soundscape_summary(targets, silent_model, threshold=0.5)

    assert summary.to_dict() == {"rows": 2400, "positive_rows": CANGOO_ROWS,
                                 "row_wise_micro_f1": pytest.approx(2382 / 2400),
                                 "nocall_baseline_f1": pytest.approx(2382 / 2400), "degenerate": True}
    assert summary.row_wise_micro_f1 > 0.99
    alone = headline(None, summary)
    assert alone["metric"] is None and alone["value"] is None
    assert "degenerate" in alone["why"] and "18 of 2400" in alone["why"]
    clip = ClipSummary(n_recordings=40, macro_ap=0.36, padded_cmap=0.7, top1=0.24,
                       per_class={"cangoo": {"ap": 0.36, "precision": None, "recall": 0.0, "f1": 0.0,
                                             "n_positive": 40, "n_predicted": 0, "true_positives": 0}})
    with_clips = headline(clip, summary)
    assert with_clips["metric"] == "clip.macro_ap" and with_clips["value"] == 0.36
    assert "degenerate" in with_clips["why"] and "40 held-out recordings" in with_clips["why"]


@pytest.mark.parametrize(("positive_rows", "degenerate"), [(MIN_POSITIVE_ROWS - 1, True), (MIN_POSITIVE_ROWS, False)])
def test_the_soundscape_f1_headlines_only_with_enough_positive_rows_and_no_clip_figures(positive_rows, degenerate):
    targets = np.zeros((200, 2), bool)
    targets[:positive_rows, 0] = True
    probabilities = targets * 0.9  # a perfect model

    summary = soundscape_summary(targets, probabilities, threshold=0.5)

    assert summary.degenerate is degenerate and summary.row_wise_micro_f1 == 1.0
    assert summary.nocall_baseline_f1 == pytest.approx((200 - positive_rows) / 200)
    chosen = headline(None, summary)
    if degenerate:
        assert chosen["metric"] is None
    else:
        assert chosen == {"metric": "soundscape.row_wise_micro_f1", "value": 1.0, "why": chosen["why"]}
        assert "no held-out recordings" in chosen["why"]
    assert headline(None, None)["metric"] is None
