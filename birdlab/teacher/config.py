"""TeacherConfig: the teacher model whose outputs become soft training targets.

Keys are flat (`teacher_model`, `teacher_weight`, ...) so that they can be nested in a
`[teacher]` table of a training config or flattened into its top level unchanged;
`TeacherConfig.from_dict` accepts exactly these keys. Paths are kept as given (strings):
the caller resolves them against the config file's folder if it wants to.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from birdlab.errors import UserError

TEACHER_OUTPUTS = ("logits", "probabilities")
"""What the teacher's output tensor holds."""


class TeacherConfigError(UserError, ValueError):
    """Teacher settings are invalid; the message names the field and what to do."""


@dataclass(frozen=True)
class TeacherConfig:
    """A teacher model and how much the student learns from it."""

    teacher_model: str
    """Path to a .tflite whose input is raw audio, float32 [1, N] (N samples at teacher_sample_rate_hz),
    e.g. BirdNET v2.4: [1, 144000] = 3 s at 48 kHz. Any op is allowed (RFFT2D included): it runs in the lab only."""
    teacher_labels: str
    """Path to a text file with one label per teacher output, in BirdNET's `Scientific name_Common name` form."""
    teacher_output: str = "logits"
    """'logits' (BirdNET v2.4's output: apply a sigmoid) or 'probabilities' (the model ends in a sigmoid)."""
    teacher_weight: float = 0.5
    """Share of the loss taken by the teacher's targets, in [0, 1]; the hard labels take 1 - teacher_weight.
    Clips from unlabeled_dirs train on the teacher's targets alone."""
    teacher_temperature: float = 1.0
    """Softening (> 1) or sharpening (< 1) of the teacher: probabilities are sigmoid(logit / temperature)."""
    teacher_sample_rate_hz: int = 48000
    """Sample rate the teacher expects (BirdNET: 48000); the window length is read from the model's input shape."""
    teacher_label_map: str | None = None
    """Optional CSV (columns `code` or `scientific_name`, and `teacher_label`) mapping the run's species to teacher
    labels where the scientific names differ (taxonomy changes, subspecies, species the teacher names otherwise)."""
    unlabeled_dirs: tuple[str, ...] = ()
    """Folders of audio without labels (searched recursively): their 5-s windows train on the teacher's targets."""
    teacher_licence: str | None = None
    """Licence of the teacher model, recorded with the run (BirdNET v2.4: CC BY-NC-SA 4.0; a student distilled from
    it carries its terms). None = unknown: the run says so."""

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise TeacherConfigError(f"teacher config field '{name}': {what} (got {getattr(self, name)!r})")

        need(isinstance(self.teacher_model, str) and self.teacher_model.strip() != "", "teacher_model",
             "must be the path of a .tflite file")
        need(isinstance(self.teacher_labels, str) and self.teacher_labels.strip() != "", "teacher_labels",
             "must be the path of a labels file (one label per teacher output)")
        need(self.teacher_output in TEACHER_OUTPUTS, "teacher_output", f"must be one of {TEACHER_OUTPUTS}")
        need(_is_number(self.teacher_weight) and 0.0 <= self.teacher_weight <= 1.0, "teacher_weight",
             "must be a number in [0, 1]")
        need(_is_number(self.teacher_temperature) and self.teacher_temperature > 0
             and math.isfinite(self.teacher_temperature), "teacher_temperature", "must be a finite number > 0")
        need(isinstance(self.teacher_sample_rate_hz, int) and not isinstance(self.teacher_sample_rate_hz, bool)
             and self.teacher_sample_rate_hz > 0, "teacher_sample_rate_hz", "must be a positive integer (Hz)")
        need(self.teacher_label_map is None or (isinstance(self.teacher_label_map, str) and self.teacher_label_map != ""),
             "teacher_label_map", "must be the path of a CSV file or null")
        need(isinstance(self.unlabeled_dirs, tuple) and all(isinstance(d, str) and d for d in self.unlabeled_dirs),
             "unlabeled_dirs", "must be a list of folder paths")
        need(self.teacher_licence is None or isinstance(self.teacher_licence, str), "teacher_licence",
             "must be text or null")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict with exactly the keys from_dict accepts."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "teacher config") -> TeacherConfig:
        """Build from a dict of exactly these keys (teacher_model and teacher_labels required; unknown keys are
        errors naming them and `source`). JSON lists become tuples."""
        if not isinstance(data, dict):
            raise TeacherConfigError(f"{source}: expected a table/object of teacher settings, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise TeacherConfigError(f"{source}: unknown teacher field(s) {unknown}; known fields are {sorted(fields)}")
        missing = [name for name in ("teacher_model", "teacher_labels") if name not in data]
        if missing:
            raise TeacherConfigError(f"{source}: teacher field(s) {missing} are required when a teacher is configured")
        values = dict(data)
        if "unlabeled_dirs" in values:
            dirs = values["unlabeled_dirs"]
            if isinstance(dirs, str) or not isinstance(dirs, list | tuple):
                raise TeacherConfigError(f"{source}: teacher config field 'unlabeled_dirs': must be a list of folder "
                                         f"paths (got {dirs!r})")
            values["unlabeled_dirs"] = tuple(dirs)
        if isinstance(values.get("teacher_sample_rate_hz"), float) and float(values["teacher_sample_rate_hz"]).is_integer():
            values["teacher_sample_rate_hz"] = int(values["teacher_sample_rate_hz"])
        try:
            return cls(**values)
        except TeacherConfigError as exc:
            raise TeacherConfigError(f"{source}: {exc}") from None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
