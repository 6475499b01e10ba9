"""The notebooks are committed clean: thin, parameterised, numbered, without outputs.

Outputs are allowed in one place only: a cell whose source starts with `# NBVAL_CHECK_OUTPUT` keeps
its execution count and its stdout at the smoke size, because that stored text is the reference
nbval compares the fresh run against (nbval skips cells whose execution count is empty). Everything
else (figures, tables, timings, execution counts) must be cleared.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from birdlab.notebook_sizes import SIZE_ENV
from birdlab.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NAME_PATTERN = re.compile(r"^(?P<number>\d{2})_[a-z0-9_]+\.ipynb$")
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
MAX_REFERENCE_CHARS = 1000
"""A check cell's stored reference is a small numeric summary, not a table dump."""
EXPECTED_NOTEBOOKS = ("01_data.ipynb", "02_train.ipynb", "03_export.ipynb", "04_parity.ipynb",
                      "05_edge_replay.ipynb")

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
def test_only_check_cells_keep_a_small_stdout_reference(path: Path):
    for index, cell in enumerate(_code_cells(path)):
        where = f"{path.name}, code cell {index}"
        if cell.source.startswith(CHECK_MARKER):
            kinds = {(o.output_type, o.get("name")) for o in cell.outputs}
            assert kinds <= {("stream", "stdout")}, f"{where}: a check cell may keep only stdout, found {kinds}"
            text = "".join(o.text for o in cell.outputs)
            assert text.strip(), f"{where}: check cell has no reference output; record it at the smoke size"
            assert len(text) <= MAX_REFERENCE_CHARS, f"{where}: reference output is {len(text)} chars"
            assert cell.execution_count is not None, f"{where}: nbval skips a check cell without execution count"
        else:
            assert cell.outputs == [], f"{where}: has outputs; clear them before committing"
            assert cell.execution_count is None, f"{where}: has an execution count; clear it before committing"


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
