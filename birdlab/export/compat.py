"""Compatibility matrix: every exported variant on every runtime this machine can install.

Each runtime lives in its own cached virtual environment under
`birdlab.paths.cache_dir()/compat/`, created on first use:

- ai-edge-litert: the current LiteRT (the version installed here), Python 3.11.
- tflite-runtime-2.14: the last tflite-runtime wheel, with numpy<2, Python 3.11.
- tensorflow-1.15: TensorFlow 1.15's tf.lite.Interpreter on Python 3.7 (found through
  pyenv or PATH): the TF Lite generation that tflite-rs vendors.
- tract: Sonos' tract (PyPI `tract`) on an ONNX export of the same Keras model, made by
  Keras' `model.export(format="onnx")` with tf2onnx (installed into a cached target dir).

A worker script (`birdlab/export/compat_worker.py`: stdlib + numpy + the runtime) loads the
model in that venv, runs the held-out clips one at a time and saves the outputs; the
matrix compares them with the Keras outputs. A runtime that cannot be installed is
reported as 'unavailable: <reason>', never faked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from birdlab import paths
from birdlab.errors import UserError
from birdlab.export.bundle_writer import load_export_artifacts
from birdlab.export.convert import VARIANTS

WORKER_PATH = Path(__file__).with_name("compat_worker.py")
INSTALL_TIMEOUT_S = 1200
"""pip install limit per venv: TensorFlow 1.15 is a ~110 MB wheel."""
RUN_TIMEOUT_S = 300
ONNX_COLUMN = "onnx"
TRACT_VERSION = "0.23.9"
"""tract Python bindings tested here (the worker also speaks the pre-0.21 API)."""
TF2ONNX_REQUIREMENTS = ("tf2onnx==1.17.0", "onnx==1.23.2")
"""What Keras' ONNX export needs, installed without dependencies next to the lab venv's TensorFlow."""
PIP_FLAGS = ("--quiet", "--disable-pip-version-check", "--no-input")


class CompatError(UserError):
    """The compatibility run cannot start (no variants, no reference outputs); the message says why."""


class RuntimeUnavailable(Exception):
    """A runtime cannot be installed or started here; str(exc) is the reason shown in the matrix."""


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime of the matrix and the virtual environment it needs."""

    name: str
    """Row label, e.g. 'tflite-runtime-2.14'."""
    worker_runtime: str
    """--runtime of compat_worker.py: ai_edge_litert, tflite_runtime, tensorflow or tract."""
    python_version: str
    """Interpreter version of the venv, 'major.minor'."""
    requirements: tuple[str, ...]
    """pip requirement strings installed into the venv."""
    model_format: str
    """'tflite' (runs the f32/f16/int8 variants) or 'onnx' (runs the ONNX export)."""
    note: str = ""


def _litert_version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # not installed here: take the newest
        return ""


def default_runtimes() -> tuple[RuntimeSpec, ...]:
    """The four runtimes of the issue, current LiteRT pinned to the version installed here."""
    litert = _litert_version()
    return (
        RuntimeSpec("ai-edge-litert", "ai_edge_litert", "3.11",
                    (f"ai-edge-litert=={litert}" if litert else "ai-edge-litert", "numpy"), "tflite",
                    "current LiteRT"),
        RuntimeSpec("tflite-runtime-2.14", "tflite_runtime", "3.11", ("tflite-runtime==2.14.0", "numpy<2"), "tflite",
                    "last tflite-runtime wheel"),
        RuntimeSpec("tensorflow-1.15", "tensorflow", "3.7",
                    ("tensorflow-cpu==1.15.0", "numpy<1.19", "protobuf<3.21", "h5py<3"), "tflite",
                    "tf.lite.Interpreter of TF 1.15: the TF Lite generation tflite-rs vendors"),
        RuntimeSpec("tract", "tract", "3.11", (f"tract=={TRACT_VERSION}", "numpy"), "onnx", "tract on Keras' ONNX export (tf2onnx)"),
    )


