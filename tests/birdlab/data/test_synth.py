"""The embedded default dataset: layout, the real data's traits, content and determinism."""

import dataclasses
import math
import re

import numpy as np
import pytest
import soundfile

from birdlab.data.birdclef2021 import METADATA_COLUMNS, BirdCLEF2021, parse_soundscape_name
from birdlab.data.species import BRITTANY_BOX, SpeciesFilter, birdclef2021_codes, load_species
from birdlab.data.synth import (
    SITES,
    SynthConfig,
    call_models,
    ensure_synthetic,
    is_synthesized,
    plan_dataset,
    synthesize,
    write_csv_files,
)
from birdlab.data.synth_metadata import EUROPE_BOX
from edge_runtime.audio import load_audio
from edge_runtime.file_stream import BLOCK_SECONDS, open_audio_stream

TINY = dataclasses.replace(SynthConfig.quick(), n_species=2, recordings_per_species=2, soundscape_seconds=10)
MIN_TEST_POSITIVE_ROWS = 50
"""Rows holding a subset species that the demo's test soundscapes need for a non-degenerate soundscape F1."""


def _all_samples(root):
    return {p.relative_to(root): soundfile.read(p, dtype="float32")[0] for p in sorted(root.rglob("*.ogg"))}


@pytest.fixture(scope="module")
def default_csvs(tmp_path_factory):
    """The default config's two CSV files (planned, not rendered), read back by the BirdCLEF 2021 reader."""
    dest = tmp_path_factory.mktemp("default_csvs")
    plan = plan_dataset(SynthConfig())
    write_csv_files(plan, dest=dest)
    return plan, BirdCLEF2021(dest)


def test_same_seed_gives_identical_audio_and_another_seed_does_not(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(dest=a, config=TINY)
    synthesize(dest=b, config=TINY, workers=1)
    synthesize(dest=c, config=dataclasses.replace(TINY, seed=TINY.seed + 1))
    audio_a, audio_b, audio_c = _all_samples(a), _all_samples(b), _all_samples(c)
    assert audio_a.keys() == audio_b.keys() and len(audio_a) == 5
    for key in audio_a:
        np.testing.assert_array_equal(audio_a[key], audio_b[key])
    assert (a / "train_metadata.csv").read_text() == (b / "train_metadata.csv").read_text()
    assert len(audio_c) == 5 and not any(np.array_equal(x, y) for x, y in zip(audio_a.values(), audio_c.values(), strict=True))


def test_layout_and_format_are_birdclef_2021(synthetic_quick):
    header = (synthetic_quick / "train_metadata.csv").read_text().splitlines()[0]
    assert tuple(header.split(",")) == METADATA_COLUMNS
    dataset = BirdCLEF2021(synthetic_quick)
    for rec in dataset.recordings():
        info = soundfile.info(rec.audio_path)
        assert (info.format, info.subtype, info.samplerate) == ("OGG", "VORBIS", 32000)
        assert 3.0 <= info.duration <= 5.01
    for scape in dataset.soundscapes().values():
        assert math.isclose(soundfile.info(scape.path).duration, 30.0, abs_tol=0.01)
        assert scape.site in SITES


def test_default_recordings_are_5_to_90_s_long_with_median_about_30_s(default_csvs):
    plan, _ = default_csvs
    seconds = np.array([r.seconds for r in plan.recordings])
    assert seconds.size == 240
    assert seconds.min() >= 5.0 and seconds.max() <= 90.0
    assert 25.0 <= float(np.median(seconds)) <= 35.0
    assert np.sum(seconds > 60) >= 10, "files longer than 60 s, which the device decodes block by block"


def test_default_metadata_has_the_real_files_traits(default_csvs):
    _, dataset = default_csvs
    recordings = dataset.recordings()
    subset = {s.ebird_code for s in load_species()}
    codes = set(birdclef2021_codes())
    assert len({r.primary_label for r in recordings}) == 24
    assert any(r.rating == 0.0 for r in recordings), "0.0 = unrated"
    assert {r.rating for r in recordings} <= {x / 2 for x in range(11)}
    secondary = [c for r in recordings for c in r.secondary_labels]
    outside = [c for c in secondary if c not in subset]
    assert set(secondary) <= codes and all(r.primary_label not in r.secondary_labels for r in recordings)
    assert len(outside) > len(secondary) / 2 > 0, "secondary labels mostly outside the subset"
    assert any(set(r.secondary_labels) & subset for r in recordings)
    assert all(c in subset for r in SpeciesFilter.for_species(load_species()).recordings(recordings)
               for c in r.secondary_labels)
    assert sum(BRITTANY_BOX.contains(r.latitude, r.longitude) for r in recordings) >= 20
    assert sum(not EUROPE_BOX.contains(r.latitude, r.longitude) for r in recordings) >= 20
    assert any(r.latitude < 0 for r in recordings if r.latitude is not None), "southern hemisphere too"
    times = {r.time for r in recordings}
    assert {"?", ""} <= times and any(t.endswith((" AM", " PM")) for t in times)
    assert any(len(t) == 5 and t[2] == ":" for t in times) and any(len(t) == 4 and t[1] == ":" for t in times)
    assert any(r.date.endswith("-00") for r in recordings), "a date with an unknown day"
    assert any(not r.author.isascii() for r in recordings)
    for code in subset:
        authors = [r.author for r in recordings if r.primary_label == code]
        assert len(set(authors)) >= 2, f"{code}: recordists to split by"


def test_default_soundscapes_are_named_and_labelled_like_the_real_ones(default_csvs):
    plan, dataset = default_csvs
    rows = dataset.soundscape_rows()
    scapes = [parse_soundscape_name(s.relative_path) for s in plan.soundscapes]
    assert {s.site for s in scapes} == {"COR", "SSW"} and len({s.audio_id for s in scapes}) == len(scapes)
    assert all(re.fullmatch(r"\d{4,5}_(COR|SSW)_20[12]\d[01]\d[0-3]\d\.ogg", p.relative_path.name)
               for p in plan.soundscapes), [p.relative_path.name for p in plan.soundscapes]
    per_file = {s.audio_id: [r for r in rows if r.audio_id == s.audio_id] for s in scapes}
    assert any(len(mine) == 120 and max(r.seconds for r in mine) == 600 for mine in per_file.values()), "10 minutes"
    subset = {s.ebird_code for s in load_species()}
    positive = sorted(sum(1 for r in mine if set(r.birds) & subset) for mine in per_file.values())
    nocall_share = 1 - sum(positive) / len(rows)
    assert nocall_share > 0.6, f"{nocall_share:.2f} of the rows hold no subset species"
    assert any(r.birds and not set(r.birds) & subset for r in rows), "rows with only species outside the subset"
    # whichever half of the soundscapes is the test set, it holds enough positive rows
    assert sum(positive[: math.ceil(len(positive) / 2)]) >= MIN_TEST_POSITIVE_ROWS, positive


def test_written_labels_and_audio_follow_the_plan(tmp_path):
    config = dataclasses.replace(TINY, n_species=3, recording_seconds=(6.0, 9.0), recording_median_seconds=7.0,
                                 soundscape_seconds=20, positive_window_share=0.5, distractor_window_share=0.25)
    plan = plan_dataset(config)
    summary = synthesize(dest=tmp_path, config=config)
    dataset = BirdCLEF2021(tmp_path)
    assert [r.row["filename"] for r in plan.recordings] == [r.filename for r in dataset.recordings()]
    for rec, planned in zip(dataset.recordings(), plan.recordings, strict=True):
        assert math.isclose(soundfile.info(rec.audio_path).duration, planned.seconds, abs_tol=1e-3)
    assert [r.birds_text for r in dataset.soundscape_rows()] == [
        " ".join(w) or "nocall" for s in plan.soundscapes for w in s.windows]
    assert summary.positive_rows == sum(1 for s in plan.soundscapes for w in s.windows
                                        if {sp.ebird_code for sp in plan.species} & set(w))


def test_a_recording_over_60_s_is_decoded_block_by_block_on_the_device(tmp_path):
    config = dataclasses.replace(TINY, n_species=1, recordings_per_species=1, recording_seconds=(61.0, 70.0),
                                 recording_median_seconds=65.0, n_soundscapes=0)
    synthesize(dest=tmp_path, config=config)
    (rec,) = BirdCLEF2021(tmp_path).recordings()
    stream = open_audio_stream(rec.audio_path, sample_rate_hz=32000)
    blocks = list(stream.blocks)
    assert stream.streamed and stream.n_samples > 60 * 32000
    assert len(blocks) == math.ceil(stream.n_samples / (BLOCK_SECONDS * 32000)) and len(blocks) >= 7
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(rec.audio_path, sample_rate_hz=32000))


