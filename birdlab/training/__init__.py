"""Stage 4, training: the config and its presets, the RFFT-free model, augmentations, the labelled clips and their
split, training, evaluation, and the run directory that holds it all (figures in `birdlab.training.figures`)."""

from birdlab.training.config import TrainConfig, load_config
from birdlab.training.evaluate import evaluate_run, evaluate_saved_run
from birdlab.training.run_dir import RunDir, TrainedRun
from birdlab.training.run_summary import RunSummary, load_run_summary
from birdlab.training.train import TrainResult, train

__all__ = [
    "RunDir", "RunSummary", "TrainConfig", "TrainResult", "TrainedRun", "evaluate_run", "evaluate_saved_run",
    "load_config", "load_run_summary", "train",
]