@dataclass(frozen=True)
class Cell:
    """One runtime x model result."""

    status: str
    """'ok', 'load-failed', 'run-failed', 'unavailable' or 'n/a' (format not run by this runtime)."""
    loaded: bool = False
    ran: bool = False
    max_abs_dp: float | None = None
    """max |p_runtime - p_keras| over clips and species."""
    detail: str = ""
    """Runtime version, or the reason it failed / is unavailable."""

    def to_markdown(self) -> str:
        if self.status == "ok":
            return f"loaded, ran, max\\|dp\\| {self.max_abs_dp:.2e}"
        if self.status == "n/a":
            return "n/a"
        prefix = "loaded, " if self.loaded else ""
        return f"{prefix}{self.status}: {self.detail}".replace("|", "\\|")


@dataclass(frozen=True)
class CompatMatrix:
    """runtime -> column (f32, f16, int8, onnx) -> Cell, with what was run."""

    columns: tuple[str, ...]
    rows: dict[str, dict[str, Cell]]
    runtime_versions: dict[str, str]
    n_clips: int
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per runtime, venv creation included."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "n_clips": self.n_clips,
            "runtime_versions": self.runtime_versions,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
            "matrix": {runtime: {col: asdict(cell) for col, cell in cells.items()} for runtime, cells in self.rows.items()},
        }

    def to_markdown(self) -> str:
        header = "| runtime | " + " | ".join(self.columns) + " |"
        lines = [header, "|" + "---|" * (len(self.columns) + 1)]
        for runtime, cells in self.rows.items():
            version = self.runtime_versions.get(runtime, "")
            label = f"{runtime} ({version})" if version else runtime
            lines.append(f"| {label} | " + " | ".join(cells[c].to_markdown() for c in self.columns) + " |")
        lines.append("")
        lines.append(f"max|dp|: largest |p_runtime - p_keras| over {self.n_clips} held-out clips and all species.")
        return "\n".join(lines)

    def cell(self, runtime: str, column: str) -> Cell:
        return self.rows[runtime][column]


# -- interpreters and virtual environments ---------------------------------------------------
def find_python(version: str) -> Path | None:
    """An interpreter for 'major.minor': this one, pythonX.Y on PATH, or a pyenv install."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return Path(sys.executable)
    on_path = shutil.which(f"python{version}")
    candidates = [Path(on_path)] if on_path else []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted((pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        try:
            done = subprocess.run([str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def compat_cache_dir() -> Path:
    return paths.cache_dir() / "compat"


def _venv_key(runtime: RuntimeSpec) -> str:
    digest = hashlib.sha256(json.dumps([runtime.python_version, list(runtime.requirements)]).encode()).hexdigest()
    return f"{runtime.name}-{digest[:10]}"


def _tail(text: str, *, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip() and "is ignored" not in line]
    return " / ".join(kept[-lines:])[-400:]


@contextlib.contextmanager
def _install_lock(path: Path):
    """An exclusive lock file: two processes never build the same venv at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(runtime: RuntimeSpec, *, cache_root: Path | None = None) -> Path:
    """Create (once) the runtime's venv and return its python; raises RuntimeUnavailable with the reason.

    The venv is ready when its `.ready` stamp exists; a failed install leaves
    `<venv>.install.log` beside it and no stamp, and is retried next time.
    """
    root = (cache_root or compat_cache_dir()) / _venv_key(runtime)
    with _install_lock(root.parent / f"{root.name}.lock"):
        return _build_venv(runtime, root)


def _build_venv(runtime: RuntimeSpec, root: Path) -> Path:
    python = root / "bin" / "python"
    if (root / ".ready").exists() and python.exists():
        return python
    base = find_python(runtime.python_version)
    if base is None:
        raise RuntimeUnavailable(f"no Python {runtime.python_version} found (pyenv or python{runtime.python_version} "
                                 "on PATH)")
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    log = []
    steps = [[str(base), "-m", "venv", str(root)],
             [str(python), "-m", "pip", "install", *PIP_FLAGS, *runtime.requirements]]
    for command in steps:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeUnavailable(f"'{' '.join(command[-3:])}' took more than {INSTALL_TIMEOUT_S} s") from None
        log.append(f"$ {' '.join(command)}\n{done.stdout}\n{done.stderr}")
        (root.parent / f"{root.name}.install.log").write_text("\n".join(log), encoding="utf-8")
        if done.returncode != 0:
            raise RuntimeUnavailable(f"pip install {' '.join(runtime.requirements)} failed: {_tail(done.stderr)}")
    (root / ".ready").write_text(" ".join(runtime.requirements) + "\n", encoding="utf-8")
    return python


