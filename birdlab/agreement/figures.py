"""Figures of decision agreement (notebooks 04_parity and 05_edge_replay).
"""

from __future__ import annotations

from matplotlib.figure import Figure

from birdlab.agreement.frontends import DecisionAgreement


def plot_decision_agreement(agreement: DecisionAgreement) -> Figure:
    """Model probability on WASM features against librosa features, one point per (window, species)."""
    ref = agreement.librosa_probabilities.ravel()
    cand = agreement.wasm_probabilities.ravel()
    flipped = (agreement.librosa_decisions != agreement.wasm_decisions).ravel()
    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=1)
    ax.scatter(ref[~flipped], cand[~flipped], s=10, label="same decision")
    if flipped.any():
        ax.scatter(ref[flipped], cand[flipped], s=30, marker="x", color="tab:red", label="decision differs")
    ax.axvline(agreement.threshold, color="tab:green", linestyle=":")
    ax.axhline(agreement.threshold, color="tab:green", linestyle=":", label=f"threshold {agreement.threshold:g}")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="probability, librosa features", ylabel="probability, WASM features",
           title=f"agreement {100 * agreement.agreement:.2f} % of {agreement.n_decisions} decisions")
    ax.legend(fontsize="small", loc="upper left")
    return fig
