"""Numeric checks of the research notebooks against a recorded reference.

The notebooks are committed without outputs, so nbval has no stored text to compare. Instead a
notebook hands a small JSON-able summary of what it computed (counts, pass/fail flags, numbers the
caller has rounded) to `check_summary`, which compares it with the reference stored under the same
name in `notebooks/expected/<size>.json` and raises `NotebookCheckError` with a readable diff when
they differ. CI runs the notebooks at the smoke size (`make test`: pytest --nbval-lax), so a
changed number fails the notebook's cell there. Sizes without a reference file (`full`, a
researcher's run) are not checked.

Recording the reference: run the notebooks with $BIRDLAB_NOTEBOOK_RECORD=1 and the size to record;
every `check_summary` call then writes its summary into the size's file instead of comparing:

    BIRDLAB_NOTEBOOK_RECORD=1 BIRDLAB_NOTEBOOK_SIZE=smoke \\
        .venv/bin/python -m pytest --nbval-lax --nbval-current-env notebooks

Review the diff of notebooks/expected/smoke.json before committing it: every changed number is a
changed result. Summaries hold no timings and nothing drawn from a plot.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from birdlab import paths
from birdlab.notebook_support.sizes import NotebookSize

RECORD_ENV = "BIRDLAB_NOTEBOOK_RECORD"
"""Environment variable: `1` records the summaries as the reference instead of comparing them."""
EXPECTED_DIR = paths.REPO_ROOT / "notebooks" / "expected"
"""Holds one reference file per checked size, `<size name>.json`: {summary name: summary}."""
FLOAT_ABS_TOL = 1e-9
"""Floats in a summary may differ from the reference by this much (callers round what they report)."""


class NotebookCheckError(AssertionError):
    """A notebook's summary differs from its reference, or cannot be stored as one."""


def check_summary(name: str, summary: dict, *, size: NotebookSize | str, expected_dir: Path = EXPECTED_DIR,
                  record: bool | None = None) -> None:
    """Compare `summary` with the reference `name` of `size`'s reference file; record it instead in record mode.

    name: the summary's key in the reference file, `<notebook>.<what>` (e.g. "01_data.counts").
    summary: a dict of JSON values (str, int, float, bool, None, lists and dicts of them); tuples are
        compared as lists. Floats match within FLOAT_ABS_TOL; the caller rounds noisy numbers.
    size: the notebook size (or its name); a size without `<name>.json` in `expected_dir` is not checked.
    record: True writes the summary into the reference file (created when missing); None reads $BIRDLAB_NOTEBOOK_RECORD.
    Raises NotebookCheckError listing each differing field, and a unified diff of the two summaries.
    """
    size_name = size.name if isinstance(size, NotebookSize) else str(size)
    reference_path = Path(expected_dir) / f"{size_name}.json"
    actual = _as_json(name, summary)
    if record is None:
        record = os.environ.get(RECORD_ENV, "").strip() == "1"
    if record:
        _record(reference_path, name=name, summary=actual)
        return
    if not reference_path.is_file():
        return
    references = _load(reference_path)
    if name not in references:
        raise NotebookCheckError(f"{reference_path}: no reference for {name!r}; record it by running the notebooks "
                                 f"with {RECORD_ENV}=1 at the {size_name} size")
    differences = list(_differences(references[name], actual, where=name))
    if differences:
        raise NotebookCheckError(
            f"{name}: the notebook's summary differs from {reference_path} ({size_name} size):\n  "
            + "\n  ".join(differences)
            + "\n" + _unified_diff(references[name], actual, reference_path=reference_path)
            + f"\nIf the change is intended, re-record with {RECORD_ENV}=1 and review the diff of the file.")


def _as_json(name: str, summary: dict) -> dict:
    """`summary` as it reads back from JSON (tuples become lists); refuses anything JSON cannot hold."""
    if not isinstance(summary, dict):
        raise NotebookCheckError(f"{name}: a summary is a dict, got {type(summary).__name__}")
    try:
        return json.loads(json.dumps(summary, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise NotebookCheckError(f"{name}: the summary is not plain JSON ({error}); convert numpy values with "
                                 "int()/float()/round() and drop NaN") from error


def _load(reference_path: Path) -> dict:
    try:
        references = json.loads(reference_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise NotebookCheckError(f"{reference_path}: not valid JSON ({error}); restore it from git or re-record it "
                                 f"with {RECORD_ENV}=1") from error
    if not isinstance(references, dict):
        raise NotebookCheckError(f"{reference_path}: expected a JSON object of summaries, "
                                 f"got {type(references).__name__}")
    return references


def _record(reference_path: Path, *, name: str, summary: dict) -> None:
    """Write `summary` under `name`, keeping the file's other summaries (keys sorted, one stable layout)."""
    references = _load(reference_path) if reference_path.is_file() else {}
    references[name] = summary
    reference_path.parent.mkdir(parents=True, exist_ok=True)
    partial = reference_path.with_name(reference_path.name + ".partial")
    partial.write_text(json.dumps(references, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(reference_path)


def _differences(expected: object, actual: object, *, where: str) -> Iterator[str]:
    """One line per differing leaf, named by its path (`name.field[index]`)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(expected.keys() | actual.keys()):
            if key not in actual:
                yield f"{where}.{key}: missing (expected {expected[key]!r})"
            elif key not in expected:
                yield f"{where}.{key}: not in the reference (got {actual[key]!r})"
            else:
                yield from _differences(expected[key], actual[key], where=f"{where}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (expected_item, actual_item) in enumerate(zip(expected, actual, strict=True)):
            yield from _differences(expected_item, actual_item, where=f"{where}[{index}]")
    elif not _leaf_equal(expected, actual):
        yield f"{where}: expected {expected!r}, got {actual!r}"


def _leaf_equal(expected: object, actual: object) -> bool:
    """Equal JSON values; bools never equal numbers; a float matches any number within FLOAT_ABS_TOL."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers):
        if isinstance(expected, float) or isinstance(actual, float):
            return math.isclose(expected, actual, rel_tol=0.0, abs_tol=FLOAT_ABS_TOL)
        return expected == actual
    return type(expected) is type(actual) and expected == actual


def _unified_diff(expected: object, actual: object, *, reference_path: Path) -> str:
    lines = difflib.unified_diff(json.dumps(expected, indent=2, sort_keys=True).splitlines(),
                                 json.dumps(actual, indent=2, sort_keys=True).splitlines(),
                                 fromfile=f"{reference_path.name} (reference)", tofile="this run", lineterm="")
    return "\n".join(lines)