def ensure_tf2onnx(*, cache_root: Path | None = None) -> Path:
    """A target directory holding tf2onnx and onnx (no dependencies: the lab venv has them); for PYTHONPATH."""
    key = hashlib.sha256(" ".join(TF2ONNX_REQUIREMENTS).encode()).hexdigest()[:10]
    target = (cache_root or compat_cache_dir()) / f"tf2onnx-{key}"
    with _install_lock(target.parent / f"{target.name}.lock"):
        return _install_tf2onnx(target)


def _install_tf2onnx(target: Path) -> Path:
    if (target / ".ready").exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    command = [sys.executable, "-m", "pip", "install", *PIP_FLAGS, "--no-deps", "--target", str(target),
               *TF2ONNX_REQUIREMENTS]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeUnavailable("pip install tf2onnx timed out") from None
    if done.returncode != 0:
        raise RuntimeUnavailable(f"tf2onnx cannot be installed: {_tail(done.stderr)}")
    (target / ".ready").write_text(" ".join(TF2ONNX_REQUIREMENTS) + "\n", encoding="utf-8")
    return target


_ONNX_EXPORT_CODE = """
import sys, numpy as np, keras
model = keras.saving.load_model(sys.argv[1], compile=False)
model(np.zeros((1,) + tuple(model.input_shape[1:]), dtype="float32"))
model.export(sys.argv[2], format="onnx", verbose=False)
"""


def export_onnx(keras_path: Path, onnx_path: Path, *, cache_root: Path | None = None) -> Path:
    """Keras `model.export(format="onnx")` of keras_path in a subprocess with tf2onnx on its path."""
    target = ensure_tf2onnx(cache_root=cache_root)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])),
               TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", _ONNX_EXPORT_CODE, str(keras_path), str(onnx_path)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    if done.returncode != 0 or not onnx_path.is_file():
        raise RuntimeUnavailable(f"Keras ONNX export failed: {_tail(done.stderr, lines=1)}")
    return onnx_path


