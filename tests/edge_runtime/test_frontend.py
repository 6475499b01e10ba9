"""MelFrontend, the wasmtime host of melspec.wasm: compiled-module cache, guards (timeout, fuel,
memory, no imports), ABI checks, error messages, and the array contract of log_mel."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import wasmtime

from edge_runtime.frontend import ABI_VERSION, FrontendError, MelFrontend, module_cache_key
from edge_runtime.spec import FeatureSpec

SPEC = FeatureSpec()
HANG_LIMIT_S = 5.0
"""A stopped runaway call must return well within this (the timeout under test is 0.2 s)."""


@pytest.fixture(scope="module")
def melspec_wasm() -> Path:
    from birdlab.frontend.wasm import build_wasm

    return build_wasm()


def _fake_module(tmp_path: Path, *, abi: int = ABI_VERSION, compute_body: str = "(i32.const 1)",
                 imports: str = "", name: str = "fake.wasm") -> Path:
    """A hand-written module with the melspec exports; compute_body is the body of melspec_compute."""
    wat = f"""
    (module
      {imports}
      (memory (export "memory") 1)
      (func (export "_initialize"))
      (func (export "melspec_abi_version") (result i32) (i32.const {abi}))
      (func (export "melspec_create")
        (param i32 i32 i32 i32 i32 i32 i32 i32 f64 f64 f64 i32 i32 f64 f64 f64) (result i32) (i32.const 1))
      (func (export "melspec_input") (param i32 i32) (result i32) (i32.const 1024))
      (func (export "melspec_compute") (param i32 i32) (result i32) {compute_body})
      (func (export "melspec_output") (param i32) (result i32) (i32.const 2048))
      (func (export "melspec_last_error") (result i32) (i32.const 0))
      (func (export "melspec_destroy") (param i32) (result i32) (i32.const 0)))
    """
    path = tmp_path / name
    path.write_bytes(wasmtime.wat2wasm(wat))
    return path


# -- guards ---------------------------------------------------------------------------------------
def test_runaway_module_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    wasm = _fake_module(tmp_path, compute_body="(loop $forever (br $forever)) (i32.const 1)")
    with MelFrontend.load(wasm, spec=SPEC, cache_dir=tmp_path / "cache", timeout_s=0.2) as frontend:
        start = time.monotonic()
        with pytest.raises(FrontendError, match="ran past timeout_s=0.2"):
            frontend.log_mel(np.zeros(100, dtype=np.float32))
        assert time.monotonic() - start < HANG_LIMIT_S


def test_runaway_module_is_stopped_by_fuel(tmp_path: Path) -> None:
    wasm = _fake_module(tmp_path, compute_body="(loop $forever (br $forever)) (i32.const 1)")
    with MelFrontend.load(wasm, spec=SPEC, cache_dir=tmp_path / "cache", timeout_s=None, fuel=100_000) as frontend:
        with pytest.raises(FrontendError, match=r"ran out of fuel \(100000\)"):
            frontend.log_mel(np.zeros(100, dtype=np.float32))


def test_fuel_is_enough_for_a_real_clip(melspec_wasm: Path, tmp_path: Path) -> None:
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path, timeout_s=None, fuel=10**9) as frontend:
        assert frontend.log_mel(np.zeros(SPEC.clip_samples, dtype=np.float32)).shape == (SPEC.n_mels, SPEC.clip_frames)


def test_memory_limit_refuses_oversized_input(melspec_wasm: Path, tmp_path: Path) -> None:
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path, memory_limit_bytes=8 * 2**20) as frontend:
        assert frontend.log_mel(np.zeros(SPEC.clip_samples, dtype=np.float32)).shape[1] == SPEC.clip_frames
        with pytest.raises(FrontendError, match="out of memory"):
            frontend.log_mel(np.zeros(120 * SPEC.sample_rate_hz, dtype=np.float32))


def test_module_with_imports_is_refused(tmp_path: Path) -> None:
    wasm = _fake_module(tmp_path, imports='(import "wasi_snapshot_preview1" "fd_write" '
                                          "(func (param i32 i32 i32 i32) (result i32)))")
    with pytest.raises(FrontendError, match="must import nothing"):
        MelFrontend.load(wasm, spec=SPEC, cache_dir=tmp_path / "cache")


def test_real_module_imports_nothing(melspec_wasm: Path) -> None:
    module = wasmtime.Module(wasmtime.Engine(), melspec_wasm.read_bytes())
    assert list(module.imports) == []
    assert "memory" in {e.name for e in module.exports}


# -- refusals with messages -------------------------------------------------------------------------
def test_wrong_abi_version_is_refused(tmp_path: Path) -> None:
    wasm = _fake_module(tmp_path, abi=ABI_VERSION + 98)
    with pytest.raises(FrontendError, match=f"ABI version {ABI_VERSION + 98}, this host speaks {ABI_VERSION}"):
        MelFrontend.load(wasm, spec=SPEC, cache_dir=tmp_path / "cache")


def test_missing_exports_are_named(tmp_path: Path) -> None:
    wasm = tmp_path / "empty.wasm"
    wasm.write_bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1))'))
    with pytest.raises(FrontendError, match="missing exports.*melspec_compute"):
        MelFrontend.load(wasm, spec=SPEC, cache_dir=tmp_path / "cache")


def test_invalid_and_missing_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wasm"
    garbage.write_bytes(b"\0asm not really")
    with pytest.raises(FrontendError, match="garbage.wasm: not a valid WebAssembly module"):
        MelFrontend.load(garbage, spec=SPEC, cache_dir=tmp_path / "cache")
    with pytest.raises(FrontendError, match="missing.wasm: cannot read.*wasm build"):
        MelFrontend.load(tmp_path / "missing.wasm", spec=SPEC, cache_dir=tmp_path / "cache")


def test_module_refuses_an_invalid_field(melspec_wasm: Path, tmp_path: Path) -> None:
    fields = {**dataclasses.asdict(SPEC), "fmax_hz": 10.0}  # below fmin_hz; FeatureSpec would refuse it first
    with pytest.raises(FrontendError, match="fmax_hz must be finite and > fmin_hz") as info:
        MelFrontend.load(melspec_wasm, spec=SimpleNamespace(**fields), cache_dir=tmp_path)
    assert info.value.code == -1


def test_non_finite_audio_names_the_sample(melspec_wasm: Path, tmp_path: Path) -> None:
    samples = np.zeros(5000, dtype=np.float32)
    samples[4321] = np.inf
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path) as frontend:
        with pytest.raises(FrontendError, match="not finite at sample 4321"):
            frontend.log_mel(samples)
        with pytest.raises(ValueError, match="mono"):
            frontend.log_mel(np.zeros((2, 100), dtype=np.float32))
        with pytest.raises(ValueError, match="empty"):
            frontend.log_mel(np.zeros(0, dtype=np.float32))


def test_uncentred_spec_needs_n_fft_samples(melspec_wasm: Path, tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, center=False)
    with MelFrontend.load(melspec_wasm, spec=spec, cache_dir=tmp_path) as frontend:
        with pytest.raises(FrontendError, match="center=0 needs at least n_fft=1024 samples"):
            frontend.log_mel(np.zeros(1000, dtype=np.float32))


# -- compiled-module cache --------------------------------------------------------------------------
def test_compiled_module_is_cached_on_disk(melspec_wasm: Path, tmp_path: Path, rng: np.random.Generator) -> None:
    samples = (0.1 * rng.standard_normal(SPEC.sample_rate_hz)).astype(np.float32)
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path) as cold:
        cold_out = cold.log_mel(samples)
        assert not cold.module_cache_hit
    assert len(list(tmp_path.glob("*.cwasm"))) == 1
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path) as warm:
        assert warm.module_cache_hit
        np.testing.assert_array_equal(warm.log_mel(samples), cold_out)
    # another engine setting is another compiled module
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path, timeout_s=None) as unguarded:
        assert not unguarded.module_cache_hit
        np.testing.assert_array_equal(unguarded.log_mel(samples), cold_out)
    assert len(list(tmp_path.glob("*.cwasm"))) == 2


def test_damaged_cache_entry_is_recompiled(melspec_wasm: Path, tmp_path: Path) -> None:
    MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path).close()
    (entry,) = tmp_path.glob("*.cwasm")
    entry.write_bytes(b"damaged")
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path) as frontend:
        assert not frontend.module_cache_hit
        assert frontend.log_mel(np.zeros(320, dtype=np.float32)).shape == (SPEC.n_mels, 2)
    assert entry.read_bytes() != b"damaged"


def test_cache_key_depends_on_module_and_settings() -> None:
    key = module_cache_key(b"module a", engine_flags="epoch=True;fuel=False")
    assert key == module_cache_key(b"module a", engine_flags="epoch=True;fuel=False")
    assert key != module_cache_key(b"module b", engine_flags="epoch=True;fuel=False")
    assert key != module_cache_key(b"module a", engine_flags="epoch=False;fuel=False")


# -- array contract ------------------------------------------------------------------------------
def test_log_mel_returns_fresh_arrays_for_any_length(melspec_wasm: Path, tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    clips = [(0.2 * rng.standard_normal(n)).astype(np.float32) for n in (SPEC.clip_samples, 1234, 7 * 32000, 1)]
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path) as frontend:
        first = [frontend.log_mel(clip) for clip in clips]
        for clip, out in zip(clips, first, strict=True):
            assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.owndata
            assert out.shape == (SPEC.n_mels, SPEC.n_frames(clip.size))
        first[0][:] = 0.0  # the caller owns its copy
        again = [frontend.log_mel(clip) for clip in reversed(clips)][::-1]
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path) as fresh:
        for clip, out in zip(clips, again, strict=True):
            np.testing.assert_array_equal(out, fresh.log_mel(clip))
    float64 = clips[1].astype(np.float64)
    with MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path) as frontend:
        np.testing.assert_array_equal(frontend.log_mel(float64), again[1])


def test_close_stops_the_ticker_and_the_frontend(melspec_wasm: Path, tmp_path: Path) -> None:
    frontend = MelFrontend.load(melspec_wasm, spec=SPEC, cache_dir=tmp_path)
    assert frontend.abi_version == ABI_VERSION
    ticker = frontend._ticker
    assert ticker is not None and ticker._thread.is_alive()
    frontend.close()
    frontend.close()
    assert not ticker._thread.is_alive()
    with pytest.raises(FrontendError, match="closed"):
        frontend.log_mel(np.zeros(10, dtype=np.float32))


def test_frontend_imports_stay_thin() -> None:
    """The device imports edge_runtime.frontend without the lab stack."""
    code = ("import sys, edge_runtime.frontend; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'birdlab', 'librosa', 'tensorflow', 'pandas', 'matplotlib', 'scipy'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
