"""Issue 6, item 7(c): bad inputs give a clear error and the runtime goes on (per-file faults), or are refused
at start (bundle faults). Everything runs as a real `python -m edge_runtime` process on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import wasmtime
from edge_bundle_factory import (
    TONES_HZ,
    copy_bundle,
    label_rows,
    session_bundle,
    session_model,
    tone,
    wasm_path_or_skip,
    write_bundle,
    write_wav,
)

from edge_runtime.bundle import open_bundle
from edge_runtime.check import check_bundle
from edge_runtime.frontend import FrontendError, MelFrontend
from edge_runtime.spec import FeatureSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
RATE = 32000
CLIP_SECONDS = 5.0
PROCESS_TIMEOUT_S = 120
LOOP_TRAPPED_WITHIN_S = 1.0
"""A wasm frontend that never returns is stopped within this (frontend_timeout_seconds defaults to 0.5)."""

LOOPING_WAT = """
(module
  (memory (export "memory") 16)
  (func (export "_initialize"))
  (func (export "melspec_abi_version") (result i32) i32.const 1)
  (func (export "melspec_create")
    (param i32 i32 i32 i32 i32 i32 i32 i32 f64 f64 f64 i32 i32 f64 f64 f64) (result i32) i32.const 1)
  (func (export "melspec_input") (param i32 i32) (result i32) i32.const 1024)
  (func (export "melspec_compute") (param i32 i32) (result i32) (loop $forever (br $forever)) i32.const 0)
  (func (export "melspec_output") (param i32) (result i32) i32.const 1024)
  (func (export "melspec_last_error") (result i32) i32.const 0)
  (func (export "melspec_destroy") (param i32) (result i32) i32.const 0))
