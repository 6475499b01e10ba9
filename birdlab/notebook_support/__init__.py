"""What only the notebooks use: their sizes (smoke for CI, full for a researcher), the run and bundle they share,
the checks against notebooks/expected/, and the tables of the export and parity studies. Nothing else in birdlab
imports this package (tests/birdlab/test_layers.py)."""

from birdlab.notebook_support.checks import check_summary
from birdlab.notebook_support.export_tables import (
    audit_verdict_frame,
    bundle_files_frame,
    compat_frame,
    equivalence_frame,
    op_audit_frame,
    variant_costs,
    variant_outputs,
)
from birdlab.notebook_support.parity_tables import parity_audio_files, parity_frame, worst_cases
from birdlab.notebook_support.runs import ensure_exported, ensure_trained, notebook_bundle_dir
from birdlab.notebook_support.sizes import notebook_dataset, notebook_size
from birdlab.notebook_support.teacher_study import (
    TeacherStudy,
    notebook_teacher,
    per_species_frame,
    run_teacher_study,
    unlabelled_agreement,
)

__all__ = [
    "audit_verdict_frame", "bundle_files_frame", "check_summary", "compat_frame", "ensure_exported", "ensure_trained",
    "equivalence_frame", "notebook_bundle_dir", "notebook_dataset", "notebook_size", "op_audit_frame",
    "parity_audio_files", "parity_frame", "variant_costs", "variant_outputs", "worst_cases",
    "TeacherStudy", "notebook_teacher", "per_species_frame", "run_teacher_study", "unlabelled_agreement",
]
