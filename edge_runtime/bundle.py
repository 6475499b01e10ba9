"""The export bundle: open, verify and describe it; write its manifest.

A bundle is a directory (or a .tar.gz of one) holding `model.tflite`, `labels.csv`,
`melspec.wasm`, `feature_spec.json`, `MODEL_CARD.md` and `manifest.json`. The manifest
lists the sha256 of every other file; `open_bundle` refuses a bundle whose files do not
match it. `write_manifest` is what the exporter in `birdlab` calls to produce it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_runtime.cache_dir import default_cache_dir
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.spec import SPEC_FILENAME, FeatureSpec, SpecError
from edge_runtime.thresholds import check_threshold

BUNDLE_FORMAT = "birdlab-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_FILENAME = "manifest.json"
MODEL_FILENAME = "model.tflite"
LABELS_FILENAME = "labels.csv"
WASM_FILENAME = "melspec.wasm"
MODEL_CARD_FILENAME = "MODEL_CARD.md"
REQUIRED_FILES = (MODEL_FILENAME, LABELS_FILENAME, WASM_FILENAME, SPEC_FILENAME)
LABEL_COLUMNS = ("index", "ebird_code", "scientific_name", "common_name")
VARIANTS = ("f32", "f16", "int8")
REQUIRED_MANIFEST_FIELDS = ("model_id", "run_id", "variant", "threshold")
_HASH_BLOCK_BYTES = 1 << 20
MAX_ARCHIVE_MEMBERS = 64
"""Most members a bundle archive may hold (a bundle has 6 files)."""
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""Most bytes a bundle archive may unpack to (a bundle is a few MB; a 1 MB archive of 300 MB is refused)."""
_COMPLETE_MARKER = ".complete"

log = logging.getLogger(__name__)


class BundleError(EdgeRuntimeError):
    """The bundle cannot be used; the message names the file and says what to do."""


@dataclass(frozen=True)
class Label:
    """One model output: its index in the output vector and the species it stands for."""

    index: int
    ebird_code: str
    scientific_name: str
    common_name: str


@dataclass(frozen=True)
class Bundle:
    """A verified bundle. Every file listed in the manifest matched its sha256 when opened."""

    root: Path
    """Directory holding the bundle files (the unpack directory for a .tar.gz)."""
    manifest: dict[str, Any]
    """manifest.json as parsed."""
    spec: FeatureSpec
    """The feature spec the model was trained with."""
    labels: tuple[Label, ...]
    """Model outputs in order: labels[i] is output i."""

    @property
    def model_path(self) -> Path:
        return self.root / MODEL_FILENAME

    @property
    def wasm_path(self) -> Path:
        return self.root / WASM_FILENAME

    @property
    def model_id(self) -> str:
        return str(self.manifest["model_id"])

    @property
    def model_sha256(self) -> str:
        return str(self.manifest["files"][MODEL_FILENAME])

    @property
    def threshold(self) -> float:
        """Default detection threshold chosen on validation data by the exporter."""
        return float(self.manifest["threshold"])

    @property
    def variant(self) -> str:
        return str(self.manifest["variant"])


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _short(hex_digest: str) -> str:
    return hex_digest[:4] + "…"


def default_unpack_dir() -> Path:
    """Where .tar.gz bundles are unpacked: <default_cache_dir()>/bundles."""
    return default_cache_dir() / "bundles"


def _extract_limited(archive: Path, dest: Path) -> None:
    """Extract archive into dest member by member, refusing more than MAX_ARCHIVE_MEMBERS members or
    MAX_UNPACKED_BYTES bytes before writing past them, and members that are not plain files or directories
    or would land outside dest (tarfile's 'data' filter)."""
    members = total = 0
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                members += 1
                total += max(0, member.size)
                if members > MAX_ARCHIVE_MEMBERS:
                    raise BundleError(f"{archive}: more than {MAX_ARCHIVE_MEMBERS} members; not a birdlab bundle")
                if total > MAX_UNPACKED_BYTES:
                    raise BundleError(f"{archive}: unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB; "
                                      "not a birdlab bundle (or a damaged one): re-copy the bundle")
                tar.extract(member, dest, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"{archive}: cannot unpack the bundle archive ({exc}); re-copy the bundle") from None


