"""A finished training run read back for the notebooks: the headline, the clip table, the soundscape figure with
its baseline, history, per-class table, confusion, and how the split grouped each species."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab.provenance import read_json_object
from birdlab.training.dataset import Split
from birdlab.training.evaluate import describe_metrics
from birdlab.training.run_dir import RunDir

if TYPE_CHECKING:
    import pandas as pd

PER_CLASS_COLUMNS = ("support", "ap", "auroc", "precision", "recall", "f1")
CLIP_CLASS_COLUMNS = ("n_positive", "ap", "ap_baseline", "precision", "recall", "f1", "n_predicted", "true_positives")
"""Columns of RunSummary.clip_frame (metrics.json 'clip' 'per_class'; counts are of held-out recordings)."""
CLIP_SCORES = (("macro AP", "macro_ap"), ("padded cmAP", "padded_cmap"), ("top-1", "top1"))


@dataclass(frozen=True)
class RunSummary:
    """What runs/NAME/ says about itself (config.json, run_info.json, metrics.json, history.csv)."""

    run_dir: Path
    config: dict[str, Any]
    run_info: dict[str, Any]
    metrics: dict[str, Any]
    history: pd.DataFrame
    """One row per epoch: epoch, loss, val_loss and the compiled metrics."""
    split: Split | None = None
    """split.json (None when absent)."""

    @property
    def headline(self) -> dict[str, Any]:
        """metrics.json 'headline' {metric, value, why}; metric and value None when there is none (or in metrics
        written before the headline)."""
        return self.metrics.get("headline") or {"metric": None, "value": None,
                                                 "why": "metrics.json predates the headline; re-run evaluate"}

    @property
    def soundscape(self) -> dict[str, Any] | None:
        """metrics.json 'soundscape': rows, positive_rows, row_wise_micro_f1, nocall_baseline_f1, degenerate."""
        return self.metrics.get("soundscape")

    @property
    def codes(self) -> tuple[str, ...]:
        """eBird codes in the model's output order."""
        return tuple(self.metrics.get("per_class", {}))

    def describe(self) -> str:
        """A few lines: preset and model, data, training time, and the BirdCLEF score."""
        clips = self.run_info.get("clips", {})
        model = self.config.get("model", {})
        f1 = self.metrics.get("row_wise_micro_f1")
        figures = ([describe_metrics(self.metrics)] if "headline" in self.metrics else [
            f"row-wise micro F1 {f1:.3f} on {self.metrics.get('evaluated_on')} at threshold "
            f"{self.metrics.get('threshold')} (chosen on {self.metrics.get('threshold_chosen_on')})"
            if f1 is not None else "row-wise micro F1: not computed",
            "no headline or clip figures: metrics.json predates them; re-run `python -m birdlab evaluate`"])
        return "\n".join([
            f"run {self.run_dir.name}: preset {self.config.get('name')}, model {model.get('name')} "
            f"({self.run_info.get('parameters', '?')} parameters), seed {self.config.get('seed')}",
            f"data: {clips.get('train', '?')} training clips, {clips.get('validation', '?')} validation clips, "
            f"{clips.get('test_recordings', 0)} test recordings, {clips.get('test_rows', '?')} test soundscape rows; "
            f"{len(self.codes)} species",
            f"training: {self.run_info.get('epochs_run', len(self.history))} epochs in "
            f"{self.run_info.get('train_seconds', '?')} s (features {self.run_info.get('feature_seconds', '?')} s)",
            *figures,
            *([self.run_info["missing_audio_text"]] if self.run_info.get("missing_audio_text") else []),
        ])

    def clip_scores_frame(self) -> pd.DataFrame:
        """The clip-level scores of the held-out recordings beside what a trivial model scores on them: rows
        'macro AP', 'padded cmAP', 'top-1'; columns value, baseline, n_recordings. Empty without clip figures."""
        import pandas as pd

        clip = self.metrics.get("clip")
        if not clip:
            return pd.DataFrame(columns=["value", "baseline", "n_recordings"], dtype="float64")
        baseline = clip.get("baseline", {})
        return pd.DataFrame({"value": [clip[key] for _, key in CLIP_SCORES],
                             "baseline": [baseline.get(key) for _, key in CLIP_SCORES],
                             "n_recordings": clip["n_recordings"]},
                            index=[name for name, _ in CLIP_SCORES]).astype({"value": "float64", "baseline": "float64"})

    def clip_frame(self) -> pd.DataFrame:
        """Per-species clip figures of the held-out recordings (rows: eBird codes in label order; columns
        CLIP_CLASS_COLUMNS; AP beside its prevalence baseline, P/R/F1 at the threshold). Empty without them."""
        import pandas as pd

        table = (self.metrics.get("clip") or {}).get("per_class", {})
        frame = pd.DataFrame.from_dict(table, orient="index", columns=list(CLIP_CLASS_COLUMNS))
        return frame.astype({c: "float64" for c in ("ap", "ap_baseline", "precision", "recall", "f1")})

    def soundscape_frame(self) -> pd.DataFrame:
        """BirdCLEF 2021's row-wise micro F1 beside its all-nocall baseline and counts (one row, the scored
        soundscapes); columns rows, positive_rows, row_wise_micro_f1, nocall_baseline_f1, degenerate."""
        import pandas as pd

        columns = ["rows", "positive_rows", "row_wise_micro_f1", "nocall_baseline_f1", "degenerate"]
        scape = self.soundscape
        if not scape:
            return pd.DataFrame(columns=columns)
        return pd.DataFrame([{c: scape[c] for c in columns}], index=[scape.get("scored_on", "test soundscapes")])

    def grouping_frame(self) -> pd.DataFrame:
        """How split.json split each species: method ('author' or 'recording-level fallback'), and recordings and
        authors per side (authors per side only for 'author'). Empty for a split written before grouping."""
        import pandas as pd

        rows = {}
        for code, entry in (self.split.grouping if self.split else {}).items():
            recordings, authors = entry.get("recordings", {}), entry.get("authors")
            row: dict[str, Any] = {"method": entry.get("method")}
            for side in ("train", "validation", "test"):
                row[f"{side} recordings"] = recordings.get(side)
                row[f"{side} authors"] = authors.get(side) if isinstance(authors, dict) else None
            rows[code] = row
        return pd.DataFrame.from_dict(rows, orient="index")

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
    split = run.read_split() if run.split_path.is_file() else None
    return RunSummary(run_dir=run.root, config=config, run_info=run.read_run_info(), metrics=run.read_metrics(),
                      history=history, split=split)
