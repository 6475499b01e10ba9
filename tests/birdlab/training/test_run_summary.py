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
                                                       "clips": {"train": 40, "validation": 8, "test_rows": 12}}),
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
