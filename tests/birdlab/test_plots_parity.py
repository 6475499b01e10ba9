"""Parity figures render from a real parity run and show what they claim."""

from __future__ import annotations

import io

import numpy as np
import pytest

from birdlab.audio import find_audio_files
from birdlab.features import FeatureSpec
from birdlab.parity import FileParity, WorstCase, run_parity
from birdlab.parity_study import DecisionAgreement, worst_cases
from birdlab.plots import parity as parity_plots


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def parity_run(synthetic_quick, tmp_path_factory):
    from birdlab.wasm import build_wasm

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
    assert _png(fig).startswith(b"\x89PNG")


def test_side_by_side_shows_both_spectrograms_and_their_difference(parity_run):
    _, cases = parity_run
    fig = parity_plots.plot_side_by_side(cases[0])
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    np.testing.assert_array_equal(images[0], cases[0].reference_db)
    np.testing.assert_array_equal(images[1], cases[0].candidate_db)
    np.testing.assert_allclose(images[2], cases[0].candidate_db.astype(np.float64) - cases[0].reference_db)
    assert _png(fig).startswith(b"\x89PNG")


def test_error_histogram_counts_differing_cells():
    reference = np.zeros((2, 3), dtype=np.float32)
    candidate = np.array([[0, 1e-6, 0], [2e-5, 0, 0]], dtype=np.float32)
    case = WorstCase(FileParity("x.ogg", 1.0, 3, 2e-5, 1e-6, 2e-5, 1e-5, 4 / 6), reference, candidate)
    fig = parity_plots.plot_error_histogram([case], tolerance_db=1e-4)
    ax = fig.axes[0]
    assert sum(p.get_height() for p in ax.patches) == 2
    assert ax.get_title().startswith("2 of 6 cells differ")
    assert _png(fig).startswith(b"\x89PNG")


def test_decision_agreement_marks_flipped_decisions():
    librosa = np.array([[0.2, 0.7], [0.49, 0.9]], dtype=np.float32)
    wasm = np.array([[0.2, 0.7], [0.51, 0.9]], dtype=np.float32)
    agreement = DecisionAgreement(("a@0s", "a@5s"), 0.5, librosa, wasm, 0.0)
    fig = parity_plots.plot_decision_agreement(agreement)
    same, flipped = fig.axes[0].collections
    assert len(same.get_offsets()) == 3 and len(flipped.get_offsets()) == 1
    assert "75.00 %" in fig.axes[0].get_title()
    assert _png(fig).startswith(b"\x89PNG")