def run_worker(python: Path, *, runtime: RuntimeSpec, model_path: Path, inputs_path: Path,
               outputs_path: Path) -> dict[str, Any]:
    """Run compat_worker.py in the venv; returns its JSON report (loaded, ran, runtime_version, error)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    command = [str(python), str(WORKER_PATH), "--runtime", runtime.worker_runtime, "--model", str(model_path),
               "--inputs", str(inputs_path), "--outputs", str(outputs_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"loaded": False, "ran": False, "error": f"timed out after {RUN_TIMEOUT_S} s"}
    for line in reversed(done.stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    # The worker died before printing (e.g. a segfault in a native kernel): that is a result too.
    return {"loaded": False, "ran": False, "error": f"worker exited with {done.returncode}: {_tail(done.stderr, lines=1)}"}


def _cell_from_report(report: dict[str, Any], *, outputs_path: Path, reference: np.ndarray) -> Cell:
    version = str(report.get("runtime_version", ""))
    if not report.get("loaded"):
        return Cell("load-failed", detail=report.get("error", "") or "did not load")
    if not report.get("ran"):
        return Cell("run-failed", loaded=True, detail=report.get("error", "") or "did not run")
    outputs = np.load(outputs_path)
    if outputs.shape != reference.shape:
        return Cell("run-failed", loaded=True, detail=f"output shape {outputs.shape}, expected {reference.shape}")
    max_abs = float(np.max(np.abs(outputs.astype(np.float64) - reference.astype(np.float64))))
    return Cell("ok", loaded=True, ran=True, max_abs_dp=max_abs, detail=version)


# -- the matrix -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompatInputs:
    """What the matrix runs: model files per column, held-out clips and the Keras outputs on them."""

    models: dict[str, Path]
    """column ('f32', 'f16', 'int8', 'onnx') -> model file; 'onnx' may be absent."""
    features: np.ndarray
    """float32 (n_clips, n_mels, frames, 1)."""
    keras_outputs: np.ndarray
    """float32 (n_clips, n_species)."""
    keras_path: Path | None = None
    """model.keras, for the ONNX export when no 'onnx' model is given."""


def compat_matrix(inputs: CompatInputs, *, work_dir: Path, runtimes: tuple[RuntimeSpec, ...] | None = None,
                  cache_root: Path | None = None) -> CompatMatrix:
    """Run every model of `inputs` on every runtime; never raises for a runtime that fails.

    work_dir receives inputs.npy, the ONNX export (if made) and each runtime's outputs.
    """
    runtimes = runtimes or default_runtimes()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    inputs_path = work_dir / "inputs.npy"
    np.save(inputs_path, np.ascontiguousarray(inputs.features, dtype=np.float32))
    models = dict(inputs.models)
    columns = tuple(c for c in (*VARIANTS, ONNX_COLUMN) if c in models or c == ONNX_COLUMN)
    onnx_reason = ""
    if ONNX_COLUMN not in models and any(r.model_format == "onnx" for r in runtimes):
        if inputs.keras_path is None:
            onnx_reason = "no Keras model to export to ONNX"
        else:
            try:
                models[ONNX_COLUMN] = export_onnx(inputs.keras_path, work_dir / "model.onnx", cache_root=cache_root)
            except RuntimeUnavailable as exc:
                onnx_reason = str(exc)
    rows: dict[str, dict[str, Cell]] = {}
    versions: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for runtime in runtimes:
        start = time.perf_counter()
        wanted = [c for c in columns if (c == ONNX_COLUMN) == (runtime.model_format == "onnx")]
        cells = {c: Cell("n/a") for c in columns}
        try:
            python = ensure_venv(runtime, cache_root=cache_root)
        except RuntimeUnavailable as exc:
            cells.update({c: Cell("unavailable", detail=str(exc)) for c in wanted})
            rows[runtime.name] = cells
            seconds[runtime.name] = time.perf_counter() - start
            continue
        for column in wanted:
            if column not in models:
                cells[column] = Cell("unavailable", detail=onnx_reason or f"no {column} model")
                continue
            outputs_path = work_dir / f"outputs_{runtime.name}_{column}.npy"
            report = run_worker(python, runtime=runtime, model_path=models[column], inputs_path=inputs_path,
                                outputs_path=outputs_path)
            cells[column] = _cell_from_report(report, outputs_path=outputs_path, reference=inputs.keras_outputs)
            if report.get("runtime_version"):
                versions[runtime.name] = str(report["runtime_version"])
        rows[runtime.name] = cells
        seconds[runtime.name] = time.perf_counter() - start
    return CompatMatrix(columns=columns, rows=rows, runtime_versions=versions, n_clips=len(inputs.features),
                        seconds=seconds)


def write_matrix(matrix: CompatMatrix, out_dir: Path) -> tuple[Path, Path]:
    """Write compat.json and compat.md into out_dir; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "compat.json"
    md_path = out_dir / "compat.md"
    json_path.write_text(json.dumps(matrix.to_dict(), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(matrix.to_markdown() + "\n", encoding="utf-8")
    return json_path, md_path


def run_compat(*, bundle_dir: Path, runtimes: list[str] | None = None, out_dir: Path | None = None) -> CompatMatrix:
    """`python -m birdlab compat export/NAME`: the matrix for a bundle written by `export`.

    Reads the variants, held-out features and Keras outputs that export left in
    `export/NAME.variants/`; writes compat.json and compat.md there (or into out_dir).
    runtimes: names to keep (default: all of default_runtimes()).
    """

    artifacts = load_export_artifacts(bundle_dir)
    chosen = default_runtimes()
    if runtimes:
        known = {r.name for r in chosen}
        unknown = sorted(set(runtimes) - known)
        if unknown:
            raise CompatError(f"unknown runtime(s) {unknown}; choose from {sorted(known)}")
        chosen = tuple(r for r in chosen if r.name in runtimes)
    inputs = CompatInputs(models=artifacts.variant_paths, features=artifacts.features,
                          keras_outputs=artifacts.keras_outputs, keras_path=artifacts.keras_path)
    target = Path(out_dir) if out_dir else artifacts.root
    matrix = compat_matrix(inputs, work_dir=target / "compat_work", runtimes=chosen)
    write_matrix(matrix, target)
    return matrix
