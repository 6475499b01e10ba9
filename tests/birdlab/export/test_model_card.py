"""MODEL_CARD.md's metrics: the headline, the clip table and the soundscape figure with their baselines."""

from __future__ import annotations

import numpy as np

from birdlab.export.model_card import metrics_section
from birdlab.training.evaluate import RecordingScores, held_out_metrics

CODES = ("eurrob1", "blackc1")


def _metrics(*, with_clip: bool) -> dict:
    truth = np.array([[1, 0], [1, 0], [0, 1]], bool)
    recordings = RecordingScores(keys=("a", "b", "c"), truth=truth, primary_index=np.array([0, 0, 1]),
                                 scores=np.array([[0.9, 0.1], [0.2, 0.3], [0.1, 0.8]], np.float32), n_windows=7)
    rows = np.zeros((120, 2), bool)
    rows[:18, 0] = True
    out = held_out_metrics(codes=CODES, threshold=0.5, recordings=recordings if with_clip else None,
                           soundscape_truth=rows, soundscape_probabilities=np.zeros(rows.shape))
    return {**out, "row_wise_micro_f1": out["soundscape"]["row_wise_micro_f1"], "threshold": 0.5}


def test_the_card_headlines_clip_macro_ap_and_shows_the_soundscape_figure_as_degenerate() -> None:
    text = "\n".join(metrics_section(_metrics(with_clip=True)))
    assert "**Headline:** `clip.macro_ap` = 1" in text  # both species rank their positives first
    assert "| macro AP | 1 | 0.5 (random ranking) |" in text  # prevalence 2/3 and 1/3, mean 0.5
    assert "| top-1 of the primary label | 0.6667 | 0.6667 (majority class; chance 0.5) |" in text
    assert "| eurrob1 | 2 | 1 | 0.6667 | 1 | 0.5 | 0.6667 |" in text
    assert "0.85 on 120 rows of the test soundscapes, 18 of them" in text and "scores 0.85" in text
    assert "**Degenerate:**" in text


def test_a_card_without_clip_figures_says_why_and_has_no_headline() -> None:
    metrics = _metrics(with_clip=False)
    text = "\n".join(metrics_section({**metrics, "clip_note": "no clip figures: no test recordings"}))
    assert "**Headline:** none: no headline" in text and "- None: no clip figures: no test recordings." in text
    assert "predates" in "\n".join(metrics_section({"row_wise_micro_f1": 0.9}))
