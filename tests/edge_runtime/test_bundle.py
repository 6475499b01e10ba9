"""Bundles: manifest written and verified, any changed byte refused, tar.gz unpacked safely, and the
model/labels/wasm checks of `edge_runtime check` on real TFLite models and the real wasm."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import wasmtime
from edge_bundle_factory import copy_bundle, label_rows, session_bundle, session_model, tar_bundle, write_bundle

from edge_runtime.bundle import BundleError, open_bundle, read_labels, write_manifest
from edge_runtime.check import check_bundle
from edge_runtime.spec import FeatureSpec

BUNDLE_FILES = ("model.tflite", "labels.csv", "melspec.wasm", "feature_spec.json", "MODEL_CARD.md")


@pytest.fixture(scope="module")
def container_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle with the real tone-detector model and an empty (valid) wasm module.

    The container checks (manifest, sha256, tar.gz) do not read the wasm, so these tests run
    whether or not the C++ frontend is built; the wasm checks use `session_bundle`.
    """
    parts = tmp_path_factory.mktemp("container_parts")
    wasm = parts / "empty.wasm"
    wasm.write_bytes(wasmtime.wat2wasm("(module)"))
    return write_bundle(tmp_path_factory.mktemp("container") / "bundle", spec=FeatureSpec(),
                        model_path=session_model(tmp_path_factory, n_outputs=4), wasm_path=wasm,
                        labels=label_rows(4))


def test_open_bundle_reads_manifest_labels_and_spec(container_bundle: Path) -> None:
    bundle = open_bundle(container_bundle)
    assert bundle.root == container_bundle.resolve()
    assert bundle.spec == FeatureSpec()
    assert [label.index for label in bundle.labels] == [0, 1, 2, 3]
    assert [(lb.ebird_code, lb.scientific_name, lb.common_name) for lb in bundle.labels] == label_rows(4)
    assert bundle.model_sha256 == hashlib.sha256(bundle.model_path.read_bytes()).hexdigest()
    assert bundle.model_id == "tone-detector-test" and bundle.threshold == 0.5 and bundle.variant == "f32"
    assert bundle.wasm_path.name == "melspec.wasm"
    manifest = json.loads((container_bundle / "manifest.json").read_text())
    assert manifest["format"] == "birdlab-bundle" and manifest["format_version"] == 1
    assert sorted(manifest["files"]) == sorted(BUNDLE_FILES), "every file except manifest.json is listed"
    for key in ("model_id", "run_id", "variant", "threshold", "metrics", "parity", "equivalence",
                "birdlab_version", "git_commit", "created_utc"):
        assert key in manifest


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_one_changed_byte_is_refused_naming_the_file(container_bundle: Path, tmp_path: Path, name: str) -> None:
    bundle_dir = copy_bundle(container_bundle, tmp_path / "b")
    path = bundle_dir / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    manifest_hash = json.loads((bundle_dir / "manifest.json").read_text())["files"][name]
    file_hash = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(BundleError) as info:
        open_bundle(bundle_dir)
    assert str(info.value) == (f"{name}: sha256 mismatch (manifest {manifest_hash[:4]}…, file {file_hash[:4]}…); "
                               "re-export or re-copy the bundle")


def test_missing_file_and_bad_manifest_are_refused(container_bundle: Path, tmp_path: Path) -> None:
    bundle_dir = copy_bundle(container_bundle, tmp_path / "b")
    (bundle_dir / "melspec.wasm").unlink()
    with pytest.raises(BundleError, match=r"melspec.wasm: listed in the manifest but missing"):
        open_bundle(bundle_dir)
    manifest = json.loads((container_bundle / "manifest.json").read_text())
    for change, message in [({"format": "other"}, "not a birdlab bundle"),
                            ({"format_version": 2}, "format_version 2 is not supported"),
                            ({"threshold": 1.5}, "'threshold' must be a number in"),
                            ({"variant": "f64"}, "'variant' must be one of")]:
        bad = copy_bundle(container_bundle, tmp_path / f"bad{len(list(tmp_path.iterdir()))}")
        (bad / "manifest.json").write_text(json.dumps({**manifest, **change}))
        with pytest.raises(BundleError, match=message):
            open_bundle(bad)
    with pytest.raises(BundleError, match="no such bundle"):
        open_bundle(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="no manifest.json"):
        open_bundle(empty)


