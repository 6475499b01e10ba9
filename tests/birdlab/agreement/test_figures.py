"""Figures of decision agreement: they draw what they are given."""

from __future__ import annotations

import numpy as np
from lab_fixtures import png_bytes

from birdlab.agreement import figures as agreement_plots
from birdlab.agreement.frontends import DecisionAgreement


def test_decision_agreement_marks_flipped_decisions():
    librosa = np.array([[0.2, 0.7], [0.49, 0.9]], dtype=np.float32)
    wasm = np.array([[0.2, 0.7], [0.51, 0.9]], dtype=np.float32)
    agreement = DecisionAgreement(("a@0s", "a@5s"), 0.5, librosa, wasm, 0.0)
    fig = agreement_plots.plot_decision_agreement(agreement)
    same, flipped = fig.axes[0].collections
    assert len(same.get_offsets()) == 3 and len(flipped.get_offsets()) == 1
    assert "75.00 %" in fig.axes[0].get_title()
    assert png_bytes(fig).startswith(b"\x89PNG")
