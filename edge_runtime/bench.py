"""`python -m edge_runtime bench`: per-window cost of the WASM frontend and the TFLite model, load times, peak RSS.

Figures (all one thread, the process pinned to one CPU where the OS allows):
frontend_ms_per_window and model_ms_per_window (medians over `windows` seeded noise windows of the
per-thread CPU time, so other processes on a shared machine do not inflate them; the wall-clock
medians are reported too, as *_wall_ms_per_window and realtime_factor_wall),
window_seconds, realtime_factor = window_seconds / (frontend + model time), peak_rss_mb (the
process's maximum resident set, stdlib `resource`), load_cold_ms (bundle verified, wasm
compiled into an empty cache, model loaded) and load_cached_ms (the same with the compiled
module cached). Run it in its own process: the peak RSS is that of the whole process.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.bundle import open_bundle
from edge_runtime.frontend import MelFrontend
from edge_runtime.inference import TFLiteModel

DEFAULT_WINDOWS = 50
WARMUP_WINDOWS = 3
BENCH_SEED = 20210401
NOISE_AMPLITUDE = 0.1
RTF_TARGET = 500.0
"""Target: at least 500x faster than real time on one core."""
PEAK_RSS_TARGET_MB = 120.0


def pin_to_one_cpu() -> int | None:
    """Restrict this process to one CPU (the first it may use); returns it, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _load(bundle_path: str | Path, *, cache_dir: Path, interpreter: str,
          frontend_timeout_seconds: float) -> tuple[float, Any, MelFrontend, TFLiteModel]:
    start = time.perf_counter()
    bundle = open_bundle(bundle_path)
    frontend = MelFrontend.load(bundle.wasm_path, spec=bundle.spec, cache_dir=cache_dir,
                                timeout_s=frontend_timeout_seconds)
    model = TFLiteModel.load(bundle.model_path, num_threads=1, backend=interpreter)
    return (time.perf_counter() - start) * 1000, bundle, frontend, model


def run_bench(bundle_path: str | Path, *, windows: int = DEFAULT_WINDOWS, interpreter: str = "auto",
              frontend_timeout_seconds: float = 0.5, out: Path | None = None, pin_cpu: bool = True) -> dict[str, Any]:
    """Measure the bundle on this machine; returns the figures (and writes them to `out` as JSON)."""
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")
    cpu = pin_to_one_cpu() if pin_cpu else None
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        cache_dir = Path(tmp) / "wasm"
        load_cold_ms, _, frontend, model = _load(bundle_path, cache_dir=cache_dir, interpreter=interpreter,
                                                 frontend_timeout_seconds=frontend_timeout_seconds)
        frontend.close()
        load_cached_ms, bundle, frontend, model = _load(bundle_path, cache_dir=cache_dir, interpreter=interpreter,
                                                        frontend_timeout_seconds=frontend_timeout_seconds)
        if not frontend.module_cache_hit:
            raise RuntimeError("the compiled wasm module was not cached; load_cached_ms would be a cold load")
    spec = bundle.spec
    rng = np.random.default_rng(BENCH_SEED)
    frontend_ms, model_ms, frontend_wall_ms, model_wall_ms = [], [], [], []
    for i in range(WARMUP_WINDOWS + windows):
        samples = (NOISE_AMPLITUDE * rng.standard_normal(spec.clip_samples)).astype(np.float32)
        c0, t0 = time.thread_time(), time.perf_counter()
        features = frontend.log_mel(samples)
        c1, t1 = time.thread_time(), time.perf_counter()
        model.predict(features[np.newaxis, :, :, np.newaxis])
        c2, t2 = time.thread_time(), time.perf_counter()
        if i >= WARMUP_WINDOWS:
            frontend_ms.append((c1 - c0) * 1000)
            model_ms.append((c2 - c1) * 1000)
            frontend_wall_ms.append((t1 - t0) * 1000)
            model_wall_ms.append((t2 - t1) * 1000)
    frontend.close()
    frontend_median = statistics.median(frontend_ms)
    model_median = statistics.median(model_ms)
    wall_median = statistics.median(frontend_wall_ms) + statistics.median(model_wall_ms)
    realtime_factor = spec.clip_seconds * 1000 / (frontend_median + model_median)
    peak_rss_mb = _peak_rss_mb()
    result: dict[str, Any] = {
        "frontend_ms_per_window": round(frontend_median, 3),
        "model_ms_per_window": round(model_median, 3),
        "window_seconds": spec.clip_seconds,
        "realtime_factor": round(realtime_factor, 1),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "load_cold_ms": round(load_cold_ms, 1),
        "load_cached_ms": round(load_cached_ms, 1),
        "timing": "median per-thread CPU time (time.thread_time): the cost on one core, whatever else runs",
        "frontend_ms_p95": round(float(np.percentile(frontend_ms, 95)), 3),
        "model_ms_p95": round(float(np.percentile(model_ms, 95)), 3),
        "frontend_wall_ms_per_window": round(statistics.median(frontend_wall_ms), 3),
        "model_wall_ms_per_window": round(statistics.median(model_wall_ms), 3),
        "realtime_factor_wall": round(spec.clip_seconds * 1000 / wall_median, 1),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "windows": windows,
        "num_threads": 1,
        "pinned_cpu": cpu,
        "targets": {"realtime_factor_min": RTF_TARGET, "peak_rss_mb_max": PEAK_RSS_TARGET_MB},
        "meets_targets": realtime_factor >= RTF_TARGET and peak_rss_mb <= PEAK_RSS_TARGET_MB,
        "model_id": bundle.model_id,
        "variant": bundle.variant,
        "interpreter": model.backend,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
