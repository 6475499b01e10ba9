"""The export pipeline and the bundle: run directory -> TFLite variants -> audit -> equivalence -> bundle.

`export_run` writes two directories side by side:

    export/NAME/            the bundle the device reads (edge_runtime.bundle.open_bundle):
        model.tflite        the chosen variant (f32 by default)
        labels.csv          index,ebird_code,scientific_name,common_name
        melspec.wasm        the C++ log-mel frontend (birdlab.frontend.wasm.build_wasm)
        feature_spec.json   the FeatureSpec the model was trained with
        MODEL_CARD.md       data, species, metrics, equivalence, limits
        manifest.json       sha256 of every other file + ids, metrics, parity, equivalence
    export/NAME.variants/   everything the bundle does not ship: model_f32/f16/int8.tflite,
                            audit.json, equivalence.json, the held-out clips and the Keras
                            outputs on them (for `compat`), export.json

The bundle is refused (no manifest written) when the chosen variant fails the op audit.
`verify_bundle` and `pack_bundle` are the `bundle verify|pack` commands; verification is
edge_runtime.bundle.open_bundle, the device's own reader.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdlab import __version__, paths
from birdlab.errors import UserError
from birdlab.export.audit import DEFAULT_RUNTIME_FLOOR, AuditReport, audit_tflite
from birdlab.export.convert import VARIANTS, ExportError, check_variant, export_variants
from birdlab.export.equivalence import check_equivalence, keras_probabilities
from birdlab.export.model_card import write_model_card
from birdlab.export.run_features import RunFeatures, load_run_features
from birdlab.frontend.parity import MEL_DB_ATOL, parity_of_samples
from birdlab.frontend.wasm import build_wasm
from birdlab.provenance import git_state, read_json_object
from birdlab.teacher.birdnet import BIRDNET_V24
from birdlab.training.run_dir import RunDir, TrainedRun
from edge_runtime.bundle import (
    LABELS_FILENAME,
    MODEL_FILENAME,
    BundleError,
    open_bundle,
    read_labels,
    sha256_file,
    write_manifest,
)
from edge_runtime.spec import FeatureSpec

VARIANTS_SUFFIX = ".variants"
COMPAT_CLIPS = 16
"""Held-out clips kept for `compat` (each runtime runs them one at a time)."""
PARITY_SIGNAL_SEED = 5


class BundleBuildError(UserError):
    """The bundle cannot be built or checked; the message names the file and what to do."""


def variants_dir(bundle_dir: Path) -> Path:
    """export/NAME -> export/NAME.variants (where the non-shipped export artefacts live)."""
    bundle_dir = Path(bundle_dir)
    return bundle_dir.parent / f"{bundle_dir.name}{VARIANTS_SUFFIX}"


def load_run_dir(run_dir: str | Path) -> TrainedRun:
    """Check and read a finished training run; raises BundleBuildError naming a missing or bad file."""
    try:
        run = RunDir(Path(run_dir).resolve()).load()
        run.threshold  # noqa: B018 - checked here, before any export work
    except UserError as exc:
        raise BundleBuildError(str(exc)) from None
    return run


def measure_parity(*, wasm_path: Path, spec: FeatureSpec) -> dict[str, Any]:
    """librosa vs the bundled melspec.wasm on two seeded one-clip signals (a chirp over noise, pure noise).

    Returns max/mean |dB error| and the bit-identical fraction, or {'status': 'unavailable: why'}.
    """
    try:
        from edge_runtime.frontend import MelFrontend

        rng = np.random.default_rng(PARITY_SIGNAL_SEED)
        t = np.arange(spec.clip_samples) / spec.sample_rate_hz
        chirp = 0.3 * np.sin(2 * np.pi * (2000 + 1500 * t) * t) + 0.01 * rng.standard_normal(t.size)
        noise = 0.1 * rng.standard_normal(t.size)
        figures = []
        with MelFrontend.load(wasm_path, spec=spec) as frontend:
            for name, signal in (("chirp", chirp), ("noise", noise)):
                parity, _, _ = parity_of_samples(signal.astype(np.float32), frontend=frontend, spec=spec, path=name)
                figures.append(parity)
    except Exception as exc:  # parity is reported, never fatal to the export
        return {"status": f"unavailable: {type(exc).__name__}: {exc}"}
    worst = max(figures, key=lambda f: f.max_abs_db_error)
    return {
        "status": "passed" if worst.max_abs_db_error <= MEL_DB_ATOL else "failed",
        "signals": [f.path for f in figures],
        "tolerance_db": MEL_DB_ATOL,
        "max_abs_db_error": worst.max_abs_db_error,
        "mean_abs_db_error": float(np.mean([f.mean_abs_db_error for f in figures])),
        "fraction_bit_identical": float(np.mean([f.fraction_bit_identical for f in figures])),
    }


# -- export ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportResult:
    """What `python -m birdlab export` did."""

    bundle_dir: Path
    variants_dir: Path
    variant: str
    audits: dict[str, AuditReport]
    equivalence: Any
    """birdlab.export.equivalence.EquivalenceReport."""
    manifest: dict[str, Any]

    @property
    def ok(self) -> bool:
        """The shipped variant passed the audit and met its equivalence target."""
        chosen = self.equivalence.by_variant().get(self.variant)
        return self.audits[self.variant].ok and (chosen is None or chosen.meets_target is not False)

    def to_text(self) -> str:
        lines = [f"bundle {self.bundle_dir} (model.tflite = {self.variant}); variants in {self.variants_dir}", ""]
        for report in self.audits.values():
            lines.append(report.to_text())
            lines.append("")
        lines.append(self.equivalence.to_text())
        return "\n".join(lines)


def export_run(
    *,
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    variant: str = "f32",
    floor: str = DEFAULT_RUNTIME_FLOOR,
    features: RunFeatures | None = None,
    wasm_path: Path | None = None,
) -> ExportResult:
    """Export a run: all TFLite variants, their audits and equivalence, and a bundle of `variant`.

    run_dir: runs/NAME written by training. out_dir: the bundle directory (default
    export/NAME). features: representative and held-out clips (default: rebuilt from the
    run's dataset and split, see birdlab.export.run_features). wasm_path: melspec.wasm to ship
    (default: birdlab.frontend.wasm.build_wasm()). Raises BundleBuildError/ExportError for a user
    mistake or when the chosen variant fails the audit (then no manifest is written).
    """
    check_variant(variant)
    run = load_run_dir(run_dir)

    import keras


    bundle_dir = Path(out_dir) if out_dir else paths.EXPORT_DIR / run.run_id
    side_dir = variants_dir(bundle_dir)
    features = features or load_run_features(run)

    model = keras.saving.load_model(run.run_dir.model_path, compile=False)
    expected = (None, *run.spec.input_shape)
    if tuple(model.input_shape) != expected:
        raise BundleBuildError(f"{run.run_dir.model_path}: model input {model.input_shape} does not match "
                               f"feature_spec.json's {expected}; the run directory is inconsistent")
    written = export_variants(model, out_dir=side_dir, variants=VARIANTS, representative=features.representative)
    audits = {name: audit_tflite(item.path, floor=floor) for name, item in written.items()}
    for name, report in audits.items():
        (side_dir / f"audit_{name}.json").write_text(report.to_json(), encoding="utf-8")

    keras_probs = keras_probabilities(model, features.heldout)
    equivalence = check_equivalence(keras_probs=keras_probs, variant_paths={k: v.path for k, v in written.items()},
                                    features=features.heldout, truth=features.heldout_truth, threshold=run.threshold)
    (side_dir / "equivalence.json").write_text(equivalence.to_json(), encoding="utf-8")
    np.save(side_dir / "heldout_features.npy", features.heldout[:COMPAT_CLIPS])
    np.save(side_dir / "heldout_keras.npy", keras_probs[:COMPAT_CLIPS])
    (side_dir / "export.json").write_text(json.dumps({
        "run_dir": str(run.run_dir.root), "keras_model": str(run.run_dir.model_path), "variant": variant, "floor": floor,
        "variants": {k: v.path.name for k, v in written.items()},
        "equivalence_clips": {"source": features.heldout_source, "count": int(len(features.heldout))},
    }, indent=2) + "\n", encoding="utf-8")

    if not audits[variant].ok:
        raise ExportError(f"variant {variant} fails the op audit (floor TF Lite {floor}): "
                          f"{'; '.join(audits[variant].problems)}. Variants and reports are in {side_dir}")
    manifest = build_bundle(run=run, bundle_dir=bundle_dir, model_path=written[variant].path, variant=variant,
                            audit=audits[variant], equivalence=equivalence, wasm_path=wasm_path)
    return ExportResult(bundle_dir=bundle_dir, variants_dir=side_dir, variant=variant, audits=audits,
                        equivalence=equivalence, manifest=manifest)


def build_bundle(*, run: TrainedRun, bundle_dir: Path, model_path: Path, variant: str, audit: AuditReport,
                 equivalence: Any, wasm_path: Path | None = None) -> dict[str, Any]:
    """Write the bundle files and manifest.json into bundle_dir (emptied first); returns the manifest."""

    if bundle_dir.exists():
        if not (bundle_dir / "manifest.json").exists() and any(bundle_dir.iterdir()):
            raise BundleBuildError(f"{bundle_dir}: exists and is not a bundle; choose another --out")
        shutil.rmtree(bundle_dir)
    bundle_dir.mkdir(parents=True)
    shutil.copyfile(model_path, bundle_dir / MODEL_FILENAME)
    shutil.copyfile(run.run_dir.labels_path, bundle_dir / LABELS_FILENAME)
    run.spec.save(bundle_dir)
    if wasm_path is not None:
        shutil.copyfile(wasm_path, bundle_dir / "melspec.wasm")
    else:
        build_wasm(bundle_dir)
    parity = measure_parity(wasm_path=bundle_dir / "melspec.wasm", spec=run.spec)
    chosen = equivalence.by_variant().get(variant)
    equivalence_fields = equivalence.to_dict()
    model_id = f"{run.run_id}-{variant}"
    fields: dict[str, Any] = {
        "model_id": model_id,
        "run_id": run.run_id,
        "variant": variant,
        "threshold": run.threshold,
        "metrics": run.metrics,
        "parity": parity,
        "equivalence": equivalence_fields,
        "audit": {"floor": audit.floor, "ok": audit.ok, "metadata_min_runtime": audit.metadata_min_runtime,
                  "table_min_runtime": audit.table_min_runtime,
                  "ops": [f"{op.name}/v{op.version}" for op in audit.ops]},
        "birdlab_version": __version__,
        "git_commit": git_state().describe(),
        "training_git_commit": str(run.run_info.get("git_commit", "")),
    }
    write_model_card(bundle_dir / "MODEL_CARD.md", run=run, fields=fields, audit=audit,
                     equivalence_text=equivalence.to_text(), chosen=chosen,
                     labels=read_labels(run.run_dir.labels_path))
    refuse_teacher_files(bundle_dir, teacher=run.teacher)
    manifest_path = write_manifest(bundle_dir, **fields)
    return json.loads(manifest_path.read_text(encoding="utf-8"))


TEACHER_NAME_PREFIXES = ("birdnet_",)
"""A bundle file whose name starts with one of these (case-insensitive) is taken for a teacher model."""


def refuse_teacher_files(bundle_dir: Path, *, teacher: dict[str, Any] | None) -> None:
    """Raise BundleBuildError (and remove the half-written bundle) when a file of bundle_dir is a teacher model:
    a BirdNET_* name, BirdNET v2.4's sha256, or the sha256 of the run's teacher (teacher.json). Teachers are for
    the lab: their licence (BirdNET: CC BY-NC-SA 4.0) and their ops (RFFT2D) keep them off devices."""
    forbidden = {BIRDNET_V24.model_sha256: "BirdNET v2.4"}
    if teacher and teacher.get("model_sha256"):
        forbidden[str(teacher["model_sha256"])] = f"the run's teacher {teacher.get('model_file', '')}".strip()
    for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
        why = None
        if path.name.casefold().startswith(TEACHER_NAME_PREFIXES):
            why = "its name is a BirdNET file's"
        elif (digest := sha256_file(path)) in forbidden:
            why = f"it is {forbidden[digest]} (sha256 {digest[:12]}...)"
        if why is not None:
            shutil.rmtree(bundle_dir, ignore_errors=True)
            raise BundleBuildError(f"{path.relative_to(bundle_dir)}: a teacher model must never ship in a bundle "
                                   f"({why}); the bundle was removed. Only the distilled student ships")


# -- verify and pack ------------------------------------------------------------------------------
def verify_bundle(path: str | Path) -> str:
    """`bundle verify`: open the bundle with the device's reader; a one-line summary, or UserError naming the file."""
    try:
        bundle = open_bundle(path)
    except BundleError as exc:
        raise BundleBuildError(f"bundle refused: {exc}") from None
    return (f"OK {bundle.root}: model {bundle.model_id} ({bundle.variant}), {len(bundle.labels)} species, "
            f"{len(bundle.manifest['files'])} files match manifest.json, threshold {bundle.threshold:.2f}")


def pack_bundle(path: str | Path, *, out: str | Path | None = None) -> Path:
    """`bundle pack`: verify, then write a deterministic DIR.tar.gz (sorted names, mtime 0, uid/gid 0, mode 644/755).

    The archive holds the bundle files under one top-level directory named like DIR.
    Same bundle -> same archive bytes.
    """
    verify_bundle(path)
    root = Path(path).resolve()
    archive = Path(out) if out else root.parent / f"{root.name}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
        for entry in [root, *members]:
            name = root.name if entry == root else f"{root.name}/{entry.relative_to(root).as_posix()}"
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif entry.is_file():
                data = entry.read_bytes()
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())
    return archive


# -- what compat reads ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportArtifacts:
    """The side directory of an export, as `compat` needs it."""

    root: Path
    variant_paths: dict[str, Path]
    features: np.ndarray
    keras_outputs: np.ndarray
    keras_path: Path | None


def load_export_artifacts(bundle_dir: str | Path) -> ExportArtifacts:
    """Read export/NAME.variants/ next to the bundle; raises BundleBuildError when it is missing."""
    side = variants_dir(Path(bundle_dir).resolve())
    info_path = side / "export.json"
    if not info_path.is_file():
        raise BundleBuildError(f"{side}: no export.json; run `python -m birdlab export --run ... --out {bundle_dir}` "
                               "first (compat reads the variants it leaves there)")
    info = read_json_object(info_path)
    variant_paths = {name: side / filename for name, filename in info.get("variants", {}).items()
                     if (side / filename).is_file()}
    keras_path = Path(info["keras_model"]) if info.get("keras_model") else None
    return ExportArtifacts(root=side, variant_paths=variant_paths,
                           features=np.load(side / "heldout_features.npy"),
                           keras_outputs=np.load(side / "heldout_keras.npy"),
                           keras_path=keras_path if keras_path and keras_path.is_file() else None)
