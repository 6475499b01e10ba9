"""Figures of the exported variants (notebook 03_export)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import pandas as pd

DP_FLOOR = 1e-9
"""|dp| values below this (exact matches included) are drawn at this value on log axes."""


def plot_equivalence(keras_outputs: np.ndarray, variant_outputs: Mapping[str, np.ndarray]) -> Figure:
    """Per variant: its probability against Keras' (one point per clip x species), and the |dp| distribution.

    keras_outputs: float32 (n, n_species); variant_outputs: variant -> float32 (n, n_species).
    """
    keras_outputs = np.asarray(keras_outputs, dtype=np.float64)
    fig = Figure(figsize=(4.0 * len(variant_outputs) + 4.5, 4.0), layout="constrained")
    axes = fig.subplots(1, len(variant_outputs) + 1, squeeze=False)[0]
    spread = []
    for ax, (variant, outputs) in zip(axes, variant_outputs.items(), strict=False):
        outputs = np.asarray(outputs, dtype=np.float64)
        if outputs.shape != keras_outputs.shape:
            raise ValueError(f"variant {variant}: outputs {outputs.shape} vs Keras {keras_outputs.shape}")
        dp = np.abs(outputs - keras_outputs)
        spread.append((variant, np.maximum(dp.ravel(), DP_FLOOR)))
        ax.plot([0, 1], [0, 1], color="0.7", linewidth=1)
        ax.scatter(keras_outputs.ravel(), outputs.ravel(), s=8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Keras probability", ylabel=f"{variant} probability",
               title=f"{variant}: max |dp| {dp.max():.1e}")
    last = axes[-1]
    last.boxplot([values for _, values in spread], tick_labels=[name for name, _ in spread], whis=(0, 100))
    last.set_yscale("log")
    last.set(ylabel="|p_variant − p_keras|", title=f"|dp| over {keras_outputs.size} outputs")
    return fig


def plot_variant_costs(costs: pd.DataFrame) -> Figure:
    """Bars of file size (kB) and median single-clip latency (ms, p90 as error bar) per variant (rows of `costs`)."""
    fig = Figure(figsize=(9.0, 3.4), layout="constrained")
    size_ax, time_ax = fig.subplots(1, 2)
    x = np.arange(len(costs))
    names = list(costs.index)
    size_ax.bar(x, costs["size_kb"], color="tab:purple")
    size_ax.set_xticks(x, names)
    size_ax.set(ylabel="kB", title="model size")
    median = costs["median_ms"].to_numpy(dtype=np.float64)
    upper = np.maximum(costs["p90_ms"].to_numpy(dtype=np.float64) - median, 0.0)
    time_ax.bar(x, median, yerr=[np.zeros_like(upper), upper], color="tab:orange", capsize=4)
    time_ax.set_xticks(x, names)
    time_ax.set(ylabel="ms per 5-s clip", title="latency (median, p90), one thread")
    return fig
