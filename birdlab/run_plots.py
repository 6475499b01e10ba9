"""PNG figures of a run: training curves, per-class AP, species confusion (matplotlib, Agg)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history_csv: Path, out: Path) -> Path:
    """Loss and validation loss (and PR-AUC when logged) per epoch, from Keras' CSVLogger file."""
    plt = _pyplot()
    with history_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, metric in zip(axes, ("loss", "pr_auc"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if rows and key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_per_class_ap(codes: Sequence[str], scored: dict, validation: dict, out: Path, *, scored_name: str) -> Path:
    """Bars of average precision per species (undefined AP = no positives, drawn as 0 and hatched)."""
    plt = _pyplot()
    x = np.arange(len(codes))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(codes)), 3.8))
    for offset, figures, name in ((-0.2, validation, "validation"), (0.2, scored, scored_name)):
        values = [figures[c]["ap"] for c in codes]
        bars = ax.bar(x + offset, [v if v is not None else 0.0 for v in values], width=0.4, label=name)
        for bar, value in zip(bars, values, strict=True):
            if value is None:
                bar.set_hatch("//")
    ax.set_xticks(x, codes, rotation=70, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("average precision")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_confusion(labels: Sequence[str], matrix: np.ndarray, out: Path, *, title: str) -> Path:
    """Heat map of the multi-label confusion counts (rows: true, columns: predicted)."""
    plt = _pyplot()
    size = max(5, 0.35 * len(labels))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
