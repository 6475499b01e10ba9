"""birdlab.training.evaluate's metrics building, fed the real BirdCLEF 2021 soundscape label layout by code (no model,
no audio): the soundscape figure is marked degenerate and never headlines; clip figures sit beside their baselines."""

from __future__ import annotations

import numpy as np
import pytest

from birdlab.data.birdclef2021 import SoundscapeRow
from birdlab.data.species import SpeciesFilter, birdclef2021_codes, load_species
from birdlab.metrics import MIN_POSITIVE_ROWS
from birdlab.training.config import birdclef2021_brittany
from birdlab.training.dataset import build_split
from birdlab.training.evaluate import RecordingScores, clip_baselines, describe_metrics, held_out_metrics

SITES = ("COR", "SSW")
N_SOUNDSCAPES, ROWS_PER_SOUNDSCAPE, CANGOO_ROWS, CANGOO_FILE = 20, 120, 18, 7
THRESHOLD = 0.5
EXACT_ATOL = 1e-12


def real_2021_layout() -> list[SoundscapeRow]:
    """train_soundscape_labels.csv as it really is: 20 ten-minute soundscapes (120 rows each) at COR and SSW; a third
    of the rows hold North American birds outside the Brittany subset; `cangoo` is the only subset species, in 18
    rows of one file."""
    subset = {s.ebird_code for s in load_species()}
    foreign = [c for c in birdclef2021_codes() if c not in subset][:12]
    rows = []
    for i in range(N_SOUNDSCAPES):
        audio_id, site = 2782 + 2003 * i, SITES[i % 2]
        for k in range(ROWS_PER_SOUNDSCAPE):
            birds: tuple[str, ...] = (foreign[(i + k) % len(foreign)],) if k % 3 == 0 else ()
            if i == CANGOO_FILE and 40 <= k < 40 + CANGOO_ROWS:
                birds = ("cangoo", *birds)
            rows.append(SoundscapeRow(row_id=f"{audio_id}_{site}_{5 * (k + 1)}", site=site, audio_id=audio_id,
                                      seconds=5 * (k + 1), birds=birds))
    return rows


def _scored_rows(test_soundscapes: tuple[str, ...], codes: list[str]) -> np.ndarray:
    """Truth (n_rows, n_species) of the test soundscapes' rows after subset filtering."""
    rows = SpeciesFilter.for_species(load_species()).soundscape_rows(real_2021_layout())
    return np.array([[c in r.birds for c in codes] for r in rows if r.soundscape_id in test_soundscapes])


def _recordings(codes: list[str]) -> RecordingScores:
    """Four held-out recordings of the first two species; hand-made max-over-window scores."""
    truth = np.zeros((4, len(codes)), bool)
    truth[[0, 1], 0] = truth[[2, 3], 1] = True
    scores = np.full((4, len(codes)), 0.05, np.float32)
    scores[:, 0] = [0.9, 0.3, 0.4, 0.1]  # AP of species 0: ranks pos, neg(0.4), pos -> (1 + 2/3) / 2 = 5/6
    scores[:, 1] = [0.2, 0.35, 0.8, 0.7]  # AP of species 1: 1
    return RecordingScores(keys=("a/1", "a/2", "b/1", "b/2"), truth=truth, primary_index=np.array([0, 0, 1, 1]),
                           scores=scores, n_windows=17)