"""
"""The melspec ABI with a compute that loops forever."""


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_bundle(tmp_path_factory)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}
    return {**clean, "EDGE_RUNTIME_CACHE_DIR": str(tmp_path / "cache")}


def _edge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=PROCESS_TIMEOUT_S)


def _tone(label: int, *, rate: int, seconds: float = CLIP_SECONDS) -> np.ndarray:
    return tone(TONES_HZ[label], seconds=seconds, sample_rate_hz=rate)


def _write_truncated_wav(path: Path) -> None:
    write_wav(path, _tone(0, rate=RATE), sample_rate_hz=RATE)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the header still declares the full length


def _write_float_wav(path: Path, samples: np.ndarray) -> None:
    write_wav(path, samples, sample_rate_hz=RATE, subtype="FLOAT")


def _make_inputs(directory: Path, rng: np.random.Generator) -> tuple[dict[str, int | None], dict[str, str]]:
    """Write the inputs. Returns ({good file: expected label or None}, {bad file: expected error words})."""
    good: dict[str, int | None] = {}
    write_wav(directory / "good.wav", _tone(0, rate=RATE), sample_rate_hz=RATE)
    good["good.wav"] = 0
    write_wav(directory / "rate22000.wav", _tone(1, rate=22000), sample_rate_hz=22000)
    good["rate22000.wav"] = 1
    write_wav(directory / "rate8k.wav", _tone(0, rate=8000), sample_rate_hz=8000)  # 1 kHz < 4 kHz Nyquist
    good["rate8k.wav"] = 0
    write_wav(directory / "int32.wav", _tone(2, rate=RATE), sample_rate_hz=RATE, subtype="PCM_32")
    good["int32.wav"] = 2
    _write_float_wav(directory / "float.wav", _tone(3, rate=RATE))
    good["float.wav"] = 3
    stereo = np.stack([_tone(1, rate=RATE), 0.5 * _tone(1, rate=RATE)], axis=1)
    write_wav(directory / "stereo.wav", stereo, sample_rate_hz=RATE)
    good["stereo.wav"] = 1
    write_wav(directory / "dc_offset.wav", 0.4 + _tone(2, rate=RATE), sample_rate_hz=RATE)
    good["dc_offset.wav"] = 2
    write_wav(directory / "long_silence.wav", np.zeros(RATE * 60, np.float32), sample_rate_hz=RATE)
    good["long_silence.wav"] = None
    write_wav(directory / "vorbis.ogg", _tone(3, rate=RATE), sample_rate_hz=RATE, subtype="VORBIS")
    good["vorbis.ogg"] = 3
    write_wav(directory / "layer3.mp3", _tone(0, rate=RATE), sample_rate_hz=RATE, subtype="MPEG_LAYER_III")
    good["layer3.mp3"] = 0

    bad = {}
    _write_truncated_wav(directory / "truncated.wav")
    bad["truncated.wav"] = "truncated"
    (directory / "corrupt.wav").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    bad["corrupt.wav"] = "not a RIFF/WAVE file"
    (directory / "corrupt.flac").write_bytes(b"fLaC" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    bad["corrupt.flac"] = "cannot decode"
    (directory / "empty.wav").write_bytes(b"")
    bad["empty.wav"] = "empty file"
    nan = _tone(0, rate=RATE)
    nan[1000:1010] = np.nan
    _write_float_wav(directory / "nan.wav", nan)
    bad["nan.wav"] = "NaN or infinite"
    inf = _tone(0, rate=RATE)
    inf[5] = np.inf
    _write_float_wav(directory / "inf.wav", inf)
    bad["inf.wav"] = "NaN or infinite"
    return good, bad


def test_bad_files_are_reported_one_by_one_and_the_run_goes_on(bundle_dir: Path, tmp_path: Path,
                                                               env: dict[str, str], rng: np.random.Generator) -> None:
    audio = tmp_path / "audio"
    audio.mkdir()
    good, bad = _make_inputs(audio, rng)
    names = sorted([*good, *bad])
    out, status_path = tmp_path / "out.jsonl", tmp_path / "status.json"
    result = _edge("run", "--bundle", str(bundle_dir), *[f"--source=file:{audio / n}" for n in names],
                   "--sink", f"jsonl:{out}", "--outbox", str(tmp_path / "outbox.sqlite"),
                   "--status", str(status_path), env=env)
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    for name, words in bad.items():
        mine = [line for line in errors if f"{audio / name}:" in line]
        assert len(mine) == 1 and words in mine[0], f"{name}: expected one clear error with {words!r}, got {mine}"
    assert len(errors) == len(bad), errors

    labels = open_bundle(bundle_dir).labels
    delivered = [json.loads(line) for line in out.read_text().splitlines()]
    got = {(Path(d["source"]).name, d["ebird_code"]) for d in delivered}
    expected = {(name, labels[k].ebird_code) for name, k in good.items() if k is not None}
    assert got == expected
    assert all(d["offset_start_s"] == 0.0 for d in delivered)
    status = json.loads(status_path.read_text())
    assert (status["files_done"], status["files_failed"]) == (len(good), len(bad))
    assert status["windows_processed"] == len(good) - 1 + 12, "one window per 5-s file, 12 for the 60 s of silence"
    assert status["last_error"]


def test_a_bundle_with_one_byte_changed_is_refused_at_start(bundle_dir: Path, tmp_path: Path,
                                                             env: dict[str, str]) -> None:
    damaged = copy_bundle(bundle_dir, tmp_path / "damaged")
    path = damaged / "melspec.wasm"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    write_wav(tmp_path / "a.wav", _tone(0, rate=RATE), sample_rate_hz=RATE)
    result = _edge("run", "--bundle", str(damaged), "--source", f"file:{tmp_path / 'a.wav'}",
                   "--outbox", str(tmp_path / "outbox.sqlite"), "--sink", f"jsonl:{tmp_path / 'out.jsonl'}", env=env)
    assert result.returncode == 2
    assert "melspec.wasm: sha256 mismatch" in result.stderr and "re-export or re-copy the bundle" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_label_count_different_from_model_outputs_is_refused(tmp_path_factory: pytest.TempPathFactory,
                                                              tmp_path: Path, env: dict[str, str]) -> None:
    mismatched = session_bundle(tmp_path_factory, n_labels=4, n_model_outputs=3)
    check = _edge("check", "--bundle", str(mismatched), env=env)
    assert check.returncode == 1
    assert "[FAIL] labels vs outputs: 4 labels, 3 model outputs" in check.stdout
    write_wav(tmp_path / "a.wav", _tone(0, rate=RATE), sample_rate_hz=RATE)
    run = _edge("run", "--bundle", str(mismatched), "--source", f"file:{tmp_path / 'a.wav'}",
                "--outbox", str(tmp_path / "outbox.sqlite"), env=env)
    assert run.returncode == 2 and "4 labels, 3 model outputs" in run.stderr


@pytest.fixture(scope="module")
def looping_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wasm_path_or_skip()  # the real frontend host is what is being tested
    parts = tmp_path_factory.mktemp("looping_parts")
    wasm = parts / "looping.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(LOOPING_WAT))
    return write_bundle(tmp_path_factory.mktemp("looping") / "bundle", spec=FeatureSpec(),
                        model_path=session_model(tmp_path_factory, n_outputs=4), wasm_path=wasm, labels=label_rows(4))


def test_a_wasm_that_loops_forever_is_trapped_within_a_second(looping_bundle: Path, tmp_path: Path,
                                                              env: dict[str, str]) -> None:
    bundle = open_bundle(looping_bundle)
    with MelFrontend.load(bundle.wasm_path, spec=bundle.spec, cache_dir=tmp_path / "cache", timeout_s=0.5) as frontend:
        start = time.monotonic()
        with pytest.raises(FrontendError, match="ran past timeout_s=0.5"):
            frontend.log_mel(np.zeros(bundle.spec.clip_samples, np.float32))
        assert time.monotonic() - start < LOOP_TRAPPED_WITHIN_S
    start = time.monotonic()
    report = check_bundle(looping_bundle)  # the default frontend_timeout_seconds
    assert time.monotonic() - start < LOOP_TRAPPED_WITHIN_S + 1.0, "check = model load + one trapped call"
    failed = [item for item in report.items if not item.ok]
    assert [item.name for item in failed] == ["frontend run"] and "ran past timeout_s" in failed[0].detail
    write_wav(tmp_path / "a.wav", _tone(0, rate=RATE), sample_rate_hz=RATE)
    run = _edge("run", "--bundle", str(looping_bundle), "--source", f"file:{tmp_path / 'a.wav'}",
                "--outbox", str(tmp_path / "outbox.sqlite"), env=env)
    assert run.returncode == 2 and "bundle refused" in run.stderr and "ran past timeout_s" in run.stderr
