"""The notebooks are committed clean: thin, parameterised, numbered, without outputs.

No code cell keeps an output or an execution count (nbval then compares no stored text). What a
notebook computed is checked instead by its `check_summary` calls against notebooks/expected/smoke.json
(birdlab.notebook_support.checks), when CI runs the notebooks at the smoke size.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from birdlab.notebook_support.checks import EXPECTED_DIR
from birdlab.notebook_support.sizes import SIZE_ENV
from birdlab.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NAME_PATTERN = re.compile(r"^(?P<number>\d{2})_[a-z0-9_]+\.ipynb$")
CHECK_CALL = re.compile(r"""^check_summary\(\s*["'](?P<name>[^"']+)["']""", re.MULTILINE)
"""A check_summary call with its summary name, as the notebooks write it."""
SMOKE_REFERENCE = EXPECTED_DIR / "smoke.json"
EXPECTED_NOTEBOOKS = ("01_data.ipynb", "02_train.ipynb", "03_export.ipynb", "04_parity.ipynb",
                      "05_edge_replay.ipynb", "06_teacher.ipynb")

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _python_source(source: str) -> str:
    """Cell source with IPython magics and shell escapes blanked (they are not Python)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def test_the_five_notebooks_exist_and_nothing_else():
    assert tuple(p.name for p in NOTEBOOKS) == EXPECTED_NOTEBOOKS


def test_expected_notebooks_are_numbered_01_to_n():
    numbers = [int(NAME_PATTERN.match(name)["number"]) for name in EXPECTED_NOTEBOOKS if NAME_PATTERN.match(name)]
    assert numbers == list(range(1, len(EXPECTED_NOTEBOOKS) + 1)), "names must look like 01_topic.ipynb, in order"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_nbformat(path: Path):
    nbformat.validate(nbformat.read(path, as_version=4))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_code_cell_keeps_outputs_or_an_execution_count(path: Path):
    for index, cell in enumerate(_code_cells(path)):
        where = f"{path.name}, code cell {index}"
        assert cell.outputs == [], f"{where}: has outputs; clear them before committing"
        assert cell.execution_count is None, f"{where}: has an execution count; clear it before committing"
        assert "NBVAL_CHECK_OUTPUT" not in cell.source, f"{where}: nbval never compares an unrun cell; use check_summary"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_checks_its_summaries_against_the_smoke_reference(path: Path):
    names = [match["name"] for cell in _code_cells(path) for match in CHECK_CALL.finditer(cell.source)]
    assert names, f"{path.name}: no check_summary(...) call; check at least one small summary of what it computes"
    prefix = f"{path.stem}."
    assert all(name.startswith(prefix) for name in names), f"{path.name}: summary names must start with {prefix!r}"
    assert len(names) == len(set(names)), f"{path.name}: a summary name is used twice: {names}"
    assert SMOKE_REFERENCE.is_file(), f"{SMOKE_REFERENCE} is missing; record it (birdlab.notebook_support.checks)"
    recorded = json.loads(SMOKE_REFERENCE.read_text(encoding="utf-8"))
    missing = [name for name in names if name not in recorded]
    assert not missing, f"{SMOKE_REFERENCE.name} has no reference for {missing}; record it (birdlab.notebook_support.checks)"


def test_the_smoke_reference_holds_only_summaries_the_notebooks_check():
    checked = {match["name"] for path in NOTEBOOKS for cell in _code_cells(path)
               for match in CHECK_CALL.finditer(cell.source)}
    recorded = json.loads(SMOKE_REFERENCE.read_text(encoding="utf-8"))
    assert sorted(recorded) == sorted(checked), f"{SMOKE_REFERENCE.name}: stale or missing summaries"
    assert all(isinstance(summary, dict) and summary for summary in recorded.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_function_or_class_definitions(path: Path):
    for index, cell in enumerate(_code_cells(path)):
        tree = ast.parse(_python_source(cell.source), filename=f"{path.name}[{index}]")
        defined = [type(node).__name__ for node in ast.walk(tree)
                   if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)]
        assert not defined, f"{path.name}, code cell {index}: {defined}; move it into birdlab or edge_runtime"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_tagged_parameters_and_reads_the_size(path: Path):
    cells = _code_cells(path)
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], f"{path.name}: exactly the first code cell must be tagged 'parameters', got {tagged}"
    assert SIZE_ENV in cells[0].source, f"{path.name}: the parameters cell must read ${SIZE_ENV}"