def test_the_real_2021_layout_is_degenerate_and_a_silent_model_never_headlines_its_f1() -> None:
    codes = [s.ebird_code for s in load_species()]
    rows = real_2021_layout()
    ids = sorted({r.soundscape_id for r in rows})
    positive = {r.soundscape_id for r in rows if "cangoo" in r.birds}
    split = build_split([], ids, config=birdclef2021_brittany(), positive_soundscapes=positive)
    assert positive <= set(split.test_soundscapes)  # one file with subset species: it goes where it is scored
    truth = _scored_rows(split.test_soundscapes, codes)
    silent = np.zeros(truth.shape, np.float32)

    metrics = held_out_metrics(codes=codes, threshold=THRESHOLD, recordings=None, soundscape_truth=truth,
                               soundscape_probabilities=silent)

    scape = metrics["soundscape"]
    assert (scape["rows"], scape["positive_rows"], scape["degenerate"]) == (1200, CANGOO_ROWS, True)
    assert scape["row_wise_micro_f1"] == pytest.approx(1182 / 1200, abs=EXACT_ATOL) == scape["nocall_baseline_f1"]
    assert metrics["clip"] is None
    assert metrics["headline"]["metric"] is None and metrics["headline"]["value"] is None
    assert "degenerate" in metrics["headline"]["why"]
    text = describe_metrics({**metrics, "threshold": THRESHOLD, "threshold_chosen_on": "validation"})
    assert "DEGENERATE" in text and f"{CANGOO_ROWS} with a subset species" in text
    assert "headline: none" in text and "headline: soundscape" not in text


def test_test_soundscapes_without_a_subset_species_give_f1_one_and_it_is_still_not_the_headline() -> None:
    codes = [s.ebird_code for s in load_species()]
    rows = real_2021_layout()
    with_cangoo = {r.soundscape_id for r in rows if "cangoo" in r.birds}
    all_nocall = tuple(sorted({r.soundscape_id for r in rows} - with_cangoo))[:10]
    truth = _scored_rows(all_nocall, codes)
    assert not truth.any()

    metrics = held_out_metrics(codes=codes, threshold=THRESHOLD, recordings=_recordings(codes),
                               soundscape_truth=truth, soundscape_probabilities=np.zeros(truth.shape))

    assert metrics["soundscape"]["row_wise_micro_f1"] == 1.0 and metrics["soundscape"]["positive_rows"] == 0
    assert metrics["soundscape"]["degenerate"]
    assert metrics["headline"]["metric"] == "clip.macro_ap"
    assert metrics["headline"]["value"] == pytest.approx((5 / 6 + 1) / 2, abs=EXACT_ATOL)


def test_clip_figures_sit_beside_their_baselines() -> None:
    codes = [s.ebird_code for s in load_species()]
    recordings = _recordings(codes)

    clip = held_out_metrics(codes=codes, threshold=THRESHOLD, recordings=recordings,
                            soundscape_truth=np.zeros((0, len(codes)), bool),
                            soundscape_probabilities=np.zeros((0, len(codes))))["clip"]

    assert {"n_recordings", "macro_ap", "padded_cmap", "top1", "per_class"} <= set(clip)
    assert (clip["n_recordings"], clip["n_windows"], clip["n_species_scored"]) == (4, 17, 2)
    assert clip["top1"] == 0.75  # recording 1 (species 0) scores species 1 highest
    # Trivial models on the same four recordings: each scored species holds 2 of 4 (AP of a random ranking 0.5);
    # primary labels 2 + 2 (majority top-1 0.5); chance 1 / 24.
    baseline = clip["baseline"]
    assert baseline["macro_ap"] == 0.5 and baseline["top1"] == 0.5
    assert baseline["top1_chance"] == pytest.approx(1 / len(codes), abs=EXACT_ATOL)
    assert baseline == clip_baselines(recordings)
    first = clip["per_class"][codes[0]]
    assert first["ap"] == pytest.approx(5 / 6, abs=EXACT_ATOL) and first["ap_baseline"] == 0.5
    # At 0.5 species 0 is predicted for recording 0 only: precision 1, recall 1/2.
    assert (first["precision"], first["recall"], first["n_positive"], first["true_positives"]) == (1.0, 0.5, 2, 1)
    assert clip["per_class"][codes[5]]["ap"] is None and clip["per_class"][codes[5]]["ap_baseline"] is None
    assert MIN_POSITIVE_ROWS == 50
