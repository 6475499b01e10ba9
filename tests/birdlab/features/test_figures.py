"""Figures of features: example spectrograms."""

from __future__ import annotations

import numpy as np
import pytest
from lab_fixtures import PNG_MAGIC, png_bytes

from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.features import figures as feature_plots
from birdlab.features.examples import example_spectrograms
from edge_runtime.spec import FeatureSpec


@pytest.fixture(scope="module")
def dataset(synthetic_quick):
    return BirdCLEF2021(synthetic_quick)



def test_spectrogram_grid_one_image_per_example(dataset):
    spec = FeatureSpec()
    recordings = dataset.recordings()
    codes = sorted({r.primary_label for r in recordings})
    examples = example_spectrograms(recordings, spec=spec, codes=codes, per_species=1)
    fig = feature_plots.plot_spectrogram_grid(examples, spec=spec, columns=3)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == len(codes)
    np.testing.assert_array_equal(images[0].get_array(), examples[0].log_mel_db)
    assert png_bytes(fig).startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="no example spectrograms"):
        feature_plots.plot_spectrogram_grid([], spec=spec)
