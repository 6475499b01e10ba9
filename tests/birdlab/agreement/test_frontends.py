"""Decision agreement of the two frontends through one real TFLite model; the scored windows it cuts."""

from __future__ import annotations

import numpy as np
import pytest

from birdlab.agreement.frontends import DecisionAgreement, decision_agreement
from birdlab.features.audio import find_audio_files
from birdlab.features.cache import scored_windows
from birdlab.frontend.parity import MEL_DB_ATOL
from edge_runtime.spec import FeatureSpec

N_FILES = 2


@pytest.fixture(scope="module")
def audio_files(synthetic_quick):
    return find_audio_files([synthetic_quick / "train_short_audio"])[:N_FILES]



def test_scored_windows_cover_the_signal_and_pad_the_last(rng):
    spec = FeatureSpec(clip_seconds=1.0)
    samples = rng.standard_normal(spec.clip_samples * 2 + 100).astype(np.float32)
    windows = scored_windows(samples, spec=spec)[0]
    assert windows.shape == (3, spec.clip_samples)
    np.testing.assert_array_equal(windows.ravel()[: samples.size], samples)
    assert not windows[2, 100:].any()


@pytest.mark.slow
def test_decision_agreement_of_a_real_tflite_model(audio_files, wasm_path, tmp_path, export_spec, small_keras_model):
    from birdlab.training.model import convert_to_tflite

    model_path = tmp_path / "model.tflite"
    model_path.write_bytes(convert_to_tflite(small_keras_model))
    result = decision_agreement(audio_files[:2], model_path=model_path, wasm_path=wasm_path,
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
    shifted = DecisionAgreement(
        window_labels=result.window_labels, threshold=0.5, librosa_probabilities=result.librosa_probabilities,
        wasm_probabilities=1.0 - result.wasm_probabilities, max_abs_db_error=result.max_abs_db_error)
    assert shifted.n_flipped > 0 and shifted.agreement < 1.0
