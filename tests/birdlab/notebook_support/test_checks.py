"""check_summary: a match passes, a mismatch names the field and shows a diff, record mode writes, no file skips."""

from __future__ import annotations

import json

import pytest

from birdlab.notebook_support.checks import FLOAT_ABS_TOL, RECORD_ENV, NotebookCheckError, check_summary
from birdlab.notebook_support.sizes import smoke

SUMMARY = {"species": 4, "recordings": 12, "passed": True, "variants": ["f32", "f16", "int8"], "max_error_db": 3.5e-05}


@pytest.fixture
def expected_dir(tmp_path, monkeypatch):
    """A reference directory holding smoke.json with SUMMARY under "01_data.counts"; record mode off."""
    monkeypatch.delenv(RECORD_ENV, raising=False)
    (tmp_path / "smoke.json").write_text(json.dumps({"01_data.counts": SUMMARY}), encoding="utf-8")
    return tmp_path


def test_a_matching_summary_passes(expected_dir):
    check_summary("01_data.counts", dict(SUMMARY), size=smoke(), expected_dir=expected_dir)


def test_tuples_compare_as_lists_and_floats_within_the_tolerance(expected_dir):
    summary = {**SUMMARY, "variants": ("f32", "f16", "int8"), "max_error_db": SUMMARY["max_error_db"] + FLOAT_ABS_TOL / 2}
    check_summary("01_data.counts", summary, size="smoke", expected_dir=expected_dir)


def test_a_mismatch_names_each_field_and_shows_a_diff(expected_dir):
    summary = {**SUMMARY, "recordings": 11, "passed": False}
    with pytest.raises(NotebookCheckError) as raised:
        check_summary("01_data.counts", summary, size=smoke(), expected_dir=expected_dir)
    message = str(raised.value)
    assert "01_data.counts.recordings: expected 12, got 11" in message
    assert "01_data.counts.passed: expected True, got False" in message
    assert '-  "recordings": 12,' in message and '+  "recordings": 11,' in message
    assert str(expected_dir / "smoke.json") in message and RECORD_ENV in message
    assert "01_data.counts.species" not in message, "only differing fields are listed"


@pytest.mark.parametrize(("field", "value"), [
    ("max_error_db", SUMMARY["max_error_db"] + 2 * FLOAT_ABS_TOL),
    ("passed", 1),
    ("species", "4"),
    ("variants", ["f32", "f16"]),
])
def test_a_float_beyond_the_tolerance_or_another_type_or_length_fails(expected_dir, field, value):
    with pytest.raises(NotebookCheckError, match=rf"01_data\.counts\.{field}: expected"):
        check_summary("01_data.counts", {**SUMMARY, field: value}, size=smoke(), expected_dir=expected_dir)


def test_missing_and_extra_fields_fail(expected_dir):
    summary = {key: value for key, value in SUMMARY.items() if key != "species"} | {"soundscapes": 1}
    with pytest.raises(NotebookCheckError) as raised:
        check_summary("01_data.counts", summary, size=smoke(), expected_dir=expected_dir)
    assert "01_data.counts.species: missing (expected 4)" in str(raised.value)
    assert "01_data.counts.soundscapes: not in the reference (got 1)" in str(raised.value)


def test_a_name_without_reference_fails_and_says_how_to_record(expected_dir):
    with pytest.raises(NotebookCheckError, match=rf"no reference for '02_train.run'.*{RECORD_ENV}=1 at the smoke size"):
        check_summary("02_train.run", SUMMARY, size=smoke(), expected_dir=expected_dir)


def test_record_mode_from_the_environment_writes_and_keeps_other_entries(expected_dir, monkeypatch):
    monkeypatch.setenv(RECORD_ENV, "1")
    changed = {**SUMMARY, "recordings": 13}
    check_summary("01_data.counts", changed, size=smoke(), expected_dir=expected_dir)
    check_summary("02_train.run", {"epochs": 2}, size=smoke(), expected_dir=expected_dir)
    stored = json.loads((expected_dir / "smoke.json").read_text(encoding="utf-8"))
    assert stored == {"01_data.counts": changed, "02_train.run": {"epochs": 2}}

    monkeypatch.delenv(RECORD_ENV)
    check_summary("01_data.counts", changed, size=smoke(), expected_dir=expected_dir)
    with pytest.raises(NotebookCheckError):
        check_summary("01_data.counts", SUMMARY, size=smoke(), expected_dir=expected_dir)


def test_record_mode_creates_the_reference_file(tmp_path):
    expected_dir = tmp_path / "expected"
    check_summary("05_edge_replay.replay", {"differences": 0}, size="smoke", expected_dir=expected_dir, record=True)
    assert json.loads((expected_dir / "smoke.json").read_text(encoding="utf-8")) == {
        "05_edge_replay.replay": {"differences": 0}}
    check_summary("05_edge_replay.replay", {"differences": 0}, size="smoke", expected_dir=expected_dir, record=False)


def test_a_size_without_reference_file_is_not_checked(expected_dir):
    check_summary("01_data.counts", {"anything": "goes"}, size="full", expected_dir=expected_dir)
    assert sorted(p.name for p in expected_dir.iterdir()) == ["smoke.json"], "nothing is written without record mode"


@pytest.mark.parametrize("summary", [{"error": float("nan")}, {"array": object()}, ["not", "a", "dict"]])
def test_a_summary_that_is_not_plain_json_is_refused(expected_dir, summary):
    with pytest.raises(NotebookCheckError, match=r"01_data\.counts: (the summary is not plain JSON|a summary is a dict)"):
        check_summary("01_data.counts", summary, size=smoke(), expected_dir=expected_dir)


def test_a_corrupt_reference_file_names_the_file(expected_dir):
    (expected_dir / "smoke.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(NotebookCheckError, match=r"smoke\.json: not valid JSON"):
        check_summary("01_data.counts", SUMMARY, size=smoke(), expected_dir=expected_dir)
