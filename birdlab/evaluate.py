"""Evaluation of a run: BirdCLEF 2021's row-wise micro F1 on soundscape rows, per-class figures, plots."""

from __future__ import annotations

from birdlab.metrics import NOCALL, row_f1, row_wise_micro_f1

__all__ = ["NOCALL", "row_f1", "row_wise_micro_f1"]
