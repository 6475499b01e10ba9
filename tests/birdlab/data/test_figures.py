"""Data figures render to PNG from real records; the drawn elements reflect the inputs."""

from __future__ import annotations

import numpy as np
import pytest
from lab_fixtures import PNG_MAGIC, png_bytes

from birdlab.data import figures as data_plots
from birdlab.data import summary as data_summary
from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.data.summary import summarize_dataset


@pytest.fixture(scope="module")
def dataset(synthetic_quick):
    return BirdCLEF2021(synthetic_quick)


def test_species_counts_draws_one_bar_per_chosen_species(synthetic_quick):
    summary = summarize_dataset(synthetic_quick)
    codes = [s.ebird_code for s in summary.species][:3]
    fig = data_plots.plot_species_counts(summary, codes=codes)
    top, bottom = fig.axes
    assert [p.get_height() for p in top.patches] == [s.recordings for s in summary.species[:3]]
    assert [t.get_text() for t in bottom.get_xticklabels()] == codes
    assert png_bytes(fig).startswith(PNG_MAGIC)


def test_durations_histogram_counts_readable_files():
    fig = data_plots.plot_durations(np.array([3.0, 4.0, 4.5, np.nan]))
    ax = fig.axes[0]
    assert sum(p.get_height() for p in ax.patches) == 3
    assert "1 unreadable" in ax.get_title()
    assert png_bytes(fig).startswith(PNG_MAGIC)


def test_locations_one_series_per_species(dataset):
    latitude, longitude, labels = data_summary.recording_locations(dataset.recordings())
    fig = data_plots.plot_locations(latitude, longitude, labels)
    assert len(fig.axes[0].collections) == len(set(labels))
    assert png_bytes(fig).startswith(PNG_MAGIC)


def test_label_timeline_marks_hits_and_false_alarms(dataset):
    rows = dataset.soundscape_rows()
    codes = sorted({r.primary_label for r in dataset.recordings()})
    timeline = data_summary.label_timeline(rows, audio_id=rows[0].audio_id, codes=codes)
    detections = timeline.presence.copy()
    detections[:, 0] = ~detections[:, 0]  # flip the first window: hits become misses and vice versa
    fig = data_plots.plot_label_timeline(timeline, detections=detections)
    hits, false_alarms = fig.axes[0].collections
    assert len(hits.get_offsets()) == int(np.sum(detections & timeline.presence))
    assert len(false_alarms.get_offsets()) == int(np.sum(detections & ~timeline.presence))
    assert png_bytes(fig).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="detections shape"):
        data_plots.plot_label_timeline(timeline, detections=detections[:, :1])
