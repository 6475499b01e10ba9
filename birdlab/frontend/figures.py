"""Figures of WASM-vs-librosa parity (notebook 04_parity)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from birdlab.frontend.parity import ParityReport, WorstCase


def plot_file_errors(report: ParityReport) -> Figure:
    """Max and mean |dB error| of every file (sorted, worst left) against the tolerance line."""
    files = sorted(report.files, key=lambda f: f.max_abs_db_error, reverse=True)
    fig = Figure(figsize=(max(6.0, 0.3 * len(files) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(files))
    # an exact match (0 dB) cannot sit on a log axis: draw it at a floor far below the tolerance
    floor = report.tolerance_db * 1e-6
    ax.plot(x, [max(f.max_abs_db_error, floor) for f in files], "o", label="max |dB error|")
    ax.plot(x, [max(f.mean_abs_db_error, floor) for f in files], ".", label="mean |dB error|")
    ax.axhline(report.tolerance_db, color="tab:red", linestyle="--", label=f"tolerance {report.tolerance_db:g} dB")
    ax.set_yscale("log")
    ax.set_xticks(x, [Path(f.path).name for f in files], rotation=90, fontsize="x-small")
    ax.set_ylabel("|WASM − librosa| (dB)")
    ax.set_title(f"{len(files)} files: {'PASS' if report.passed else 'FAIL'}")
    ax.legend(fontsize="small")
    return fig


def plot_side_by_side(case: WorstCase) -> Figure:
    """librosa dB | WASM dB | WASM − librosa heatmap, for one file (arrays (n_mels, n_frames))."""
    ref, cand = case.reference_db, case.candidate_db
    err = cand.astype(np.float64) - ref.astype(np.float64)
    fig = Figure(figsize=(15.0, 3.4), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    vmin, vmax = float(ref.min()), float(ref.max())
    for ax, data, title in ((axes[0], ref, "librosa (dB)"), (axes[1], cand, "WASM (dB)")):
        image = ax.imshow(data, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
        ax.set(title=title, xlabel="frame")
        fig.colorbar(image, ax=ax)
    bound = max(float(np.abs(err).max()), 1e-12)
    image = axes[2].imshow(err, origin="lower", aspect="auto", vmin=-bound, vmax=bound, cmap="coolwarm")
    axes[2].set(title=f"WASM − librosa (dB), max |error| {np.abs(err).max():.3g}", xlabel="frame")
    fig.colorbar(image, ax=axes[2])
    axes[0].set_ylabel("mel band")
    fig.suptitle(Path(case.parity.path).name)
    return fig


def plot_error_histogram(cases: Sequence[WorstCase], *, tolerance_db: float) -> Figure:
    """Histogram (log x) of the |dB error| of every non-identical cell of the given files, pooled."""
    errors = np.concatenate([np.abs(c.candidate_db.astype(np.float64) - c.reference_db.astype(np.float64)).ravel()
                             for c in cases]) if cases else np.zeros(0)
    nonzero = errors[errors > 0]
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    if nonzero.size:
        bins = np.logspace(np.log10(nonzero.min()), np.log10(max(nonzero.max(), tolerance_db)) + 0.1, 40)
        ax.hist(nonzero, bins=list(bins), color="tab:blue")
        ax.set_xscale("log")
    ax.axvline(tolerance_db, color="tab:red", linestyle="--", label=f"tolerance {tolerance_db:g} dB")
    ax.set(xlabel="|WASM − librosa| (dB)", ylabel="cells",
           title=f"{nonzero.size} of {errors.size} cells differ ({len(cases)} files)")
    ax.legend(fontsize="small")
    return fig


