"""What a run records about its teacher (run_info.json / config) and what the model card says about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from birdlab.teacher.birdnet import BIRDNET_LICENCE, BIRDNET_V24
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.labels import read_teacher_labels
from birdlab.teacher.model import TeacherModel
from edge_runtime.bundle import sha256_file

NON_COMMERCIAL_MARKERS = ("BY-NC", "NONCOMMERCIAL", "NON-COMMERCIAL")
"""A licence text holding one of these (case-insensitive) restricts use to non-commercial purposes."""


def teacher_record(config: TeacherConfig, *, model: TeacherModel | None = None) -> dict[str, Any]:
    """JSON-able description of the teacher: files (name + sha256), labels, how its outputs were read, licence.

    The licence is config.teacher_licence, else BirdNET's when the model is the pinned BirdNET v2.4, else None
    (`licence_known` False: the run says the licence is unknown).
    """
    model = model or TeacherModel.from_config(config)
    labels = read_teacher_labels(config.teacher_labels)
    is_birdnet = model.sha256 == BIRDNET_V24.model_sha256
    licence = config.teacher_licence or (BIRDNET_LICENCE if is_birdnet else None)
    return {
        "model_file": Path(config.teacher_model).name,
        "model_sha256": model.sha256,
        "labels_file": Path(config.teacher_labels).name,
        "labels_sha256": sha256_file(Path(config.teacher_labels)),
        "n_labels": len(labels),
        "label_map_file": Path(config.teacher_label_map).name if config.teacher_label_map else None,
        "output": config.teacher_output,
        "temperature": config.teacher_temperature,
        "weight": config.teacher_weight,
        "sample_rate_hz": model.sample_rate_hz,
        "window_s": model.window_s,
        "unlabeled_dirs": list(config.unlabeled_dirs),
        "is_birdnet_v2_4": is_birdnet,
        "licence": licence,
        "licence_known": licence is not None,
        "non_commercial": licence is not None and any(m in licence.upper() for m in NON_COMMERCIAL_MARKERS),
    }


def model_card_section(record: dict[str, Any]) -> str:
    """Markdown for MODEL_CARD.md: the teacher, and the terms a distilled student carries."""
    name = "BirdNET v2.4" if record["is_birdnet_v2_4"] else record["model_file"]
    lines = [
        "## Teacher",
        "",
        f"Distilled from {name} (`{record['model_file']}`, sha256 `{record['model_sha256']}`; "
        f"{record['n_labels']} labels from `{record['labels_file']}`), read as {record['output']} at temperature "
        f"{record['temperature']:g}, {record['window_s']:g}-s windows at {record['sample_rate_hz']} Hz; the teacher's "
        f"targets took {record['weight']:.0%} of the loss on labelled clips"
        + (f" and all of it on clips from {len(record['unlabeled_dirs'])} unlabelled folder(s)."
           if record["unlabeled_dirs"] else "."),
        "",
    ]
    if not record["licence_known"]:
        lines.append("Teacher licence: **unknown** (set `teacher_licence`). The student may carry its terms.")
    else:
        lines.append(f"Teacher licence: {record['licence']}")
        if record["non_commercial"]:
            lines += ["", "This student was distilled from a teacher under a NonCommercial-ShareAlike licence: it "
                          "carries those terms (non-commercial use only, same licence for derivatives)."]
    lines.append("")
    return "\n".join(lines)
