"""Data figures render to PNG from real records; the drawn elements reflect the inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest

from birdlab import explore
from birdlab.data import BirdCLEF2021
from birdlab.dataset_summary import summarize_dataset
from birdlab.features import FeatureSpec
from birdlab.plots import data as data_plots

PNG_MAGIC = b"\x89PNG"


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


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
    assert _png(fig).startswith(PNG_MAGIC)


def test_durations_histogram_counts_readable_files():
    fig = data_plots.plot_durations(np.array([3.0, 4.0, 4.5, np.nan]))
    ax = fig.axes[0]
    assert sum(p.get_height() for p in ax.patches) == 3
    assert "1 unreadable" in ax.get_title()
    assert _png(fig).startswith(PNG_MAGIC)


def test_locations_one_series_per_species(dataset):
    latitude, longitude, labels = explore.recording_locations(dataset.recordings())
    fig = data_plots.plot_locations(latitude, longitude, labels)
    assert len(fig.axes[0].collections) == len(set(labels))
    assert _png(fig).startswith(PNG_MAGIC)


def test_spectrogram_grid_one_image_per_example(dataset):
    spec = FeatureSpec()
    recordings = dataset.recordings()
    codes = sorted({r.primary_label for r in recordings})
    examples = explore.example_spectrograms(recordings, spec=spec, codes=codes, per_species=1)
    fig = data_plots.plot_spectrogram_grid(examples, spec=spec, columns=3)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == len(codes)
    np.testing.assert_array_equal(images[0].get_array(), examples[0].log_mel_db)
    assert _png(fig).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="no example spectrograms"):
        data_plots.plot_spectrogram_grid([], spec=spec)


def test_label_timeline_marks_hits_and_false_alarms(dataset):
    rows = dataset.soundscape_rows()
    codes = sorted({r.primary_label for r in dataset.recordings()})
    timeline = explore.label_timeline(rows, audio_id=rows[0].audio_id, codes=codes)
    detections = timeline.presence.copy()
    detections[:, 0] = ~detections[:, 0]  # flip the first window: hits become misses and vice versa
    fig = data_plots.plot_label_timeline(timeline, detections=detections)
    hits, false_alarms = fig.axes[0].collections
    assert len(hits.get_offsets()) == int(np.sum(detections & timeline.presence))
    assert len(false_alarms.get_offsets()) == int(np.sum(detections & ~timeline.presence))
    assert _png(fig).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="detections shape"):
        data_plots.plot_label_timeline(timeline, detections=detections[:, :1])