def test_labels_are_validated(container_bundle: Path, tmp_path: Path) -> None:
    bundle_dir = copy_bundle(container_bundle, tmp_path / "b")
    labels = bundle_dir / "labels.csv"
    labels.write_text("index,ebird_code,scientific_name,common_name\n0,a,A a,A\n2,b,B b,B\n")
    with pytest.raises(BundleError, match=r"labels.csv, line 3: index 2 out of order \(expected 1\)"):
        read_labels(labels)
    labels.write_text("idx,code\n0,a\n")
    write_manifest(bundle_dir, model_id="m", run_id="r", variant="f32", threshold=0.5)
    with pytest.raises(BundleError, match="header must be index,ebird_code,scientific_name,common_name"):
        open_bundle(bundle_dir)


def test_write_manifest_needs_fields_and_files(container_bundle: Path, tmp_path: Path) -> None:
    bundle_dir = copy_bundle(container_bundle, tmp_path / "b")
    with pytest.raises(BundleError, match=r"missing field\(s\) \['run_id'\]"):
        write_manifest(bundle_dir, model_id="m", variant="f32", threshold=0.5)
    with pytest.raises(BundleError, match="threshold must be a number in"):
        write_manifest(bundle_dir, model_id="m", run_id="r", variant="f32", threshold=0.0)
    (bundle_dir / "labels.csv").unlink()
    with pytest.raises(BundleError, match="labels.csv is missing"):
        write_manifest(bundle_dir, model_id="m", run_id="r", variant="f32", threshold=0.5)


def test_tar_gz_bundle_is_unpacked_once_and_verified(container_bundle: Path, tmp_path: Path) -> None:
    archive = tar_bundle(container_bundle, tmp_path / "bundle.tar.gz")
    unpack = tmp_path / "cache"
    first = open_bundle(archive, unpack_dir=unpack)
    second = open_bundle(archive, unpack_dir=unpack)
    assert first.root == second.root and first.root.is_relative_to(unpack.resolve())
    assert first.manifest == open_bundle(container_bundle).manifest
    original = (first.root / "labels.csv").read_text()
    (first.root / "labels.csv").write_text("tampered")  # the unpacked copy is verified on every open
    assert (open_bundle(archive, unpack_dir=unpack).root / "labels.csv").read_text() == original  # unpacked again


def test_tar_gz_with_a_member_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(BundleError, match="cannot unpack the bundle archive"):
        open_bundle(archive, unpack_dir=tmp_path / "cache")
    assert not (tmp_path / "outside.txt").exists()


def test_check_passes_for_a_good_bundle(tmp_path_factory: pytest.TempPathFactory) -> None:
    report = check_bundle(session_bundle(tmp_path_factory))
    assert report.ok, report.to_text()
    assert [item.name for item in report.items] == ["checksums", "feature spec", "model", "model input",
                                                    "labels vs outputs", "wasm ABI", "frontend run", "model run"]
    assert report.verdict.startswith("OK:")


def test_check_refuses_label_count_different_from_model_outputs(tmp_path_factory: pytest.TempPathFactory) -> None:
    report = check_bundle(session_bundle(tmp_path_factory, n_labels=4, n_model_outputs=3))
    assert not report.ok
    failed = {item.name: item.detail for item in report.items if not item.ok}
    assert list(failed) == ["labels vs outputs"]
    assert "4 labels, 3 model outputs" in failed["labels vs outputs"]
    assert report.verdict.startswith("REFUSED:")


def test_check_refuses_a_changed_byte(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    bundle_dir = copy_bundle(session_bundle(tmp_path_factory), tmp_path / "b")
    with open(bundle_dir / "model.tflite", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    report = check_bundle(bundle_dir)
    assert not report.ok and "model.tflite: sha256 mismatch" in report.verdict
