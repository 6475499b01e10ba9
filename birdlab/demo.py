"""`python -m birdlab demo`: the main job, offline, on the embedded synthetic dataset.

The demo is a list of steps; each step is a function that takes the DemoContext, does
one job through the library, prints a short summary and may add to the context for
later steps. It always finishes offline on 2 CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from birdlab import paths
from birdlab.agreement.edge_demo import run_edge_demo
from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.data.summary import summarize_dataset
from birdlab.data.synth import SynthConfig, ensure_synthetic
from birdlab.export.bundle_writer import export_run
from birdlab.frontend.parity_run import run_parity
from birdlab.frontend.wasm import build_wasm
from birdlab.training.config import demo, tiny
from birdlab.training.run_dir import RunDir
from birdlab.training.train import train


@dataclass
class DemoContext:
    """What the demo steps share: directories and results of earlier steps."""

    data_dir: Path
    quick: bool = False
    results: dict[str, object] = field(default_factory=dict)


def step_dataset(ctx: DemoContext) -> None:
    """Synthesise the embedded default when absent; print the summary table."""

    config = SynthConfig.quick() if ctx.quick else SynthConfig()
    ensure_synthetic(dest=ctx.data_dir, config=config)
    summary = summarize_dataset(ctx.data_dir)
    print(summary.to_text())
    ctx.results["dataset"] = summary


def step_parity(ctx: DemoContext) -> None:
    """Build melspec.wasm when missing; compare librosa and the WASM log-mel on the synthetic soundscapes."""
    import numpy as np

    from edge_runtime.spec import FeatureSpec

    spec = FeatureSpec()
    wasm = build_wasm()
    soundscapes = ctx.data_dir / "train_soundscapes"
    audio: list[Path] = [soundscapes] if soundscapes.is_dir() and any(soundscapes.iterdir()) else []
    extra = None
    if not audio:
        print(f"no soundscapes in {soundscapes}: comparing on a synthetic test signal (chirp + noise) instead")
        rng = np.random.default_rng(0)
        t = np.arange(spec.clip_samples) / spec.sample_rate_hz
        signal = 0.4 * np.sin(2 * np.pi * (500 * t + 1200 * t**2)) + 0.05 * rng.standard_normal(t.size)
        extra = {"<synthetic chirp + noise, 5 s>": signal.astype(np.float32)}
    out_dir = paths.INTERIM_DIR / "parity"
    report = run_parity(audio, out_dir=out_dir, spec=spec, wasm_path=wasm, extra_signals=extra)
    print(report.describe())
    print(f"report: {out_dir / 'report.html'}")
    ctx.results["parity"] = report

def step_train(ctx: DemoContext) -> None:
    """Train the demo preset (tiny with --quick) into runs/demo/; report the headline (clip-level macro AP of the
    held-out synthetic recordings) and the soundscape row-wise F1 beside its all-nocall baseline."""

    result = train(config=tiny() if ctx.quick else demo(), data_dir=ctx.data_dir, out_dir=paths.RUNS_DIR / "demo")
    print(result.describe())
    ctx.results["train"] = result
    ctx.results["run_dir"] = result.run_dir


def step_export(ctx: DemoContext) -> None:
    """Export runs/demo to export/demo (f32/f16/int8 TFLite, op audit vs TF Lite 1.15, Keras equivalence, bundle)."""

    run_dir = Path(str(ctx.results.get("run_dir", paths.RUNS_DIR / "demo")))
    result = export_run(run_dir=run_dir, out_dir=paths.EXPORT_DIR / "demo", variant="f32")
    print(result.to_text())
    print(f"bundle: {result.bundle_dir} ({'ok' if result.ok else 'shipped variant misses a target'})")
    ctx.results["export"] = result
    ctx.results["bundle_dir"] = result.bundle_dir


def step_edge(ctx: DemoContext) -> None:
    """Reference receiver + `python -m edge_runtime run` over the synthetic soundscapes with export/demo;
    print detections received vs expected (the lab's: librosa + Keras on the same windows and threshold)."""

    bundle_dir = Path(str(ctx.results.get("bundle_dir", paths.EXPORT_DIR / "demo")))
    run_dir = Path(str(ctx.results.get("run_dir", paths.RUNS_DIR / "demo")))
    if not (bundle_dir / "manifest.json").exists() or not RunDir(run_dir).model_path.exists():
        print(f"skipped: needs the bundle {bundle_dir} and the run {run_dir} (the train and export steps)")
        return
    soundscapes = [s.path for _, s in sorted(BirdCLEF2021(ctx.data_dir).soundscapes().items())]
    result = run_edge_demo(bundle_dir=bundle_dir, run_dir=run_dir, audio_paths=soundscapes,
                           work_dir=paths.INTERIM_DIR / "edge_demo")
    status = result.status
    print(f"edge runtime: {len(soundscapes)} soundscape(s), {status['windows_processed']} windows, "
          f"realtime factor {status['realtime_factor']:.0f} (whole process: {result.wall_seconds:.1f} s)")
    print(f"receiver stored {result.receiver_count} detection(s)")
    print(result.agreement.describe())
    ctx.results["edge"] = result


DemoStep = Callable[[DemoContext], None]

# The demo runs these in order. Add a step here (and its function above).
STEPS: list[tuple[str, DemoStep]] = [
    ("dataset", step_dataset),
    ("parity", step_parity),
    ("train", step_train),
    ("export", step_export),
    ("edge", step_edge),  # keep last: it needs the run and the exported bundle
]


def run_demo(*, data_dir: Path | None = None, quick: bool = False) -> int:
    """Run every demo step; returns the exit code (0 when all steps succeed)."""
    ctx = DemoContext(data_dir=Path(data_dir) if data_dir else paths.SYNTHETIC_DIR, quick=quick)
    for name, step in STEPS:
        start = time.perf_counter()
        print(f"\n== {name} ==", flush=True)
        step(ctx)
        print(f"({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    return 0
