"""Parity figures render from a real parity run and show what they claim."""

from __future__ import annotations

import numpy as np
import pytest
from lab_fixtures import png_bytes

from birdlab.features.audio import find_audio_files
from birdlab.features.log_mel import FeatureSpec
from birdlab.frontend import figures as parity_plots
from birdlab.frontend.parity import FileParity, WorstCase
from birdlab.frontend.parity_run import run_parity
from birdlab.notebook_support.parity_tables import worst_cases


@pytest.fixture(scope="module")
def parity_run(synthetic_quick, tmp_path_factory):
    from birdlab.frontend.wasm import build_wasm

    wasm = build_wasm()
    files = find_audio_files([synthetic_quick / "train_short_audio"])[:2]
    report = run_parity(files, out_dir=tmp_path_factory.mktemp("parity"), spec=FeatureSpec(), wasm_path=wasm)
    return report, worst_cases(report, count=2, wasm_path=wasm, spec=FeatureSpec())


def test_file_errors_one_point_per_file(parity_run):
    report, _ = parity_run
    fig = parity_plots.plot_file_errors(report)
    ax = fig.axes[0]
    assert len(ax.lines[0].get_xdata()) == len(report.files)
    assert ax.lines[-1].get_ydata()[0] == report.tolerance_db
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_side_by_side_shows_both_spectrograms_and_their_difference(parity_run):
    _, cases = parity_run
    fig = parity_plots.plot_side_by_side(cases[0])
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    np.testing.assert_array_equal(images[0], cases[0].reference_db)
    np.testing.assert_array_equal(images[1], cases[0].candidate_db)
    np.testing.assert_allclose(images[2], cases[0].candidate_db.astype(np.float64) - cases[0].reference_db)
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_error_histogram_counts_differing_cells():
    reference = np.zeros((2, 3), dtype=np.float32)
    candidate = np.array([[0, 1e-6, 0], [2e-5, 0, 0]], dtype=np.float32)
    case = WorstCase(FileParity("x.ogg", 1.0, 3, 2e-5, 1e-6, 2e-5, 1e-5, 4 / 6), reference, candidate)
    fig = parity_plots.plot_error_histogram([case], tolerance_db=1e-4)
    ax = fig.axes[0]
    assert sum(p.get_height() for p in ax.patches) == 2
    assert ax.get_title().startswith("2 of 6 cells differ")
    assert png_bytes(fig).startswith(b"\x89PNG")


