"""Figures of features (notebook 01_data): example log-mel spectrograms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from birdlab.features.examples import ExampleSpectrogram
from edge_runtime.spec import FeatureSpec


def plot_spectrogram_grid(examples: Sequence[ExampleSpectrogram], *, spec: FeatureSpec, columns: int = 4) -> Figure:
    """One log-mel panel (dB, mel band x time) per example, titled with its species and file."""
    if not examples:
        raise ValueError("no example spectrograms to plot (no readable recording of the chosen species)")
    rows = -(-len(examples) // columns)
    cols = min(columns, len(examples))
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    seconds = spec.clip_seconds
    image = None
    for ax, example in zip(axes, examples, strict=False):
        image = ax.imshow(example.log_mel_db, origin="lower", aspect="auto", cmap="magma",
                          extent=(0.0, seconds, 0, spec.n_mels), vmin=example.log_mel_db.max() - 80.0)
        ax.set_title(f"{example.recording.primary_label} · {example.recording.filename}", fontsize="small")
        ax.set_xlabel("s")
        ax.set_ylabel("mel band")
    for ax in axes[len(examples):]:
        ax.set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(examples)]), label="dB", shrink=0.8)
    return fig
