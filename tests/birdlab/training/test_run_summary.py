"""Reading a run directory back: headline, per-class table, scores, confusion; and the training figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lab_fixtures import png_bytes

from birdlab.errors import UserError
from birdlab.training import figures as training_plots
from birdlab.training.run_summary import PER_CLASS_COLUMNS, load_run_summary

CODES = ("eurrob1", "blackc1", "comcha")


def _write_run(run_dir):
    run_dir.mkdir(parents=True)
    per_class = {code: {"support": i + 1, "ap": 0.5 + 0.1 * i, "auroc": 0.6, "precision": None if i == 1 else 0.5,
                        "recall": 0.5, "f1": 0.4} for i, code in enumerate(CODES)}
    metrics = {"row_wise_micro_f1": 0.625, "threshold": 0.42, "evaluated_on": "test soundscapes",
               "threshold_chosen_on": "validation", "test": {"n_rows": 12, "nocall_rows": 3, "row_wise_micro_f1": 0.625},
               "validation": {"n_rows": 8, "nocall_rows": 2, "row_wise_micro_f1": 0.7},
               "per_class": per_class, "per_class_validation": per_class,
               "confusion": {"labels": [*CODES, "nocall"], "matrix": np.arange(16).reshape(4, 4).tolist()}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (run_dir / "config.json").write_text(json.dumps({"name": "tiny", "seed": 7, "model": {"name": "tiny"}}),
                                         encoding="utf-8")
    (run_dir / "run_info.json").write_text(json.dumps({"epochs_run": 3, "parameters": 996, "train_seconds": 1.5,
                                                       "clips": {"train": 40, "validation": 8, "test_rows": 12},
                                                       "missing_audio_text": "2 of 50 recording(s) listed in "
                                                                             "train_metadata.csv have no audio file"}),
                                           encoding="utf-8")
    (run_dir / "history.csv").write_text("epoch,loss,pr_auc,val_loss,val_pr_auc\n0,0.9,0.4,0.8,0.3\n1,0.7,0.5,0.75,0.4\n"
                                         "2,0.6,0.6,0.74,0.45\n", encoding="utf-8")
    return run_dir


@pytest.fixture
def summary(tmp_path):
    return load_run_summary(_write_run(tmp_path / "runs" / "tiny"))


def test_summary_reads_every_file(summary):
    assert summary.codes == CODES
    assert list(summary.history["epoch"]) == [0, 1, 2]
    text = summary.describe()
    assert "preset tiny" in text and "996 parameters" in text and "40 training clips" in text
    assert "row-wise micro F1 0.625 on test soundscapes at threshold 0.42" in text
    assert "2 of 50 recording(s) listed in train_metadata.csv have no audio file" in text


def test_per_class_frame_keeps_label_order_and_missing_values(summary):
    frame = summary.per_class_frame()
    assert tuple(frame.index) == CODES
    assert tuple(frame.columns) == PER_CLASS_COLUMNS
    assert np.isnan(frame.loc["blackc1", "precision"])
    assert frame.loc["comcha", "support"] == 3
    with pytest.raises(ValueError, match="which must be"):
        summary.per_class_frame(which="nope")


def test_scores_and_confusion(summary):
    scores = summary.scores_frame()
    assert list(scores.index) == ["test", "validation"]
    assert scores.loc["test", "row_wise_micro_f1"] == 0.625
    labels, matrix = summary.confusion()
    assert labels == (*CODES, "nocall") and matrix.shape == (4, 4) and matrix[3, 2] == 14


def test_missing_metrics_is_a_user_error(tmp_path):
    run_dir = _write_run(tmp_path / "run")
    (run_dir / "metrics.json").unlink()
    with pytest.raises(UserError, match=r"metrics\.json: missing; is training finished"):
        load_run_summary(run_dir)




def test_history_plot_separates_losses_from_metrics(summary):
    fig = training_plots.plot_history(summary.history)
    loss_ax, metric_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "val_loss"]
    assert [line.get_label() for line in metric_ax.lines] == ["pr_auc", "val_pr_auc"]
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [1, 2, 3])
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_per_class_plot_draws_each_column_per_species(summary):
    fig = training_plots.plot_per_class(summary.per_class_frame(), columns=("ap", "precision"))
    bars = fig.axes[0].patches
    assert len(bars) == 2 * len(CODES)
    assert bars[1].get_height() == pytest.approx(0.6)
    assert bars[len(CODES) + 1].get_height() == 0.0, "a missing precision is drawn as a gap"
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_confusion_plot_writes_the_counts(summary):
    labels, matrix = summary.confusion()
    fig = training_plots.plot_confusion(labels, matrix)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"1", "15"} <= texts and "0" not in texts
    assert png_bytes(fig).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="does not match 2 labels"):
        training_plots.plot_confusion(labels[:2], matrix)


def test_summary_shows_the_headline_the_clip_table_and_the_soundscape_figure_with_baselines(tmp_path):
    from birdlab.training.config import tiny
    from birdlab.training.dataset import build_split
    from birdlab.training.evaluate import RecordingScores, held_out_metrics

    run_dir = _write_run(tmp_path / "run")
    truth = np.eye(3, dtype=bool)[[0, 0, 1, 2]]
    scores = np.where(truth, 0.8, 0.1).astype(np.float32)
    scores[1] = [0.3, 0.6, 0.1]  # the second eurrob1 recording ranks blackc1 first
    recordings = RecordingScores(keys=("a", "b", "c", "d"), truth=truth, primary_index=np.array([0, 0, 1, 2]),
                                 scores=scores, n_windows=9)
    rows = np.zeros((60, 3), bool)
    rows[:5, 0] = True
    held_out = held_out_metrics(codes=CODES, threshold=0.5, recordings=recordings, soundscape_truth=rows,
                                soundscape_probabilities=np.zeros(rows.shape))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, **held_out}), encoding="utf-8")
    recs = [_recording(code, i, f"author {i % 4}") for code in CODES for i in range(6)]
    (run_dir / "split.json").write_text(build_split(recs, [], config=tiny()).to_json(), encoding="utf-8")

    summary = load_run_summary(run_dir)

    assert summary.headline["metric"] == "clip.macro_ap"
    table = summary.clip_scores_frame()
    assert list(table.index) == ["macro AP", "padded cmAP", "top-1"]
    assert table.loc["top-1", "value"] == 0.75 and table.loc["top-1", "baseline"] == 0.5
    assert (table["n_recordings"] == 4).all()
    per_species = summary.clip_frame()
    assert tuple(per_species.index) == CODES and per_species.loc["eurrob1", "n_positive"] == 2
    assert per_species.loc["eurrob1", "ap_baseline"] == 0.5
    scape = summary.soundscape_frame()
    assert scape.iloc[0].to_dict() == {"rows": 60, "positive_rows": 5, "row_wise_micro_f1": 55 / 60,
                                       "nocall_baseline_f1": 55 / 60, "degenerate": True}
    grouping = summary.grouping_frame()
    assert set(grouping["method"]) == {"author"} and (grouping["test authors"] >= 1).all()
    text = summary.describe()
    assert "headline: clip.macro_ap" in text and "DEGENERATE" in text and "4 held-out recordings" in text


def test_a_summary_of_an_older_run_says_it_has_no_headline(summary):
    assert summary.headline["metric"] is None and summary.clip_scores_frame().empty and summary.clip_frame().empty
    assert summary.soundscape_frame().empty and summary.grouping_frame().empty
    assert "predates them" in summary.describe()


def _recording(code, number, author):
    from pathlib import Path

    from birdlab.data.birdclef2021 import Recording

    return Recording(primary_label=code, secondary_labels=(), type=(), latitude=None, longitude=None,
                     scientific_name=code, common_name=code, author=author, date="", filename=f"XC{number}.ogg",
                     license="", rating=0.0, time="?", url="", audio_path=Path(f"/nowhere/XC{number}.ogg"))
