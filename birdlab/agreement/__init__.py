"""Stage 6, agreement: decisions, not features. The same model on librosa and WASM features; the lab's decisions
against the edge runtime's on the same audio; a soundscape replayed through `python -m edge_runtime` into the
reference receiver; the demo's edge step (figures in `birdlab.agreement.figures`)."""

from birdlab.agreement.edge_demo import run_edge_demo
from birdlab.agreement.edge_replay import (
    choose_soundscape,
    detection_matrix,
    detections_frame,
    differences_from_lab,
    replay_soundscape,
    score_replay,
)
from birdlab.agreement.frontends import DecisionAgreement, decision_agreement
from birdlab.agreement.lab_vs_edge import LabEdgeAgreement, compare_decisions

__all__ = [
    "DecisionAgreement", "LabEdgeAgreement", "choose_soundscape", "compare_decisions", "decision_agreement",
    "detection_matrix", "detections_frame", "differences_from_lab", "replay_soundscape", "run_edge_demo",
    "score_replay",
]
