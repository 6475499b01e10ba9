"""Parity notebook analyses over real audio, the real melspec.wasm under wasmtime and a real TFLite model."""

from __future__ import annotations

import numpy as np
import pytest

from birdlab.features.audio import find_audio_files
from birdlab.features.log_mel import FeatureSpec
from birdlab.frontend.parity import MEL_DB_ATOL
from birdlab.frontend.parity_run import run_parity
from birdlab.notebook_support import parity_tables as parity_study

N_FILES = 3


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


def test_parity_audio_files_soundscapes_first_then_recordings(synthetic_quick, tmp_path):
    files = parity_study.parity_audio_files(synthetic_quick, max_files=4)
    assert len(files) == 4
    assert files[0].parent.name == "train_soundscapes"
    assert all(f.parent.parent.name == "train_short_audio" for f in files[1:])
    assert len(parity_study.parity_audio_files(synthetic_quick, max_files=100)) == 12 + 1
    with pytest.raises(ValueError, match="no audio under"):
        parity_study.parity_audio_files(tmp_path, max_files=3)
