"""The teacher record of a run and its model-card section."""

from __future__ import annotations

import dataclasses

from tiny_teacher import TEACHER_SAMPLE_RATE_HZ

from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.record import model_card_section, teacher_record
from edge_runtime.bundle import sha256_file


def config_of(teacher, **overrides) -> TeacherConfig:
    return TeacherConfig(teacher_model=str(teacher.model_path), teacher_labels=str(teacher.labels_path),
                         teacher_sample_rate_hz=TEACHER_SAMPLE_RATE_HZ, **overrides)


def test_record_names_files_hashes_and_an_unknown_licence(tone_teacher):
    record = teacher_record(config_of(tone_teacher, teacher_weight=0.3))
    assert record["model_file"] == "teacher.tflite"
    assert record["model_sha256"] == sha256_file(tone_teacher.model_path)
    assert record["labels_sha256"] == sha256_file(tone_teacher.labels_path)
    assert record["n_labels"] == len(tone_teacher.labels) and record["window_s"] == 2.0
    assert record["licence"] is None and not record["licence_known"] and not record["is_birdnet_v2_4"]
    card = model_card_section(record)
    assert "**unknown**" in card and "30%" in card


def test_a_non_commercial_licence_is_carried_to_the_card(tone_teacher):
    config = dataclasses.replace(config_of(tone_teacher), teacher_licence="CC BY-NC-SA 4.0",
                                 unlabeled_dirs=("site1",))
    record = teacher_record(config)
    assert record["non_commercial"] and record["unlabeled_dirs"] == ["site1"]
    card = model_card_section(record)
    assert "CC BY-NC-SA 4.0" in card and "carries those terms" in card and "1 unlabelled folder" in card
