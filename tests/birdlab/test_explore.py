"""Tables of the data notebook, on the quick synthetic dataset (real OGG files)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from birdlab import explore
from birdlab.data import BirdCLEF2021, SoundscapeRow
from birdlab.features import FeatureSpec, log_mel


@pytest.fixture(scope="module")
def dataset(synthetic_quick):
    return BirdCLEF2021(synthetic_quick)


def test_durations_match_the_synth_range_and_mark_missing_files(dataset, tmp_path):
    recordings = dataset.recordings()
    missing = dataclasses.replace(recordings[0], audio_path=tmp_path / "gone.ogg")
    durations = explore.recording_durations_s([*recordings, missing])
    assert durations.shape == (len(recordings) + 1,)
    assert np.all((durations[:-1] >= 3.0) & (durations[:-1] <= 5.0)), "SynthConfig.quick() writes 3-5 s recordings"
    assert np.isnan(durations[-1])


def test_locations_skip_recordings_without_coordinates(dataset):
    recordings = dataset.recordings()
    unlocated = dataclasses.replace(recordings[0], latitude=None)
    latitude, longitude, labels = explore.recording_locations([unlocated, *recordings])
    assert latitude.shape == longitude.shape == (len(recordings),)
    assert labels == tuple(r.primary_label for r in recordings)
    assert np.all((latitude > 47) & (latitude < 49)) and np.all((longitude > -5) & (longitude < -1))


def test_first_clip_pads_short_audio_and_cuts_long_audio(rng):
    spec = FeatureSpec()
    short = rng.standard_normal(1000).astype(np.float32)
    clip = explore.first_clip(short, spec=spec)
    assert clip.shape == (spec.clip_samples,) and clip.dtype == np.float32
    np.testing.assert_array_equal(clip[:1000], short)
    assert not clip[1000:].any()
    long = rng.standard_normal(spec.clip_samples + 500).astype(np.float32)
    np.testing.assert_array_equal(explore.first_clip(long, spec=spec), long[: spec.clip_samples])


def test_example_spectrograms_are_the_model_input_of_each_species(dataset):
    spec = FeatureSpec()
    recordings = dataset.recordings()
    codes = explore.species_with_recordings(recordings, codes=["nosuch", *sorted({r.primary_label for r in recordings})])
    assert "nosuch" not in codes
    examples = explore.example_spectrograms(recordings, spec=spec, codes=codes[:2], per_species=2)
    assert [e.recording.primary_label for e in examples] == [codes[0], codes[0], codes[1], codes[1]]
    for example in examples:
        assert example.log_mel_db.shape == (spec.n_mels, spec.clip_frames)
        assert example.log_mel_db.dtype == np.float32
    from birdlab.audio import load_audio

    first = load_audio(examples[0].recording.audio_path, sample_rate_hz=spec.sample_rate_hz)
    expected = log_mel(explore.first_clip(first, spec=spec), spec=spec)
    np.testing.assert_array_equal(examples[0].log_mel_db, expected)


def test_example_spectrograms_pass_over_missing_audio(dataset, tmp_path):
    spec = FeatureSpec()
    recordings = dataset.recordings()
    code = recordings[0].primary_label
    gone = dataclasses.replace(recordings[0], audio_path=tmp_path / "gone.ogg")
    examples = explore.example_spectrograms([gone, *recordings], spec=spec, codes=[code], per_species=1)
    assert [e.recording.filename for e in examples] == [recordings[0].filename]


def test_label_timeline_matches_the_label_rows(dataset):
    rows = dataset.soundscape_rows()
    audio_id = rows[0].audio_id
    codes = sorted({r.primary_label for r in dataset.recordings()})
    timeline = explore.label_timeline(rows, audio_id=audio_id, codes=codes)
    mine = [r for r in rows if r.audio_id == audio_id]
    assert timeline.presence.shape == (len(codes), len(mine))
    assert list(timeline.window_end_s) == sorted(r.seconds for r in mine)
    assert timeline.nocall_windows == sum(r.is_nocall for r in mine)
    for w, row in enumerate(sorted(mine, key=lambda r: r.seconds)):
        assert {codes[i] for i in np.flatnonzero(timeline.presence[:, w])} == set(row.birds)


def test_label_timeline_of_an_unknown_soundscape_is_an_error(dataset):
    with pytest.raises(ValueError, match="no soundscape label row has audio_id 1"):
        explore.label_timeline(dataset.soundscape_rows(), audio_id=1, codes=["x"])


def test_label_timeline_tells_two_sites_with_one_audio_id_apart():
    rows = [SoundscapeRow("7019_COR_5", "COR", 7019, 5, ("cangoo",)), SoundscapeRow("7019_SSW_5", "SSW", 7019, 5, ()),
            SoundscapeRow("7019_SSW_10", "SSW", 7019, 10, ("cangoo",))]
    cor = explore.label_timeline(rows, audio_id=7019, site="COR", codes=["cangoo"])
    ssw = explore.label_timeline(rows, audio_id=7019, site="SSW", codes=["cangoo"])
    assert cor.presence.tolist() == [[True]] and ssw.presence.tolist() == [[False, True]]
    with pytest.raises(ValueError, match="audio_id 7019 is used at sites COR, SSW; pass site="):
        explore.label_timeline(rows, audio_id=7019, codes=["cangoo"])
