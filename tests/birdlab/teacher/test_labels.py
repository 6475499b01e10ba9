"""Run species -> teacher outputs: by scientific name, overridden by a label-map CSV, unmapped = one clear error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from birdlab.data.species import Species, load_species
from birdlab.errors import DataFormatError
from birdlab.teacher.labels import (
    TeacherLabelError,
    read_label_map,
    read_teacher_labels,
    scientific_name,
    species_targets,
    teacher_indices,
)

TEACHER_LABELS = (
    "Homo sapiens_Human vocal",
    "Turdus merula_Eurasian Blackbird",
    "Erithacus rubecula_European Robin",
    "Curruca atricapilla_Eurasian Blackcap",
    "Columba livia_Rock Pigeon",
    "Columba oenas_Stock Dove",
)
BLACKBIRD = Species("eurbla", "Turdus merula", "Eurasian Blackbird")
ROBIN = Species("eurrob1", "  erithacus   RUBECULA ", "European Robin")
BLACKCAP = Species("blackc1", "Sylvia atricapilla", "Eurasian Blackcap")
PIGEON = Species("rocpig", "Columba livia domestica", "Rock Pigeon")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_scientific_name_is_the_part_before_the_underscore():
    assert scientific_name("Turdus merula_Eurasian Blackbird") == "Turdus merula"
    assert scientific_name("Engine") == "Engine"


def test_maps_by_scientific_name_case_and_whitespace_insensitively():
    indices = teacher_indices([ROBIN, BLACKBIRD], teacher_labels=TEACHER_LABELS)
    assert indices.dtype == np.int64 and indices.tolist() == [2, 1]


def test_unmapped_species_are_all_listed_with_the_fix(tmp_path):
    with pytest.raises(TeacherLabelError) as caught:
        teacher_indices([BLACKBIRD, BLACKCAP, PIGEON], teacher_labels=TEACHER_LABELS)
    message = str(caught.value)
    assert "2 of 3 species" in message
    assert "blackc1 (Sylvia atricapilla" in message and "rocpig (Columba livia domestica" in message
    assert "eurbla" not in message
    assert "teacher_label_map" in message and "code or scientific_name, teacher_label" in message


def test_label_map_overrides_by_code_and_by_scientific_name(tmp_path):
    label_map = write(tmp_path / "map.csv", "code,scientific_name,teacher_label\n"
                                            "rocpig,,Columba livia_Rock Pigeon\n"
                                            ",Sylvia atricapilla,curruca ATRICAPILLA\n"
                                            "nosuch,,Columba oenas_Stock Dove\n")
    indices = teacher_indices([BLACKBIRD, BLACKCAP, PIGEON], teacher_labels=TEACHER_LABELS, label_map=label_map)
    assert indices.tolist() == [1, 3, 4]


def test_label_map_wins_over_a_matching_name(tmp_path):
    label_map = write(tmp_path / "map.csv", "code,teacher_label\neurbla,Columba oenas\n")
    assert teacher_indices([BLACKBIRD], teacher_labels=TEACHER_LABELS, label_map=label_map).tolist() == [5]


def test_label_map_with_a_label_the_teacher_lacks_names_the_row(tmp_path):
    label_map = write(tmp_path / "map.csv", "scientific_name,teacher_label\nSylvia atricapilla,Sylvia borin\n")
    with pytest.raises(DataFormatError, match=r"map\.csv, row 2: teacher_label 'Sylvia borin'"):
        teacher_indices([BLACKCAP], teacher_labels=TEACHER_LABELS, label_map=label_map)


@pytest.mark.parametrize(("text", "match"), [
    ("species,teacher_label\nx,y\n", "expected columns"),
    ("code,teacher_label\neurbla,\n", "row 2: empty 'teacher_label'"),
    ("code,scientific_name,teacher_label\n,,Turdus merula\n", "row 2: neither"),
])
def test_malformed_label_map(tmp_path, text, match):
    with pytest.raises(DataFormatError, match=match):
        read_label_map(write(tmp_path / "map.csv", text))


def test_missing_label_map_says_what_to_do(tmp_path):
    with pytest.raises(DataFormatError, match="teacher label map not found"):
        read_label_map(tmp_path / "nope.csv")


def test_an_ambiguous_scientific_name_is_unmapped():
    labels = (*TEACHER_LABELS, "Turdus merula_Blackbird (song)")
    with pytest.raises(TeacherLabelError, match="several teacher labels"):
        teacher_indices([BLACKBIRD], teacher_labels=labels)


def test_read_teacher_labels(tmp_path):
    path = write(tmp_path / "labels.txt", "\n".join(TEACHER_LABELS) + "\n\n")
    assert read_teacher_labels(path) == TEACHER_LABELS
    with pytest.raises(DataFormatError, match="row 2: blank line"):
        read_teacher_labels(write(tmp_path / "gap.txt", "A a_A\n\nB b_B\n"))
    with pytest.raises(DataFormatError, match="no teacher labels"):
        read_teacher_labels(write(tmp_path / "empty.txt", "\n"))
    with pytest.raises(DataFormatError, match="not found"):
        read_teacher_labels(tmp_path / "none.txt")


def test_species_targets_takes_the_mapped_columns(rng):
    probabilities = rng.random((3, 7, len(TEACHER_LABELS))).astype(np.float32)
    indices = teacher_indices([ROBIN, BLACKBIRD], teacher_labels=TEACHER_LABELS)
    mapped = species_targets(probabilities, indices)
    assert mapped.shape == (3, 7, 2)
    np.testing.assert_array_equal(mapped[..., 0], probabilities[..., 2])


def test_tiny_synth_teacher_maps_every_synthetic_species(synth_teacher, synth_species):
    labels = read_teacher_labels(synth_teacher.labels_path)
    indices = teacher_indices(synth_species, teacher_labels=labels)
    assert sorted(indices.tolist()) == list(range(2, 2 + len(synth_species)))  # distractors excluded


BIRDNET_DIR = os.environ.get("BIRDLAB_BIRDNET_DIR")


@pytest.mark.skipif(not BIRDNET_DIR, reason="BIRDLAB_BIRDNET_DIR is unset (python -m birdlab teacher fetch-birdnet)")
def test_brittany_species_map_to_birdnet_v24_labels():
    from birdlab.teacher.birdnet import BIRDNET_LABELS_NAME

    labels = read_teacher_labels(Path(BIRDNET_DIR) / BIRDNET_LABELS_NAME)
    indices = teacher_indices(load_species(), teacher_labels=labels)
    assert len(set(indices.tolist())) == 24
