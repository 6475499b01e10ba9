"""Figures of a training run: drawn for notebook 02_train (plot_*), and saved as PNGs next to a run's metrics
by evaluate (save_*: training curves, per-class AP, species confusion)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    import pandas as pd


def plot_history(history: pd.DataFrame) -> Figure:
    """Loss (left) and every other logged metric (right) per epoch; `val_` columns dashed."""
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    epochs = history["epoch"].to_numpy() + 1 if "epoch" in history else np.arange(1, len(history) + 1)
    for column in history.columns:
        if column == "epoch" or column == "learning_rate":
            continue
        ax = loss_ax if column.endswith("loss") else metric_ax
        ax.plot(epochs, history[column].to_numpy(), marker="o", linestyle="--" if column.startswith("val_") else "-",
                label=column)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    metric_ax.set(xlabel="epoch", title="metrics")
    for ax in (loss_ax, metric_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize="small")
    return fig


def plot_per_class(frame: pd.DataFrame, *, columns: Sequence[str] = ("ap", "f1"), title: str = "") -> Figure:
    """Grouped bars per species (frame rows) of the given columns (e.g. AP and F1); missing values as gaps."""
    fig = Figure(figsize=(max(6.0, 0.45 * len(frame) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(frame))
    width = 0.8 / max(1, len(columns))
    for k, column in enumerate(columns):
        values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        ax.bar(x + (k - (len(columns) - 1) / 2) * width, np.nan_to_num(values), width=width, label=column)
    ax.set_xticks(x, list(frame.index), rotation=90)
    ax.set(ylim=(0, 1), ylabel="score", title=title)
    ax.legend(fontsize="small")
    return fig


def plot_confusion(labels: Sequence[str], matrix: np.ndarray, *, title: str = "species confusion") -> Figure:
    """Counts matrix[i][j] (rows true label i, columns predicted label j) with the counts written in."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"confusion matrix shape {matrix.shape} does not match {len(labels)} labels")
    size = max(4.0, 0.4 * len(labels) + 2)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, list(labels), rotation=90)
    ax.set_yticks(ticks, list(labels))
    ax.set(xlabel="predicted", ylabel="true", title=title)
    if len(labels) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i, j in zip(*np.nonzero(matrix), strict=True):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize="x-small",
                    color="white" if matrix[i, j] > threshold else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="rows")
    return fig


# -- PNGs of a run (birdlab.training.evaluate) ---------------------------------------------------------
def _save(fig: Figure, out: Path) -> Path:
    fig.savefig(out, dpi=100)
    return out


def save_training_curves(history_csv: Path, out: Path) -> Path:
    """Loss and every logged metric per epoch, from Keras' CSVLogger file."""
    import pandas as pd

    return _save(plot_history(pd.read_csv(history_csv)), out)


def save_per_class_ap(codes: Sequence[str], scored: dict, validation: dict, out: Path, *, scored_name: str) -> Path:
    """Bars of average precision per species (undefined AP = no positives, drawn as 0 and hatched)."""
    x = np.arange(len(codes))
    fig = Figure(figsize=(max(6, 0.45 * len(codes)), 3.8), layout="constrained")
    ax = fig.subplots()
    for offset, figures, name in ((-0.2, validation, "validation"), (0.2, scored, scored_name)):
        values = [figures[c]["ap"] for c in codes]
        bars = ax.bar(x + offset, [v if v is not None else 0.0 for v in values], width=0.4, label=name)
        for bar, value in zip(bars, values, strict=True):
            if value is None:
                bar.set_hatch("//")
    ax.set_xticks(x, codes, rotation=70, fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="average precision")
    ax.legend(fontsize=8)
    return _save(fig, out)


def save_confusion(labels: Sequence[str], matrix: np.ndarray, out: Path, *, title: str) -> Path:
    """Heat map of the multi-label confusion counts (rows: true, columns: predicted)."""
    return _save(plot_confusion(labels, matrix, title=title), out)
