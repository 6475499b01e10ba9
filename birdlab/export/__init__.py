"""Stage 5, export: Keras -> TFLite variants, the op audit (no TensorFlow needed), Keras-vs-TFLite equivalence, the
bundle writer (edge_runtime.bundle is its reader), the model card and the runtime compatibility matrix
(figures in `birdlab.export.figures`).

The names below load their module on first use, so `birdlab.export.audit` (and `python -m birdlab audit`) never
imports TensorFlow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOME = {
    "audit_tflite": "audit", "AuditReport": "audit", "DEFAULT_RUNTIME_FLOOR": "audit",
    "export_run": "bundle_writer", "load_export_artifacts": "bundle_writer", "pack_bundle": "bundle_writer",
    "verify_bundle": "bundle_writer", "ExportResult": "bundle_writer",
    "run_compat": "compat", "CompatMatrix": "compat",
    "EquivalenceReport": "equivalence", "check_equivalence": "equivalence",
}
__all__ = [
    "DEFAULT_RUNTIME_FLOOR", "AuditReport", "CompatMatrix", "EquivalenceReport", "ExportResult", "audit_tflite",
    "check_equivalence", "export_run", "load_export_artifacts", "pack_bundle", "run_compat", "verify_bundle",
]

if TYPE_CHECKING:
    from birdlab.export.audit import DEFAULT_RUNTIME_FLOOR, AuditReport, audit_tflite
    from birdlab.export.bundle_writer import (
        ExportResult,
        export_run,
        load_export_artifacts,
        pack_bundle,
        verify_bundle,
    )
    from birdlab.export.compat import CompatMatrix, run_compat
    from birdlab.export.equivalence import EquivalenceReport, check_equivalence


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
