"""The embedded default dataset: layout, content and determinism."""

import dataclasses
import math

import numpy as np
import soundfile

from birdlab.data.birdclef2021 import METADATA_COLUMNS, BirdCLEF2021
from birdlab.data.synth import SynthConfig, call_models, ensure_synthetic, is_synthesized, synthesize
from edge_runtime.audio import load_audio

TINY = dataclasses.replace(SynthConfig.quick(), n_species=2, recordings_per_species=2, soundscape_seconds=10)


def _all_samples(root):
    return {p.relative_to(root): soundfile.read(p, dtype="float32")[0] for p in sorted(root.rglob("*.ogg"))}


def test_same_seed_gives_identical_audio_and_another_seed_does_not(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthesize(dest=a, config=TINY)
    synthesize(dest=b, config=TINY)
    synthesize(dest=c, config=dataclasses.replace(TINY, seed=TINY.seed + 1))
    audio_a, audio_b, audio_c = _all_samples(a), _all_samples(b), _all_samples(c)
    assert audio_a.keys() == audio_b.keys() and len(audio_a) == 5
    for key in audio_a:
        np.testing.assert_array_equal(audio_a[key], audio_b[key])
    assert (a / "train_metadata.csv").read_text() == (b / "train_metadata.csv").read_text()
    assert not all(np.array_equal(audio_a[k], audio_c[k]) for k in audio_a if k in audio_c)


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


def test_default_dataset_has_secondary_labels_and_nocall_rows_and_all_species(tmp_path):
    config = dataclasses.replace(SynthConfig(), recordings_per_species=2, recording_seconds=(2.0, 3.0),
                                 n_soundscapes=1)
    summary = synthesize(dest=tmp_path, config=config)
    dataset = BirdCLEF2021(tmp_path)
    recordings = dataset.recordings()
    assert len({r.primary_label for r in recordings}) == 24 == summary.species
    assert any(r.secondary_labels for r in recordings)
    assert all(s != r.primary_label for r in recordings for s in r.secondary_labels)
    rows = dataset.soundscape_rows()
    assert len(rows) == 12 and 1 <= summary.nocall_rows < 12
    assert any(len(r.birds) >= 2 for r in rows) or sum(1 for r in rows if r.birds) >= 6


def test_voices_differ_and_come_in_lookalike_pairs():
    from birdlab.data.species import load_species

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
    assert min(calls) > max(silent)


def test_ensure_synthetic_skips_an_up_to_date_dataset(tmp_path):
    assert ensure_synthetic(dest=tmp_path, config=TINY) is True
    assert is_synthesized(tmp_path, config=TINY)
    assert ensure_synthetic(dest=tmp_path, config=TINY) is False
    assert not is_synthesized(tmp_path, config=dataclasses.replace(TINY, seed=5))
