"""Teacher keys of a training config: flat or in a [teacher] table, optional, round-tripped through config.json."""

from __future__ import annotations

import json

import pytest

from birdlab.teacher.config import TeacherConfig
from birdlab.training.config import ConfigError, TrainConfig, load_config, tiny

ISSUE_KEYS = ("teacher_model", "teacher_labels", "teacher_output", "teacher_weight", "teacher_temperature",
              "teacher_sample_rate_hz", "teacher_label_map", "unlabeled_dirs")


def test_no_teacher_is_todays_config():
    assert TrainConfig().teacher is None and tiny().teacher is None
    assert TrainConfig().to_dict()["teacher"] is None
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()


def test_flat_toml_keys_as_the_issue_names_them(tmp_path):
    path = tmp_path / "distil.toml"
    path.write_text(
        'preset = "tiny"\n'
        'teacher_model = "teachers/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"\n'
        'teacher_labels = "teachers/BirdNET_GLOBAL_6K_V2.4_Labels.txt"\n'
        'teacher_output = "probabilities"\nteacher_weight = 0.8\nteacher_temperature = 2.0\n'
        'teacher_sample_rate_hz = 24000\nteacher_label_map = "map.csv"\nunlabeled_dirs = ["a", "b"]\n',
        encoding="utf-8")
    config = load_config(path)
    assert config.name == "distil" and config.model.name == "tiny"
    assert config.teacher == TeacherConfig(
        teacher_model="teachers/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
        teacher_labels="teachers/BirdNET_GLOBAL_6K_V2.4_Labels.txt", teacher_output="probabilities",
        teacher_weight=0.8, teacher_temperature=2.0, teacher_sample_rate_hz=24000, teacher_label_map="map.csv",
        unlabeled_dirs=("a", "b"))
    assert set(ISSUE_KEYS) <= set(config.to_dict()["teacher"])


def test_teacher_table_and_config_json_round_trip(tmp_path):
    path = tmp_path / "table.toml"
    path.write_text('preset = "tiny"\n[teacher]\nteacher_model = "t.tflite"\nteacher_labels = "l.txt"\n',
                    encoding="utf-8")
    config = load_config(path)
    assert config.teacher is not None and config.teacher.teacher_weight == 0.5
    saved = tmp_path / "config.json"
    saved.write_text(config.to_json(), encoding="utf-8")
    assert load_config(saved) == config
    assert json.loads(saved.read_text())["teacher"]["teacher_model"] == "t.tflite"


def test_flat_keys_override_a_base_teacher():
    base = TrainConfig.from_dict({"teacher": {"teacher_model": "t.tflite", "teacher_labels": "l.txt"}})
    changed = TrainConfig.from_dict({**base.to_dict(), "teacher_weight": 0.9})
    assert changed.teacher is not None and changed.teacher.teacher_weight == 0.9
    assert changed.teacher.teacher_model == "t.tflite"
    assert TrainConfig.from_dict({**base.to_dict(), "teacher": None}).teacher is None


@pytest.mark.parametrize(("data", "match"), [
    ({"teacher_weight": 0.5}, r"teacher_model', 'teacher_labels'\] are required"),
    ({"teacher_model": "t", "teacher_labels": "l", "teacher_weight": 1.5}, "teacher_weight.*in \\[0, 1\\]"),
    ({"teacher_model": "t", "teacher_labels": "l", "unlabeled_dirs": "one"}, "unlabeled_dirs.*list"),
    ({"teacher": {"teacher_model": "t", "teacher_labels": "l", "teacher_colour": 1}}, "teacher_colour"),
    ({"teacher": "birdnet"}, "'teacher' must be a table"),
])
def test_bad_teacher_settings_name_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(data, source="my.toml")