def _bundle_root(unpacked: Path, *, archive: Path) -> Path:
    """The directory holding the manifest: the top of the archive or its only directory."""
    if (unpacked / MANIFEST_FILENAME).exists():
        return unpacked
    subdirs = [p for p in unpacked.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST_FILENAME).exists():
        return subdirs[0]
    raise BundleError(f"{archive}: no {MANIFEST_FILENAME} at the top of the archive or in its only directory")


def _verified_unpacked(target: Path, *, archive: Path) -> tuple[Path, dict[str, Any]]:
    """The root and manifest of an unpacked archive, after checking that its manifest is the one unpacked
    (its sha256 is recorded in the completion marker) and every file still matches it; BundleError otherwise."""
    root = _bundle_root(target, archive=archive)
    try:
        recorded = (target / _COMPLETE_MARKER).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        recorded = []
    if recorded[1:2] != [sha256_file(root / MANIFEST_FILENAME)]:
        raise BundleError(f"{root / MANIFEST_FILENAME}: not the manifest unpacked from {archive}")
    manifest = _read_manifest(root)
    verify_files(root, manifest)
    return root.resolve(), manifest


def _unpack_tar_gz(archive: Path, *, unpack_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Unpack `archive` once into unpack_dir/<sha256 of archive>/; return the verified bundle root and manifest.

    The unpacked copy is a cache, verified at every open: when it differs from the manifest it was
    unpacked with (a file changed, removed or the manifest replaced), it is unpacked again. Extraction
    goes to a temporary directory, removed on any failure, then renamed into place.
    """
    archive_sha = sha256_file(archive)
    target = unpack_dir / archive_sha[:16]
    if (target / _COMPLETE_MARKER).exists():
        try:
            return _verified_unpacked(target, archive=archive)
        except BundleError as exc:
            log.warning("%s: the unpacked copy in %s changed (%s); unpacking the archive again", archive, target, exc)
            shutil.rmtree(target, ignore_errors=True)
    tmp = unpack_dir / f".{archive_sha[:16]}.{os.getpid()}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _extract_limited(archive, tmp)
        manifest_sha = sha256_file(_bundle_root(tmp, archive=archive) / MANIFEST_FILENAME)
        (tmp / _COMPLETE_MARKER).write_text(f"{archive_sha} {manifest_sha}\n", encoding="ascii")
        try:
            os.replace(tmp, target)
        except OSError:  # another process unpacked it first
            if not (target / _COMPLETE_MARKER).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _verified_unpacked(target, archive=archive)


def read_labels(path: Path) -> tuple[Label, ...]:
    """Parse labels.csv (index,ebird_code,scientific_name,common_name); indices must be 0..n-1 in order."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BundleError(f"{path}: cannot read labels ({exc.strerror})") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != LABEL_COLUMNS:
        raise BundleError(f"{path}: header must be {','.join(LABEL_COLUMNS)}, got {reader.fieldnames}")
    labels: list[Label] = []
    for row_number, row in enumerate(reader, start=2):
        try:
            index = int(row["index"])
        except (TypeError, ValueError):
            raise BundleError(f"{path}, line {row_number}: index {row['index']!r} is not an integer") from None
        if index != len(labels):
            raise BundleError(f"{path}, line {row_number}: index {index} out of order (expected {len(labels)})")
        if not row["ebird_code"]:
            raise BundleError(f"{path}, line {row_number}: empty ebird_code")
        labels.append(Label(index, row["ebird_code"], row["scientific_name"] or "", row["common_name"] or ""))
    if not labels:
        raise BundleError(f"{path}: no labels")
    return tuple(labels)


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_FILENAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{root}: no {MANIFEST_FILENAME}; this is not a birdlab bundle (export one with birdlab)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc}); re-export or re-copy the bundle") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: 'format' must be {BUNDLE_FORMAT!r}; this is not a birdlab bundle")
    if manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{path}: format_version {manifest.get('format_version')!r} is not supported "
            f"(this runtime reads {BUNDLE_FORMAT_VERSION}); update edge_runtime or re-export"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BundleError(f"{path}: 'files' must map file names to sha256 hex strings")
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"{path}: 'files' does not list {name}; re-export the bundle")
    for name in REQUIRED_MANIFEST_FIELDS:
        if name not in manifest:
            raise BundleError(f"{path}: missing field {name!r}; re-export the bundle")
    try:
        check_threshold(manifest["threshold"], where=f"{path}: 'threshold'")
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    if manifest["variant"] not in VARIANTS:
        raise BundleError(f"{path}: 'variant' must be one of {VARIANTS}, got {manifest['variant']!r}")
    return manifest


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Raise BundleError unless every file in manifest['files'] exists and matches its sha256."""
    for name, expected in sorted(manifest["files"].items()):
        path = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{MANIFEST_FILENAME}: file name {name!r} leaves the bundle directory")
        if not path.is_file():
            raise BundleError(f"{name}: listed in the manifest but missing from {root}; re-copy the bundle")
        actual = sha256_file(path)
        if actual != expected.lower():
            raise BundleError(
                f"{name}: sha256 mismatch (manifest {_short(expected)}, file {_short(actual)}); "
                "re-export or re-copy the bundle"
            )


def open_bundle(path: str | Path, *, unpack_dir: Path | None = None) -> Bundle:
    """Open and verify a bundle directory or .tar.gz; raise BundleError naming what is wrong.

    Checks the manifest format, every file's sha256, the feature spec and labels.csv.
    Model-level checks (input shape, output count, the wasm ABI) need an interpreter
    and the frontend: see `edge_runtime.check`.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such bundle (give a bundle directory or .tar.gz)")
    if path.is_file():
        if not (path.name.endswith(".tar.gz") or path.name.endswith(".tgz")):
            raise BundleError(f"{path}: a bundle is a directory or a .tar.gz archive")
        root, manifest = _unpack_tar_gz(path, unpack_dir=unpack_dir or default_unpack_dir())
    else:
        root = path.resolve()
        manifest = _read_manifest(root)
        verify_files(root, manifest)
    try:
        spec = FeatureSpec.load(root / SPEC_FILENAME)
    except SpecError as exc:
        raise BundleError(f"{SPEC_FILENAME}: {exc}") from None
    labels = read_labels(root / LABELS_FILENAME)
    return Bundle(root=root, manifest=manifest, spec=spec, labels=labels)


