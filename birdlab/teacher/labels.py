"""Which teacher output belongs to which of the run's species.

Teacher labels are BirdNET's `Scientific name_Common name` strings, one per output. A species
maps to the label whose scientific name equals its own, compared case- and whitespace-
insensitively. A label-map CSV overrides that for the species it lists:

    code,scientific_name,teacher_label
    rocpig,,Columba livia_Rock Pigeon
    ,Sylvia atricapilla,Curruca atricapilla

(`code` or `scientific_name` picks the species, either column may be absent; `teacher_label`
is a full teacher label or its scientific name.) A species that maps to nothing is an error
that lists every such species and says how to fix it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdlab.data.species import Species
from birdlab.errors import DataFormatError, UserError

LABEL_SEPARATOR = "_"
"""Between the scientific and the common name in a teacher label."""


class TeacherLabelError(UserError):
    """The run's species cannot be mapped to the teacher's outputs; the message lists them and says what to do."""


def normalise_name(name: str) -> str:
    """Case- and whitespace-insensitive form of a name: 'Turdus  Merula ' -> 'turdus merula'."""
    return " ".join(name.split()).casefold()


def scientific_name(label: str) -> str:
    """'Turdus merula_Eurasian Blackbird' -> 'Turdus merula' (the whole label when it has no '_')."""
    return label.split(LABEL_SEPARATOR, 1)[0].strip()


def read_teacher_labels(path: str | Path) -> tuple[str, ...]:
    """One label per teacher output, in output order. Trailing blank lines are ignored; a blank line
    inside the file would shift every later label, so it is an error naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, None, "teacher labels file not found; set teacher_labels to the labels file "
                                          "that comes with the teacher model") from None
    except UnicodeDecodeError:
        raise DataFormatError(path, None, "teacher labels file is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line:
            raise DataFormatError(path, number, "blank line in the teacher labels (one label per output expected)")
    if not lines:
        raise DataFormatError(path, None, "no teacher labels in the file")
    return tuple(lines)


@dataclass(frozen=True)
class LabelOverride:
    """One row of a teacher_label_map CSV."""

    row: int
    code: str
    """eBird code of the species ('' when the row names it by scientific name)."""
    scientific_name: str
    """Scientific name of the species ('' when the row names it by code)."""
    teacher_label: str


def read_label_map(path: str | Path) -> tuple[LabelOverride, ...]:
    """Rows of a teacher_label_map CSV: `teacher_label` and at least one of `code`, `scientific_name`."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "teacher label map not found; set teacher_label_map to a CSV with columns "
                                          "code (or scientific_name) and teacher_label, or remove it")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        if "teacher_label" not in columns or not columns & {"code", "scientific_name"}:
            raise DataFormatError(path, 1, f"expected columns 'teacher_label' and 'code' or 'scientific_name', "
                                           f"got {sorted(columns)}")
        overrides = []
        for row, raw in enumerate(reader, start=2):
            if None in raw:
                raise DataFormatError(path, row, "more fields than columns")
            code = (raw.get("code") or "").strip()
            name = (raw.get("scientific_name") or "").strip()
            label = (raw.get("teacher_label") or "").strip()
            if not label:
                raise DataFormatError(path, row, "empty 'teacher_label'")
            if not code and not name:
                raise DataFormatError(path, row, "neither 'code' nor 'scientific_name' is given")
            overrides.append(LabelOverride(row=row, code=code, scientific_name=name, teacher_label=label))
    return tuple(overrides)


def _index_by_name(teacher_labels: Sequence[str]) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """(full label -> index, scientific name -> index, scientific names given to more than one output)."""
    by_label: dict[str, int] = {}
    by_name: dict[str, int] = {}
    ambiguous: set[str] = set()
    for index, label in enumerate(teacher_labels):
        by_label.setdefault(normalise_name(label), index)
        name = normalise_name(scientific_name(label))
        if name in by_name:
            ambiguous.add(name)
        by_name.setdefault(name, index)
    return by_label, by_name, ambiguous


def teacher_indices(species: Sequence[Species], *, teacher_labels: Sequence[str],
                    label_map: str | Path | None = None) -> np.ndarray:
    """Index of each species' teacher output: int64, shape (n_species,), in the order of `species`.

    Raises TeacherLabelError listing every species that maps to no teacher label (or to an ambiguous one).
    """
    by_label, by_name, ambiguous = _index_by_name(teacher_labels)
    overrides: dict[str, LabelOverride] = {}
    if label_map is not None:
        for override in read_label_map(label_map):
            target = normalise_name(override.teacher_label)
            if target not in by_label and target not in by_name:
                raise DataFormatError(label_map, override.row,
                                      f"teacher_label {override.teacher_label!r} is not one of the teacher's labels")
            for key in (override.code.casefold(), normalise_name(override.scientific_name)):
                if key:
                    overrides.setdefault(key, override)
    indices = np.zeros(len(species), dtype=np.int64)
    unmapped: list[str] = []
    for i, sp in enumerate(species):
        chosen = overrides.get(sp.ebird_code.casefold()) or overrides.get(normalise_name(sp.scientific_name))
        if chosen is not None:
            target = normalise_name(chosen.teacher_label)
            indices[i] = by_label[target] if target in by_label else by_name[target]
            continue
        name = normalise_name(sp.scientific_name)
        if name in by_name and name not in ambiguous:
            indices[i] = by_name[name]
        else:
            why = "several teacher labels" if name in ambiguous else "no teacher label"
            unmapped.append(f"{sp.ebird_code} ({sp.scientific_name or 'no scientific name'}: {why})")
    if unmapped:
        source = f"the label map {label_map}" if label_map is not None else "a teacher_label_map CSV"
        raise TeacherLabelError(
            f"{len(unmapped)} of {len(species)} species have no teacher output: {', '.join(unmapped)}. "
            f"Add them to {source} (columns: code or scientific_name, teacher_label; e.g. "
            f"'{unmapped[0].split(' ')[0]},,<Scientific name>_<Common name>' with the teacher's label), "
            f"or drop them from the species list")
    return indices


def species_targets(teacher_probabilities: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Teacher probabilities of the run's species. teacher_probabilities: (..., n_teacher_labels);
    indices: int (n_species,) from teacher_indices. Returns float32 (..., n_species)."""
    return np.asarray(teacher_probabilities, dtype=np.float32)[..., indices]
