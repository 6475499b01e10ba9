"""`python -m birdlab bundle verify|pack` and `export` as a user runs them: subprocesses on real bundles."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile

import pytest

from birdlab.export.bundle_writer import pack_bundle
from edge_runtime.bundle import open_bundle

CLI_TIMEOUT_S = 300


def _birdlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "birdlab", *args], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)


@pytest.fixture
def bundle_copy(tmp_path, exported_bundle):
    """A private copy of the exported bundle that a test may damage."""
    return shutil.copytree(exported_bundle.bundle_dir, tmp_path / "small")


@pytest.mark.slow
def test_verify_accepts_an_intact_bundle(bundle_copy):
    done = _birdlab("bundle", "verify", str(bundle_copy))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK ") and "5 files match manifest.json" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["model.tflite", "labels.csv", "melspec.wasm"])
def test_verify_refuses_a_changed_file_and_names_it(bundle_copy, victim):
    path = bundle_copy / victim
    path.write_bytes(path.read_bytes() + b"\0")
    done = _birdlab("bundle", "verify", str(bundle_copy))
    assert done.returncode == 2
    assert f"{victim}: sha256 mismatch" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_verify_refuses_a_missing_file(bundle_copy):
    (bundle_copy / "feature_spec.json").unlink()
    done = _birdlab("bundle", "verify", str(bundle_copy))
    assert done.returncode == 2 and "feature_spec.json: listed in the manifest but missing" in done.stderr


@pytest.mark.slow
def test_pack_is_deterministic_and_opens_on_the_device(tmp_path, bundle_copy):
    done = _birdlab("bundle", "pack", str(bundle_copy))
    assert done.returncode == 0, done.stderr
    archive = bundle_copy.parent / "small.tar.gz"
    assert done.stdout.strip() == str(archive)
    again = pack_bundle(bundle_copy, out=tmp_path / "again.tar.gz")
    assert again.read_bytes() == archive.read_bytes(), "same bundle must give the same archive bytes"
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "small"
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    bundle = open_bundle(archive, unpack_dir=tmp_path / "unpacked")
    assert bundle.model_sha256 == open_bundle(bundle_copy).model_sha256


@pytest.mark.slow
def test_pack_refuses_a_damaged_bundle(bundle_copy):
    (bundle_copy / "labels.csv").write_text("index,ebird_code,scientific_name,common_name\n0,x,y,z\n")
    done = _birdlab("bundle", "pack", str(bundle_copy))
    assert done.returncode == 2 and "labels.csv: sha256 mismatch" in done.stderr
    assert not (bundle_copy.parent / "small.tar.gz").exists()


def test_verify_names_a_missing_directory(tmp_path):
    done = _birdlab("bundle", "verify", str(tmp_path / "absent"))
    assert done.returncode == 2 and "no such bundle" in done.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, synthetic_quick):
    """A real training run (the tiny preset, seconds) on the quick synthetic dataset."""
    from birdlab.training.config import tiny
    from birdlab.training.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(config=tiny(), data_dir=synthetic_quick, out_dir=out, progress=False)
    return out


@pytest.mark.slow
def test_export_cli_on_a_trained_run(tmp_path, tiny_run):
    out = tmp_path / "export" / "tiny"
    done = _birdlab("export", "--run", str(tiny_run), "--out", str(out), "--variant", "int8")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PASS: floor TF Lite 1.15.0" in done.stdout and "Keras vs TFLite" in done.stdout
    bundle = open_bundle(out)
    assert bundle.variant == "int8" and bundle.manifest["run_id"] == "tiny"
    figures = bundle.manifest["equivalence"]["variants"]
    assert figures["f32"]["meets_target"] is True
    assert figures["f32"]["n_clips"] > 0 and figures["int8"]["f1_keras"] is not None
    verified = _birdlab("bundle", "verify", str(out))
    assert verified.returncode == 0, verified.stderr
