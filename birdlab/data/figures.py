"""Figures of the dataset (notebook 01_data)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from birdlab.data.summary import DatasetSummary, LabelTimeline


def plot_species_counts(summary: DatasetSummary, *, codes: Sequence[str] | None = None) -> Figure:
    """Two bar charts per species: recordings and seconds of audio (only `codes` when given)."""
    rows = [s for s in summary.species if codes is None or s.ebird_code in set(codes)]
    names = [s.ebird_code for s in rows]
    fig = Figure(figsize=(max(6.0, 0.35 * len(rows) + 2), 5.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(rows))
    top.bar(x, [s.recordings for s in rows], color="tab:blue")
    top.set_ylabel("recordings")
    bottom.bar(x, [s.seconds / 60.0 for s in rows], color="tab:green")
    bottom.set_ylabel("minutes of audio")
    bottom.set_xticks(x, names, rotation=90)
    top.set_title(f"{len(rows)} species, {sum(s.recordings for s in rows)} recordings")
    return fig


def plot_durations(durations_s: np.ndarray) -> Figure:
    """Histogram of recording lengths; durations_s: float seconds (n,), NaN = unreadable (left out)."""
    values = np.asarray(durations_s, dtype=np.float64)
    finite = values[np.isfinite(values)]
    fig = Figure(figsize=(6.0, 3.5), layout="constrained")
    ax = fig.subplots()
    ax.hist(finite, bins=min(30, max(5, finite.size // 3)), color="tab:gray")
    ax.set_xlabel("recording length (s)")
    ax.set_ylabel("recordings")
    missing = values.size - finite.size
    title = f"{finite.size} recordings, median {np.median(finite):.1f} s" if finite.size else "no readable audio"
    ax.set_title(title + (f", {missing} unreadable" if missing else ""))
    return fig


def plot_locations(latitude: np.ndarray, longitude: np.ndarray, labels: Sequence[str]) -> Figure:
    """Recording locations (longitude, latitude), one colour per label; arrays of shape (n,)."""
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.subplots()
    labels = list(labels)
    for code in sorted(set(labels)):
        mask = np.array([label == code for label in labels], dtype=bool)
        ax.scatter(longitude[mask], latitude[mask], s=14, label=code)
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.set_aspect(1.0 / np.cos(np.deg2rad(np.nanmean(latitude))) if len(labels) else "auto")
    if 0 < len(set(labels)) <= 24:
        ax.legend(fontsize="x-small", ncols=1 if len(set(labels)) <= 12 else 2, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{len(labels)} located recordings")
    return fig


def plot_label_timeline(timeline: LabelTimeline, *, detections: np.ndarray | None = None,
                        title: str | None = None) -> Figure:
    """Ground-truth labels of one soundscape as a species x window grid.

    detections: optional bool (len(timeline.codes), n_windows), drawn as markers over the grid
    (hits where the label is present, false alarms elsewhere).
    """
    n_species, n_windows = timeline.presence.shape
    fig = Figure(figsize=(max(6.0, 0.25 * n_windows + 2), max(2.5, 0.3 * n_species + 1.2)), layout="constrained")
    ax = fig.subplots()
    ax.imshow(timeline.presence, aspect="auto", cmap="Greens", vmin=0, vmax=1.4, interpolation="nearest",
              extent=(timeline.window_end_s[0] - 5, timeline.window_end_s[-1], n_species - 0.5, -0.5))
    if detections is not None:
        detections = np.asarray(detections, dtype=bool)
        if detections.shape != timeline.presence.shape:
            raise ValueError(f"detections shape {detections.shape} != labels shape {timeline.presence.shape}")
        species, windows = np.nonzero(detections)
        centres = timeline.window_end_s[windows] - 2.5
        hit = timeline.presence[species, windows]
        ax.scatter(centres[hit], species[hit], marker="o", color="tab:blue", label="detected, labelled")
        ax.scatter(centres[~hit], species[~hit], marker="x", color="tab:red", label="detected, not labelled")
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_yticks(np.arange(n_species), timeline.codes)
    ax.set_xlabel("time in soundscape (s)")
    ax.set_title(title or f"soundscape {timeline.audio_id}: labels per 5-s window "
                          f"({timeline.nocall_windows} of {n_windows} nocall)")
    return fig
