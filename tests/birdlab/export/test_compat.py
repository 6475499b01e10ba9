"""The runtime x variant matrix on real runtimes in their own cached venvs (slow on a cold cache; CI runs it).

Every cell must be either a real run whose outputs match Keras within the variant's
tolerance, or an honest 'unavailable: <reason>'. LiteRT is installed here, so its row
must run.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from birdlab.export import compat
from birdlab.export.compat import CompatInputs, RuntimeSpec, RuntimeUnavailable, compat_matrix, find_python

F32_MAX_ABS_DP = 1e-5
"""Every runtime running the float32 flatbuffer (and tract the float32 ONNX) must match Keras to this."""
F16_MAX_ABS_DP = 1e-3
INT8_MAX_ABS_DP = 0.05


@pytest.fixture(scope="module")
def matrix(exported_bundle, tmp_path_factory):
    from birdlab.export.bundle_writer import load_export_artifacts

    artifacts = load_export_artifacts(exported_bundle.bundle_dir)
    inputs = CompatInputs(models=artifacts.variant_paths, features=artifacts.features,
                          keras_outputs=artifacts.keras_outputs, keras_path=artifacts.keras_path)
    return compat_matrix(inputs, work_dir=tmp_path_factory.mktemp("compat"))


@pytest.mark.slow
def test_every_cell_ran_or_says_why(matrix):
    tolerances = {"f32": F32_MAX_ABS_DP, "f16": F16_MAX_ABS_DP, "int8": INT8_MAX_ABS_DP, "onnx": F32_MAX_ABS_DP}
    assert matrix.columns == ("f32", "f16", "int8", "onnx")
    assert set(matrix.rows) == {"ai-edge-litert", "tflite-runtime-2.14", "tensorflow-1.15", "tract"}
    for runtime, cells in matrix.rows.items():
        for column, cell in cells.items():
            where = f"{runtime} x {column}: {cell}"
            if cell.status == "ok":
                assert cell.loaded and cell.ran and cell.max_abs_dp <= tolerances[column], where
            elif cell.status == "unavailable":
                assert cell.detail, where
            else:
                assert cell.status == "n/a", where
    for column in ("f32", "f16", "int8"):
        assert matrix.cell("ai-edge-litert", column).status == "ok"
        assert matrix.cell("tract", column).status == "n/a"
    assert matrix.cell("ai-edge-litert", "onnx").status == "n/a"


@pytest.mark.slow
def test_tf_lite_1_15_generation_runs_every_variant_when_installable(matrix):
    """The floor of the audit, checked on the runtime itself: TF 1.15's interpreter loads what the audit passed."""
    cells = matrix.rows["tensorflow-1.15"]
    if find_python("3.7") is None:
        assert all(cells[c].status == "unavailable" and "3.7" in cells[c].detail for c in ("f32", "f16", "int8"))
    else:
        assert [cells[c].status for c in ("f32", "f16", "int8")] == ["ok"] * 3, cells
        assert matrix.runtime_versions["tensorflow-1.15"].startswith("1.15")


@pytest.mark.slow
def test_matrix_files(matrix, tmp_path):
    json_path, md_path = compat.write_matrix(matrix, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["matrix"]["ai-edge-litert"]["f32"]["status"] == "ok"
    table = md_path.read_text()
    assert table.startswith("| runtime | f32 | f16 | int8 | onnx |")
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + len(matrix.rows)


def test_a_runtime_that_cannot_be_installed_is_reported(tmp_path, rng):
    ghost = RuntimeSpec("ghost", "tflite_runtime", "3.99", ("tflite-runtime",), "tflite")
    with pytest.raises(RuntimeUnavailable, match="no Python 3.99"):
        compat.ensure_venv(ghost, cache_root=tmp_path)
    inputs = CompatInputs(models={"f32": tmp_path / "absent.tflite"}, features=rng.random((2, 4, 4, 1)),
                          keras_outputs=rng.random((2, 3)))
    matrix = compat_matrix(inputs, work_dir=tmp_path / "work", runtimes=(ghost,), cache_root=tmp_path)
    cell = matrix.cell("ghost", "f32")
    assert cell.status == "unavailable" and "no Python 3.99" in cell.detail
    assert "unavailable: no Python 3.99" in matrix.to_markdown()


@pytest.mark.slow
def test_a_model_the_runtime_cannot_load_is_a_load_failure(tmp_path, rng):
    litert = next(r for r in compat.default_runtimes() if r.name == "ai-edge-litert")
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    inputs = CompatInputs(models={"f32": bogus}, features=rng.random((2, 4, 4, 1)), keras_outputs=rng.random((2, 3)))
    matrix = compat_matrix(inputs, work_dir=tmp_path / "work", runtimes=(litert,))
    cell = matrix.cell("ai-edge-litert", "f32")
    assert cell.status == "load-failed" and not cell.loaded and cell.detail


def test_worker_is_python_3_7_syntax_and_imports_no_birdlab():
    source = compat.WORKER_PATH.read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    runtimes = {"ai_edge_litert", "tflite_runtime", "tensorflow", "tract"}
    assert imported - runtimes <= {"argparse", "json", "sys", "traceback", "numpy"}, imported
    python37 = find_python("3.7")
    if python37 is not None:
        done = subprocess.run([str(python37), "-m", "py_compile", str(compat.WORKER_PATH)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_compat_cli_writes_json_and_markdown(exported_bundle, tmp_path):
    done = subprocess.run([sys.executable, "-m", "birdlab", "compat", str(exported_bundle.bundle_dir),
                           "--runtime", "ai-edge-litert", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| ai-edge-litert" in done.stdout
    assert (tmp_path / "compat.json").is_file() and (tmp_path / "compat.md").is_file()
    unknown = subprocess.run([sys.executable, "-m", "birdlab", "compat", str(exported_bundle.bundle_dir),
                              "--runtime", "tflite-rs"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown runtime" in unknown.stderr
