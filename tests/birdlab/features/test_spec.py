import dataclasses
import json
import re

import pytest

from edge_runtime.spec import SCHEMA_VERSION, FeatureSpec, SpecError


def test_json_round_trip_is_exact(tmp_path):
    spec = FeatureSpec(n_fft=2048, hop_length=512, win_length=1536, n_mels=128, htk=True, mel_norm=None, top_db=None)
    path = spec.save(tmp_path)
    assert path.name == "feature_spec.json"
    assert FeatureSpec.load(tmp_path) == spec
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_integers_in_float_fields_read_as_floats_so_the_hash_is_stable():
    data = FeatureSpec().to_dict()
    data.update(fmin_hz=50, top_db=80, clip_seconds=5)
    spec = FeatureSpec.from_dict(data)
    assert spec == FeatureSpec()
    assert spec.spec_hash == FeatureSpec().spec_hash


def test_hash_changes_with_any_field():
    base = FeatureSpec()
    assert dataclasses.replace(base, hop_length=321).spec_hash != base.spec_hash
    assert dataclasses.replace(base, db_amin=1e-9).spec_hash != base.spec_hash


def test_default_matches_birdclef_scoring_window():
    spec = FeatureSpec()
    assert spec.sample_rate_hz == 32000 and spec.clip_seconds == 5.0
    assert spec.clip_samples == 160000
    assert spec.clip_frames == 1 + 160000 // spec.hop_length
    assert spec.input_shape == (spec.n_mels, spec.clip_frames, 1)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("n_fft", 1000 + 7, "2^a * 3^b * 5^c"),
        ("win_length", 4096, "win_length"),
        ("fmax_hz", 20000.0, "fmax_hz"),
        ("pad_mode", "wrap", "pad_mode"),
        ("window", "hamming", "window"),
        ("mel_norm", "l2", "mel_norm"),
        ("n_mels", 0, "n_mels"),
    ],
)
def test_invalid_field_is_named(field, value, fragment):
    with pytest.raises(SpecError, match=re.escape(fragment)):
        dataclasses.replace(FeatureSpec(), **{field: value})


def test_unknown_field_and_wrong_version_are_refused(tmp_path):
    data = FeatureSpec().to_dict()
    with pytest.raises(SpecError, match="unknown field"):
        FeatureSpec.from_dict({**data, "nfft": 1024})
    with pytest.raises(SpecError, match="schema_version"):
        FeatureSpec.from_dict({**data, "schema_version": 99})
    bad = tmp_path / "feature_spec.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="feature_spec.json: not valid JSON"):
        FeatureSpec.load(bad)


def test_frame_count_without_centering():
    spec = FeatureSpec(center=False)
    assert spec.n_frames(spec.n_fft) == 1
    assert spec.n_frames(spec.n_fft + 3 * spec.hop_length) == 4
    with pytest.raises(SpecError, match="center=False"):
        spec.n_frames(spec.n_fft - 1)
