"""Tables of the data notebook, on the quick synthetic dataset (real OGG files)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from birdlab.data import summary as data_summary
from birdlab.data.birdclef2021 import BirdCLEF2021, SoundscapeRow


@pytest.fixture(scope="module")
def dataset(synthetic_quick):
    return BirdCLEF2021(synthetic_quick)


def test_durations_match_the_synth_range_and_mark_missing_files(dataset, tmp_path):
    recordings = dataset.recordings()
    missing = dataclasses.replace(recordings[0], audio_path=tmp_path / "gone.ogg")
    durations = data_summary.recording_durations_s([*recordings, missing])
    assert durations.shape == (len(recordings) + 1,)
    assert np.all((durations[:-1] >= 3.0) & (durations[:-1] <= 5.0)), "SynthConfig.quick() writes 3-5 s recordings"
    assert np.isnan(durations[-1])


def test_locations_skip_recordings_without_coordinates(dataset):
    recordings = dataset.recordings()
    unlocated = dataclasses.replace(recordings[0], latitude=None)
    latitude, longitude, labels = data_summary.recording_locations([unlocated, *recordings])
    assert latitude.shape == longitude.shape == (len(recordings),)
    assert labels == tuple(r.primary_label for r in recordings)
    located = [r for r in recordings if r.latitude is not None and r.longitude is not None]
    np.testing.assert_array_equal(latitude, [r.latitude for r in located])
    np.testing.assert_array_equal(longitude, [r.longitude for r in located])


def test_label_timeline_matches_the_label_rows(dataset):
    rows = dataset.soundscape_rows()
    audio_id = rows[0].audio_id
    codes = sorted({r.primary_label for r in dataset.recordings()})
    timeline = data_summary.label_timeline(rows, audio_id=audio_id, codes=codes)
    mine = [r for r in rows if r.audio_id == audio_id]
    assert timeline.presence.shape == (len(codes), len(mine))
    assert list(timeline.window_end_s) == sorted(r.seconds for r in mine)
    assert any(set(r.birds) - set(codes) for r in mine), "the quick soundscape has a window of other species only"
    assert timeline.nocall_windows == sum(not set(r.birds) & set(codes) for r in mine)
    for w, row in enumerate(sorted(mine, key=lambda r: r.seconds)):
        assert {codes[i] for i in np.flatnonzero(timeline.presence[:, w])} == set(row.birds) & set(codes)


def test_label_timeline_of_an_unknown_soundscape_is_an_error(dataset):
    with pytest.raises(ValueError, match="no soundscape label row has audio_id 1"):
        data_summary.label_timeline(dataset.soundscape_rows(), audio_id=1, codes=["x"])


def test_label_timeline_tells_two_sites_with_one_audio_id_apart():
    rows = [SoundscapeRow("7019_COR_5", "COR", 7019, 5, ("cangoo",)), SoundscapeRow("7019_SSW_5", "SSW", 7019, 5, ()),
            SoundscapeRow("7019_SSW_10", "SSW", 7019, 10, ("cangoo",))]
    cor = data_summary.label_timeline(rows, audio_id=7019, site="COR", codes=["cangoo"])
    ssw = data_summary.label_timeline(rows, audio_id=7019, site="SSW", codes=["cangoo"])
    assert cor.presence.tolist() == [[True]] and ssw.presence.tolist() == [[False, True]]
    with pytest.raises(ValueError, match="audio_id 7019 is used at sites COR, SSW; pass site="):
        data_summary.label_timeline(rows, audio_id=7019, codes=["cangoo"])