def test_voices_differ_and_come_in_lookalike_pairs():
    species = load_species()
    models = call_models(species, seed=2021)
    voices = list(models.values())
    assert len({(v.shape, round(v.center_hz)) for v in voices}) == len(voices)
    for k in range(0, len(voices) - 1, 2):
        a, b = voices[k], voices[k + 1]
        assert abs(a.center_hz - b.center_hz) / a.center_hz < 0.2
        assert a.shape != b.shape


def test_calls_are_where_the_labels_say(synthetic_quick):
    """Windows labelled with birds carry more in-band energy than nocall windows of the same soundscape."""
    dataset = BirdCLEF2021(synthetic_quick)
    rows = dataset.soundscape_rows()
    scape = next(iter(dataset.soundscapes().values()))
    samples = load_audio(scape.path, sample_rate_hz=32000)
    energy = {r.seconds: float(np.mean(samples[(r.seconds - 5) * 32000 : r.seconds * 32000] ** 2)) for r in rows}
    calls = [energy[r.seconds] for r in rows if not r.is_nocall]
    silent = [energy[r.seconds] for r in rows if r.is_nocall]
    assert calls and silent and min(calls) > max(silent)


def test_resynthesising_removes_the_audio_of_the_previous_dataset(tmp_path):
    synthesize(dest=tmp_path, config=TINY)
    before = set(tmp_path.rglob("*.ogg"))
    synthesize(dest=tmp_path, config=dataclasses.replace(TINY, seed=99))
    after = set(tmp_path.rglob("*.ogg"))
    assert before - after, "another seed writes other file names"
    dataset = BirdCLEF2021(tmp_path)
    assert after == {r.audio_path for r in dataset.recordings()} | {s.path for s in dataset.soundscapes().values()}


def test_ensure_synthetic_skips_an_up_to_date_dataset(tmp_path):
    assert ensure_synthetic(dest=tmp_path, config=TINY) is True
    assert is_synthesized(tmp_path, config=TINY)
    assert ensure_synthetic(dest=tmp_path, config=TINY) is False
    assert not is_synthesized(tmp_path, config=dataclasses.replace(TINY, seed=5))
