"""Example spectrograms: the model input of the first window of a few recordings per species."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from birdlab.data import summary as data_summary
from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.features.cache import fit_clip
from birdlab.features.examples import example_spectrograms
from birdlab.features.log_mel import log_mel
from edge_runtime.spec import FeatureSpec


@pytest.fixture(scope="module")
def dataset(synthetic_quick):
    return BirdCLEF2021(synthetic_quick)



def test_the_first_clip_is_padded_or_cut(rng):
    spec = FeatureSpec()
    short = rng.standard_normal(1000).astype(np.float32)
    clip = fit_clip(short, clip_samples=spec.clip_samples)
    assert clip.shape == (spec.clip_samples,) and clip.dtype == np.float32
    np.testing.assert_array_equal(clip[:1000], short)
    assert not clip[1000:].any()
    long = rng.standard_normal(spec.clip_samples + 500).astype(np.float32)
    np.testing.assert_array_equal(fit_clip(long, clip_samples=spec.clip_samples), long[: spec.clip_samples])


def test_example_spectrograms_are_the_model_input_of_each_species(dataset):
    spec = FeatureSpec()
    recordings = dataset.recordings()
    codes = data_summary.species_with_recordings(recordings, codes=["nosuch", *sorted({r.primary_label for r in recordings})])
    assert "nosuch" not in codes
    examples = example_spectrograms(recordings, spec=spec, codes=codes[:2], per_species=2)
    assert [e.recording.primary_label for e in examples] == [codes[0], codes[0], codes[1], codes[1]]
    for example in examples:
        assert example.log_mel_db.shape == (spec.n_mels, spec.clip_frames)
        assert example.log_mel_db.dtype == np.float32
    from birdlab.features.audio import load_audio

    first = load_audio(examples[0].recording.audio_path, sample_rate_hz=spec.sample_rate_hz)
    expected = log_mel(fit_clip(first, clip_samples=spec.clip_samples), spec=spec)
    np.testing.assert_array_equal(examples[0].log_mel_db, expected)


def test_example_spectrograms_pass_over_missing_audio(dataset, tmp_path):
    spec = FeatureSpec()
    recordings = dataset.recordings()
    code = recordings[0].primary_label
    gone = dataclasses.replace(recordings[0], audio_path=tmp_path / "gone.ogg")
    examples = example_spectrograms([gone, *recordings], spec=spec, codes=[code], per_species=1)
    assert [e.recording.filename for e in examples] == [recordings[0].filename]
