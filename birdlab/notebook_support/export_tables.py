"""The analyses of the export notebook: op audit tables, equivalence outputs, compatibility, size and latency.

Everything starts from what `birdlab.export.bundle_writer.export_run` returns or leaves in export/NAME.variants/.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from birdlab.export.audit import FORBIDDEN_BUILTINS, AuditReport, parse_runtime_version
from birdlab.export.equivalence import tflite_probabilities

if TYPE_CHECKING:
    import pandas as pd

    from birdlab.export.compat import CompatMatrix
    from birdlab.export.equivalence import EquivalenceReport

WARMUP_INFERENCES = 2
"""Untimed inferences before the latency measurement (allocations, caches)."""


def op_audit_frame(audits: Mapping[str, AuditReport]) -> pd.DataFrame:
    """Ops (rows, in first-seen order) x variants (columns): 'v<version> x<count>', '' when unused.

    The last column, `min runtime`, is the newest first-supporting TF Lite runtime of the op over the variants.
    """
    import pandas as pd


    cells: dict[str, dict[str, str]] = {}
    minimum: dict[str, str] = {}
    for variant, report in audits.items():
        for op in report.ops:
            cells.setdefault(op.name, {})[variant] = f"v{op.version} x{op.count}"
            needed = "custom" if op.is_custom else (op.min_runtime or "unknown")
            known = minimum.get(op.name)
            if known is None or (needed not in ("custom", "unknown") and known not in ("custom", "unknown")
                                 and parse_runtime_version(needed) > parse_runtime_version(known)):
                minimum[op.name] = needed
    frame = pd.DataFrame.from_dict(cells, orient="index", columns=list(audits)).fillna("")
    frame["min runtime"] = [minimum[name] for name in frame.index]
    return frame


def audit_verdict_frame(audits: Mapping[str, AuditReport]) -> pd.DataFrame:
    """One row per variant: passes the floor, the floor, minimum runtimes, custom and forbidden ops, problems."""
    import pandas as pd

    rows = {}
    for variant, report in audits.items():
        rows[variant] = {
            "ok": report.ok,
            "floor": report.floor,
            "min runtime (ops table)": report.table_min_runtime,
            "min runtime (metadata)": report.metadata_min_runtime,
            "custom ops": sum(op.is_custom for op in report.ops),
            "forbidden ops": ", ".join(op.name for op in report.ops if op.name in FORBIDDEN_BUILTINS),
            "problems": "; ".join(report.problems),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def equivalence_frame(equivalence: EquivalenceReport) -> pd.DataFrame:
    """One row per variant with the figures of birdlab.export.equivalence.VariantEquivalence."""
    import pandas as pd

    rows = {v.variant: dataclasses.asdict(v) for v in equivalence.variants}
    return pd.DataFrame.from_dict(rows, orient="index").drop(columns=["variant"])


def variant_outputs(variant_paths: Mapping[str, Path], features: np.ndarray) -> dict[str, np.ndarray]:
    """Each variant's probabilities on `features` with LiteRT, one clip at a time (as on the device).

    features: float32 (n, n_mels, frames, 1). Returns variant -> float32 (n, n_species).
    """

    return {variant: tflite_probabilities(Path(path), features) for variant, path in variant_paths.items()}


def compat_frame(matrix: CompatMatrix) -> pd.DataFrame:
    """Runtimes (rows, '<name> (<version>)') x model columns: 'ok, max|dp| 1.2e-07', 'n/a' or the failure."""
    import pandas as pd

    rows = {}
    for runtime, cells in matrix.rows.items():
        version = matrix.runtime_versions.get(runtime, "")
        label = f"{runtime} ({version})" if version else runtime
        rows[label] = {column: _cell_text(cells[column]) for column in matrix.columns}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(matrix.columns))


def _cell_text(cell) -> str:
    if cell.status == "ok":
        return f"ok, max|dp| {cell.max_abs_dp:.1e}"
    return cell.status if cell.status == "n/a" else f"{cell.status}: {cell.detail}"


def variant_costs(variant_paths: Mapping[str, Path], *, features: np.ndarray, repeats: int) -> pd.DataFrame:
    """File size, load time and single-clip latency of each variant on this machine (LiteRT, one thread).

    features: float32 (n, n_mels, frames, 1), cycled through for `repeats` timed inferences after
    WARMUP_INFERENCES untimed ones. Columns: size_kb, load_ms, median_ms, p90_ms.
    """
    import pandas as pd

    from edge_runtime.inference import TFLiteModel

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    clips = np.asarray(features, dtype=np.float32)
    rows = {}
    for variant, path in variant_paths.items():
        start = time.perf_counter()
        model = TFLiteModel.load(path, num_threads=1)
        load_ms = (time.perf_counter() - start) * 1000
        for k in range(WARMUP_INFERENCES):
            model.predict(clips[k % len(clips)][np.newaxis])
        timings = []
        for k in range(repeats):
            start = time.perf_counter()
            model.predict(clips[k % len(clips)][np.newaxis])
            timings.append((time.perf_counter() - start) * 1000)
        rows[variant] = {"size_kb": Path(path).stat().st_size / 1024, "load_ms": load_ms,
                         "median_ms": statistics.median(timings),
                         "p90_ms": float(np.percentile(timings, 90))}
    return pd.DataFrame.from_dict(rows, orient="index")


def bundle_files_frame(bundle_dir: str | Path) -> pd.DataFrame:
    """The files of a bundle with their size in kB and the sha256 recorded in manifest.json (first 12 hex)."""
    import pandas as pd

    from edge_runtime.bundle import open_bundle

    bundle = open_bundle(bundle_dir)
    files = bundle.manifest["files"]
    return pd.DataFrame.from_dict(
        {name: {"size_kb": (bundle.root / name).stat().st_size / 1024, "sha256": digest[:12]}
         for name, digest in sorted(files.items())}, orient="index")
