"""A finished training run read back for the notebooks: headline figures, history, per-class table, confusion."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab.provenance import read_json_object
from birdlab.training.run_dir import RunDir

if TYPE_CHECKING:
    import pandas as pd

PER_CLASS_COLUMNS = ("support", "ap", "auroc", "precision", "recall", "f1")


@dataclass(frozen=True)
class RunSummary:
    """What runs/NAME/ says about itself (config.json, run_info.json, metrics.json, history.csv)."""

    run_dir: Path
    config: dict[str, Any]
    run_info: dict[str, Any]
    metrics: dict[str, Any]
    history: pd.DataFrame
    """One row per epoch: epoch, loss, val_loss and the compiled metrics."""

    @property
    def codes(self) -> tuple[str, ...]:
        """eBird codes in the model's output order."""
        return tuple(self.metrics.get("per_class", {}))

    def describe(self) -> str:
        """A few lines: preset and model, data, training time, and the BirdCLEF score."""
        clips = self.run_info.get("clips", {})
        model = self.config.get("model", {})
        f1 = self.metrics.get("row_wise_micro_f1")
        return "\n".join([
            f"run {self.run_dir.name}: preset {self.config.get('name')}, model {model.get('name')} "
            f"({self.run_info.get('parameters', '?')} parameters), seed {self.config.get('seed')}",
            f"data: {clips.get('train', '?')} training clips, {clips.get('validation', '?')} validation clips, "
            f"{clips.get('test_rows', '?')} test soundscape rows; {len(self.codes)} species",
            f"training: {self.run_info.get('epochs_run', len(self.history))} epochs in "
            f"{self.run_info.get('train_seconds', '?')} s (features {self.run_info.get('feature_seconds', '?')} s)",
            f"row-wise micro F1 {f1:.3f} on {self.metrics.get('evaluated_on')} at threshold "
            f"{self.metrics.get('threshold')} (chosen on {self.metrics.get('threshold_chosen_on')})"
            if f1 is not None else "row-wise micro F1: not computed",
        ])

    def per_class_frame(self, *, which: str = "per_class") -> pd.DataFrame:
        """Per-species figures (rows: eBird codes in label order; columns PER_CLASS_COLUMNS).

        which: 'per_class' (the scored set) or 'per_class_validation'.
        """
        import pandas as pd

        if which not in ("per_class", "per_class_validation"):
            raise ValueError(f"which must be 'per_class' or 'per_class_validation', got {which!r}")
        table = self.metrics.get(which, {})
        frame = pd.DataFrame.from_dict(table, orient="index", columns=list(PER_CLASS_COLUMNS))
        return frame.astype({c: "float64" for c in PER_CLASS_COLUMNS if c != "support"})

    def scores_frame(self) -> pd.DataFrame:
        """Row-wise micro F1 (BirdCLEF 2021's metric) per soundscape set: rows 'test' and 'validation'
        (those present); columns n_rows, nocall_rows, row_wise_micro_f1."""
        import pandas as pd

        sets = {name: self.metrics[name] for name in ("test", "validation") if self.metrics.get(name)}
        return pd.DataFrame.from_dict(sets, orient="index", columns=["n_rows", "nocall_rows", "row_wise_micro_f1"])

    def confusion(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(labels incl. 'nocall', int64 matrix (n_labels, n_labels)): [i][j] = rows true i, predicted j."""
        confusion = self.metrics.get("confusion") or {}
        labels = tuple(confusion.get("labels", ()))
        return labels, np.asarray(confusion.get("matrix", np.zeros((0, 0))), dtype=np.int64)


def load_run_summary(run_dir: str | Path) -> RunSummary:
    """Read runs/NAME/ through RunDir; raises UserError naming a missing metrics.json or config.json."""
    import pandas as pd

    run = RunDir(Path(run_dir))
    history = pd.read_csv(run.history_path) if run.history_path.is_file() else pd.DataFrame({"epoch": []})
    config = read_json_object(run.config_path, hint="is training finished? (python -m birdlab train, or notebook 02)")
    return RunSummary(run_dir=run.root, config=config, run_info=run.read_run_info(), metrics=run.read_metrics(),
                      history=history)
