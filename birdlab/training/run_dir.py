"""The run directory (runs/NAME/): the one module that knows its files and their formats.

    config.json        the TrainConfig (`train --config runs/NAME/config.json` repeats the run)
    feature_spec.json  the FeatureSpec the model was trained with
    labels.csv         index,ebird_code,scientific_name,common_name in model output order (edge_runtime's format)
    split.json         which recordings and soundscapes played which role
    model.keras        the trained model; checkpoints/best.keras, history.csv, tensorboard/
    metrics.json       scores and the chosen detection threshold (birdlab.training.evaluate)
    plots/             PNG figures of the run
    run_info.json      provenance: git commit, package versions, seed, data directory, timings, clip counts
    teacher.json       only for a distilled run: the teacher (files, sha256, labels, licence; birdlab.teacher.record)

Train writes it, evaluate, export, the notebooks and the demo read it, all through `RunDir`.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdlab.data.species import Species
from birdlab.errors import UserError
from birdlab.provenance import read_json_object, write_json
from birdlab.training.config import TrainConfig, load_config
from birdlab.training.dataset import Split
from edge_runtime.bundle import LABEL_COLUMNS, LABELS_FILENAME, BundleError, read_labels
from edge_runtime.spec import SPEC_FILENAME, FeatureSpec, SpecError
from edge_runtime.thresholds import check_threshold

CONFIG_FILENAME = "config.json"
SPLIT_FILENAME = "split.json"
METRICS_FILENAME = "metrics.json"
RUN_INFO_FILENAME = "run_info.json"
MODEL_FILENAME = "model.keras"
HISTORY_FILENAME = "history.csv"
TEACHER_FILENAME = "teacher.json"
TRAINED_FILES = (MODEL_FILENAME, CONFIG_FILENAME, SPEC_FILENAME, LABELS_FILENAME, SPLIT_FILENAME, METRICS_FILENAME)
"""What a finished run holds (evaluate writes metrics.json last)."""


class RunDirError(UserError):
    """A run directory that is missing, unfinished or damaged; the message names the file and what to do."""


@dataclass(frozen=True)
class RunDir:
    """Paths and readers/writers of one run directory; nothing is read until asked."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILENAME

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_FILENAME

    @property
    def labels_path(self) -> Path:
        return self.root / LABELS_FILENAME

    @property
    def split_path(self) -> Path:
        return self.root / SPLIT_FILENAME

    @property
    def metrics_path(self) -> Path:
        return self.root / METRICS_FILENAME

    @property
    def run_info_path(self) -> Path:
        return self.root / RUN_INFO_FILENAME

    @property
    def model_path(self) -> Path:
        return self.root / MODEL_FILENAME

    @property
    def teacher_path(self) -> Path:
        return self.root / TEACHER_FILENAME

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY_FILENAME

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "tensorboard"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    # -- writing (train, evaluate) ------------------------------------------------------------------
    def start(self) -> None:
        """Create the directory; a re-used run directory starts without old checkpoints, logs and plots."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.teacher_path.unlink(missing_ok=True)
        for stale in (self.checkpoints_dir, self.tensorboard_dir, self.plots_dir):
            shutil.rmtree(stale, ignore_errors=True)
        self.checkpoints_dir.mkdir()

    def write_inputs(self, *, config: TrainConfig, spec: FeatureSpec, species: tuple[Species, ...],
                     split: Split) -> None:
        """config.json, feature_spec.json, labels.csv and split.json: what the run was asked to do."""
        self.config_path.write_text(config.to_json(), encoding="utf-8")
        spec.save(self.root)
        with self.labels_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(LABEL_COLUMNS)
            for i, s in enumerate(species):
                writer.writerow([i, s.ebird_code, s.scientific_name, s.common_name])
        self.split_path.write_text(split.to_json(), encoding="utf-8")

    def write_run_info(self, run_info: dict[str, Any]) -> None:
        write_json(self.run_info_path, run_info)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_path, metrics)

    def write_teacher(self, record: dict[str, Any]) -> None:
        """teacher.json: birdlab.teacher.record.teacher_record(...) of the run's teacher."""
        write_json(self.teacher_path, record)

    # -- reading -----------------------------------------------------------------------------------
    def read_config(self) -> TrainConfig:
        return load_config(self.config_path)

    def read_spec(self) -> FeatureSpec:
        try:
            return FeatureSpec.load(self.spec_path)
        except SpecError as exc:
            raise RunDirError(f"{exc}; re-run training") from None

    def read_species(self) -> tuple[Species, ...]:
        """Species in model output order (labels.csv, read by edge_runtime's reader: the bundle's checks)."""
        try:
            labels = read_labels(self.labels_path)
        except BundleError as exc:
            raise RunDirError(f"{exc}; is {self.root} a run directory?") from None
        return tuple(Species(label.ebird_code, label.scientific_name, label.common_name) for label in labels)

    def read_split(self) -> Split:
        return Split.load(self.split_path)

    def read_metrics(self, *, required: bool = True) -> dict[str, Any]:
        return read_json_object(self.metrics_path, required=required,
                                hint="is training finished? (python -m birdlab train, or notebook 02)")

    def read_teacher(self) -> dict[str, Any] | None:
        """teacher.json (the teacher_record of a distilled run); None for a run without a teacher."""
        if not self.teacher_path.is_file():
            return None
        return read_json_object(self.teacher_path, required=True)

    def read_run_info(self) -> dict[str, Any]:
        """run_info.json; {} when absent (an older or interrupted run)."""
        return read_json_object(self.run_info_path, required=False)

    def require(self, names: tuple[str, ...] = TRAINED_FILES) -> None:
        """Raise RunDirError naming the first missing file of `names`."""
        if not self.root.is_dir():
            raise RunDirError(f"{self.root}: no such run directory (train one with `python -m birdlab train`)")
        for name in names:
            if not (self.root / name).is_file():
                raise RunDirError(f"{self.root}: {name} is missing; is training finished? "
                                  f"(python -m birdlab train --out {self.root})")

    def load(self) -> TrainedRun:
        """Everything of a finished run except the model weights; raises RunDirError naming a bad file."""
        self.require()
        return TrainedRun(run_dir=self, config=self.read_config(), spec=self.read_spec(),
                          species=self.read_species(), split=self.read_split(), metrics=self.read_metrics(),
                          run_info=self.read_run_info(), teacher=self.read_teacher())


@dataclass(frozen=True)
class TrainedRun:
    """A finished run as read from its directory."""

    run_dir: RunDir
    config: TrainConfig
    spec: FeatureSpec
    species: tuple[Species, ...]
    """Model output order."""
    split: Split
    metrics: dict[str, Any]
    run_info: dict[str, Any]
    teacher: dict[str, Any] | None = None
    """teacher.json of a distilled run (teacher_record), None without a teacher."""

    @property
    def run_id(self) -> str:
        return self.run_dir.run_id

    @property
    def threshold(self) -> float:
        """The detection threshold evaluate chose on validation data (metrics.json 'threshold')."""
        try:
            return check_threshold(self.metrics.get("threshold"), where=f"{self.run_dir.metrics_path}: 'threshold'")
        except ValueError as exc:
            raise RunDirError(f"{exc}; re-run `python -m birdlab evaluate {self.run_dir.root}`") from None
