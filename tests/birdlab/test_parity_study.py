"""Parity notebook analyses over real audio, the real melspec.wasm under wasmtime and a real TFLite model."""

from __future__ import annotations

import numpy as np
import pytest

from birdlab import parity_study
from birdlab.audio import find_audio_files
from birdlab.features import FeatureSpec
from birdlab.parity import MEL_DB_ATOL, run_parity

N_FILES = 3


@pytest.fixture(scope="module")
def wasm_path():
    from birdlab.wasm import build_wasm

    return build_wasm()


@pytest.fixture(scope="module")
def audio_files(synthetic_quick):
    return find_audio_files([synthetic_quick / "train_short_audio"])[:N_FILES]


@pytest.fixture(scope="module")
def report(audio_files, wasm_path, tmp_path_factory):
    return run_parity(audio_files, out_dir=tmp_path_factory.mktemp("parity"), spec=FeatureSpec(), wasm_path=wasm_path)


def test_parity_frame_has_one_row_per_file_worst_first(report, audio_files):
    frame = parity_study.parity_frame(report)
    assert len(frame) == len(audio_files)
    assert set(frame["file"]) == {p.name for p in audio_files}
    assert list(frame["max_abs_db_error"]) == sorted(frame["max_abs_db_error"], reverse=True)
    assert {"frames", "p99_abs_db_error", "fraction_bit_identical"} <= set(frame.columns)


def test_worst_cases_recompute_the_reported_figures(report, wasm_path):
    cases = parity_study.worst_cases(report, count=2, wasm_path=wasm_path, spec=FeatureSpec())
    assert len(cases) == 2
    assert cases[0].parity.max_abs_db_error >= cases[1].parity.max_abs_db_error
    by_path = {f.path: f for f in report.files}
    for case in cases:
        assert case.parity == by_path[case.parity.path], "recomputation must reproduce the report exactly"
        assert case.reference_db.shape == case.candidate_db.shape == (64, case.parity.frames)
        assert np.max(np.abs(case.candidate_db - case.reference_db)) <= MEL_DB_ATOL


def test_clip_windows_cover_the_signal_and_pad_the_last(rng):
    spec = FeatureSpec(clip_seconds=1.0)
    samples = rng.standard_normal(spec.clip_samples * 2 + 100).astype(np.float32)
    windows = parity_study.clip_windows(samples, spec=spec)
    assert windows.shape == (3, spec.clip_samples)
    np.testing.assert_array_equal(windows.ravel()[: samples.size], samples)
    assert not windows[2, 100:].any()


@pytest.mark.slow
def test_decision_agreement_of_a_real_tflite_model(audio_files, wasm_path, tmp_path, export_spec, small_keras_model):
    from birdlab.model import convert_to_tflite

    model_path = tmp_path / "model.tflite"
    model_path.write_bytes(convert_to_tflite(small_keras_model))
    result = parity_study.decision_agreement(audio_files[:2], model_path=model_path, wasm_path=wasm_path,
                                             spec=export_spec, threshold=0.5)
    n_windows = len(result.window_labels)
    assert n_windows >= 2 * 3, "3-5 s recordings cut into 1-s windows"
    assert result.librosa_probabilities.shape == result.wasm_probabilities.shape == (n_windows, 5)
    assert result.max_abs_db_error <= MEL_DB_ATOL
    assert result.n_decisions == n_windows * 5
    assert 0.0 <= result.agreement <= 1.0
    assert result.n_flipped == int(np.sum(result.librosa_decisions != result.wasm_decisions))
    assert "decisions at threshold 0.5" in result.describe()
    # a moved threshold moves the decisions: the counts are computed, not constant
    shifted = parity_study.DecisionAgreement(
        window_labels=result.window_labels, threshold=0.5, librosa_probabilities=result.librosa_probabilities,
        wasm_probabilities=1.0 - result.wasm_probabilities, max_abs_db_error=result.max_abs_db_error)
    assert shifted.n_flipped > 0 and shifted.agreement < 1.0


def test_parity_audio_files_soundscapes_first_then_recordings(synthetic_quick, tmp_path):
    files = parity_study.parity_audio_files(synthetic_quick, max_files=4)
    assert len(files) == 4
    assert files[0].parent.name == "train_soundscapes"
    assert all(f.parent.parent.name == "train_short_audio" for f in files[1:])
    assert len(parity_study.parity_audio_files(synthetic_quick, max_files=100)) == 12 + 1
    with pytest.raises(ValueError, match="no audio under"):
        parity_study.parity_audio_files(tmp_path, max_files=3)