def write_manifest(directory: str | Path, **fields: Any) -> Path:
    """Write `directory/manifest.json` listing the sha256 of every other file in it.

    fields: at least model_id, run_id, variant ('f32'|'f16'|'int8') and threshold;
    usually also metrics, parity, equivalence, birdlab_version, git_commit. created_utc
    defaults to now. `format`, `format_version` and `files` are set here.
    Returns the manifest path. Raises BundleError for a missing required file or field.
    """
    directory = Path(directory)
    missing = [name for name in REQUIRED_MANIFEST_FIELDS if name not in fields]
    if missing:
        raise BundleError(f"write_manifest({directory}): missing field(s) {missing}")
    if fields["variant"] not in VARIANTS:
        raise BundleError(f"write_manifest({directory}): variant must be one of {VARIANTS}, got {fields['variant']!r}")
    try:
        threshold = check_threshold(fields["threshold"], where=f"write_manifest({directory}): threshold")
    except ValueError as exc:
        raise BundleError(str(exc)) from None
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name != MANIFEST_FILENAME:
            files[name] = sha256_file(path)
    for name in REQUIRED_FILES:
        if name not in files:
            raise BundleError(f"write_manifest({directory}): {name} is missing; write it before the manifest")
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "files": files,
        "metrics": {},
        "parity": {},
        "equivalence": {},
        "birdlab_version": "",
        "git_commit": "",
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    manifest.update({k: v for k, v in fields.items() if k not in ("format", "format_version", "files")})
    manifest["threshold"] = threshold
    path = directory / MANIFEST_FILENAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
