"""TeacherConfig: validation names the field, from_dict accepts exactly the documented keys."""

from __future__ import annotations

import dataclasses
import json
import tomllib

import pytest

from birdlab.errors import UserError
from birdlab.teacher.config import TeacherConfig, TeacherConfigError

REQUIRED = {"teacher_model": "teacher.tflite", "teacher_labels": "labels.txt"}


def test_defaults_are_birdnet_like():
    config = TeacherConfig(**REQUIRED)
    assert config.teacher_output == "logits"
    assert config.teacher_sample_rate_hz == 48000
    assert config.teacher_temperature == 1.0
    assert 0.0 <= config.teacher_weight <= 1.0
    assert config.unlabeled_dirs == ()
    assert config.teacher_label_map is None and config.teacher_licence is None


def test_every_field_has_a_docstring():
    import inspect

    from birdlab.teacher import config as module

    source = inspect.getsource(module.TeacherConfig)
    for field in dataclasses.fields(TeacherConfig):
        after = source.split(f"    {field.name}:", 1)[1].splitlines()[1].strip()
        assert after.startswith('"""'), f"{field.name} has no docstring"


def test_from_toml_table_round_trips():
    text = """
    teacher_model = "models/birdnet.tflite"
    teacher_labels = "models/labels.txt"
    teacher_output = "probabilities"
    teacher_weight = 0.7
    teacher_temperature = 2.0
    teacher_sample_rate_hz = 48000
    teacher_label_map = "label_map.csv"
    unlabeled_dirs = ["recordings/site1", "recordings/site2"]
    teacher_licence = "CC BY-NC-SA 4.0"
    """
    config = TeacherConfig.from_dict(tomllib.loads(text))
    assert config.unlabeled_dirs == ("recordings/site1", "recordings/site2")
    assert config.teacher_weight == 0.7 and config.teacher_output == "probabilities"
    assert TeacherConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_key_is_named():
    with pytest.raises(TeacherConfigError, match="teacher_wieght"):
        TeacherConfig.from_dict({**REQUIRED, "teacher_wieght": 0.5}, source="run.toml")


def test_missing_required_key_is_named():
    with pytest.raises(TeacherConfigError, match="teacher_labels"):
        TeacherConfig.from_dict({"teacher_model": "t.tflite"})


@pytest.mark.parametrize(("field", "value"), [
    ("teacher_output", "softmax"),
    ("teacher_weight", 1.5),
    ("teacher_weight", -0.1),
    ("teacher_weight", "half"),
    ("teacher_temperature", 0.0),
    ("teacher_temperature", float("inf")),
    ("teacher_sample_rate_hz", 0),
    ("teacher_sample_rate_hz", 44100.5),
    ("teacher_model", ""),
    ("teacher_labels", "  "),
    ("teacher_label_map", ""),
    ("unlabeled_dirs", "recordings"),
    ("teacher_licence", 4),
])
def test_invalid_value_names_the_field(field, value):
    with pytest.raises(TeacherConfigError, match=f"'{field}'") as caught:
        TeacherConfig.from_dict({**REQUIRED, field: value}, source="run.toml")
    assert "run.toml" in str(caught.value)
    assert isinstance(caught.value, UserError)


def test_integer_valued_float_rate_is_accepted():
    assert TeacherConfig.from_dict({**REQUIRED, "teacher_sample_rate_hz": 48000.0}).teacher_sample_rate_hz == 48000


def test_not_a_table():
    with pytest.raises(TeacherConfigError, match="expected a table"):
        TeacherConfig.from_dict(["teacher.tflite"])  # type: ignore[arg-type]
