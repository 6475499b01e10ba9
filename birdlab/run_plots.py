"""PNG figures of a run (training curves, per-class AP, species confusion), saved next to its metrics.

The figures themselves are drawn by `birdlab.plots.training` (the same ones notebook 02 shows);
this module only adds the run-specific AP comparison and writes the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from birdlab.plots import training as training_plots


def _save(fig: Figure, out: Path) -> Path:
    fig.savefig(out, dpi=100)
    return out


def plot_training_curves(history_csv: Path, out: Path) -> Path:
    """Loss and every logged metric per epoch, from Keras' CSVLogger file."""
    import pandas as pd

    return _save(training_plots.plot_history(pd.read_csv(history_csv)), out)


def plot_per_class_ap(codes: Sequence[str], scored: dict, validation: dict, out: Path, *, scored_name: str) -> Path:
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


def plot_confusion(labels: Sequence[str], matrix: np.ndarray, out: Path, *, title: str) -> Path:
    """Heat map of the multi-label confusion counts (rows: true, columns: predicted)."""
    return _save(training_plots.plot_confusion(labels, matrix, title=title), out)
