"""`python -m birdlab bench melspec`: librosa vs the WASM frontend on the same 5-s clips.

One process, default spec unless told otherwise; librosa and WASM passes alternate so that both see
the same machine load. Figures (milliseconds, medians over repeats):
librosa_ms and wasm_ms per clip, ratio = wasm_ms / librosa_ms (target <= 1.0), compile_ms (cold
load: compile the .wasm to machine code) and cached_start_ms (load from the compiled-module cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from birdlab.features.log_mel import log_mel
from birdlab.frontend.wasm import build_wasm
from edge_runtime.spec import FeatureSpec

DEFAULT_CLIPS = 4
DEFAULT_REPEATS = 5
TARGET_RATIO = 1.0
"""wasm_ms / librosa_ms the frontend should stay under."""


def bench_clips(*, spec: FeatureSpec, n_clips: int, seed: int = 0) -> list[np.ndarray]:
    """Seeded test clips, float32 (spec.clip_samples,): pink-ish noise plus a chirp, peak about -6 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(spec.clip_samples) / spec.sample_rate_hz
    clips = []
    for i in range(n_clips):
        noise = np.cumsum(rng.standard_normal(spec.clip_samples)) * 1e-3
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        f0, f1 = 1000.0 + 500 * i, 8000.0
        chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * spec.clip_seconds)))
        clip = 0.3 * chirp + noise
        clips.append((0.5 * clip / np.max(np.abs(clip))).astype(np.float32))
    return clips


def _pass_ms(fn, clips: list[np.ndarray]) -> float:
    """Milliseconds per clip of one pass over the clips."""
    start = time.perf_counter()
    for clip in clips:
        fn(clip)
    return (time.perf_counter() - start) * 1e3 / len(clips)


def _interleaved_ms(fns: dict[str, Callable[[np.ndarray], object]], clips: list[np.ndarray], *, repeats: int) -> dict[str, list[float]]:
    """Per-clip times of each function, passes alternating so that both see the same machine load."""
    for fn in fns.values():
        fn(clips[0])  # warm-up (imports, first-call allocations)
    timings: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            timings[name].append(_pass_ms(fn, clips))
    return timings


def bench_melspec(
    *,
    out: str | Path | None = None,
    spec: FeatureSpec | None = None,
    wasm_path: str | Path | None = None,
    n_clips: int = DEFAULT_CLIPS,
    repeats: int = DEFAULT_REPEATS,
) -> dict[str, object]:
    """Time librosa and the WASM frontend; return the figures and write them as JSON to `out` if given."""
    from edge_runtime.frontend import MelFrontend

    spec = spec or FeatureSpec()
    wasm = Path(wasm_path) if wasm_path else build_wasm()
    clips = bench_clips(spec=spec, n_clips=n_clips)

    with tempfile.TemporaryDirectory(prefix="birdlab-bench-") as tmp:
        start = time.perf_counter()
        cold = MelFrontend.load(wasm, spec=spec, cache_dir=tmp)
        compile_ms = (time.perf_counter() - start) * 1e3
        cold.close()
        start = time.perf_counter()
        frontend = MelFrontend.load(wasm, spec=spec, cache_dir=tmp)
        cached_start_ms = (time.perf_counter() - start) * 1e3
        if not frontend.module_cache_hit:
            raise RuntimeError(f"{tmp}: the compiled module was not reused; the module cache is broken")
        with frontend:
            timings = _interleaved_ms({"librosa": lambda clip: log_mel(clip, spec=spec), "wasm": frontend.log_mel},
                                      clips, repeats=repeats)
    librosa_ms = statistics.median(timings["librosa"])
    wasm_ms = statistics.median(timings["wasm"])

    from importlib.metadata import version

    result: dict[str, object] = {
        "librosa_ms": round(librosa_ms, 3),
        "wasm_ms": round(wasm_ms, 3),
        "ratio": round(wasm_ms / librosa_ms, 3),
        "compile_ms": round(compile_ms, 1),
        "cached_start_ms": round(cached_start_ms, 2),
        "target_ratio": TARGET_RATIO,
        "librosa_min_ms": round(min(timings["librosa"]), 3),
        "wasm_min_ms": round(min(timings["wasm"]), 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "clips": n_clips,
        "clip_seconds": spec.clip_seconds,
        "repeats": repeats,
        "spec_hash": spec.spec_hash,
        "wasm_sha256": hashlib.sha256(wasm.read_bytes()).hexdigest(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "versions": {name: version(name) for name in ("numpy", "librosa", "wasmtime")},
    }
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def describe(result: dict[str, object]) -> str:
    """One line for the terminal."""
    return (f"melspec per 5-s clip: librosa {result['librosa_ms']} ms, wasm {result['wasm_ms']} ms, "
            f"ratio {result['ratio']} (target <= {TARGET_RATIO}); compile {result['compile_ms']} ms, "
            f"cached start {result['cached_start_ms']} ms")
