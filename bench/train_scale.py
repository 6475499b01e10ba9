"""Peak memory and epoch time of training as the dataset grows: 1x and 4x the demo's synthetic data.

    python bench/train_scale.py [--out bench/results/train_scale.json] [--recordings-per-species N] [--epochs 3]

For each scale the synthetic dataset (birdlab.data.synth, SynthConfig with recordings_per_species
multiplied by the scale; soundscapes unchanged) is written under --work, its feature cache is
filled by one subprocess, then the demo preset is trained for --epochs epochs (no early stop,
no time budget) in a fresh subprocess that reports its own peak resident set (VmHWM of
/proc/self/status: data preparation from the warm cache, training and evaluation). Seconds
per epoch are the median of the epochs after the first (the first traces the graphs).

The JSON holds both runs and the ratios 4x/1x: peak RSS (target <= 1.3) and seconds per epoch
against clips per epoch (target: linear, time ratio / clip ratio in [0.75, 1.25], i.e. 3-5x
for 4x the clips). `--in-memory-reference` also trains each scale with the training features
read into one array first (the behaviour before the clip store) for comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RSS_RATIO_MAX = 1.3
"""Target: peak RSS at the largest scale <= this times the peak at the base scale."""
LINEAR_TOLERANCE = 0.25
"""Target: (epoch-time ratio) / (clips-per-epoch ratio) within 1 +- this."""


def _peak_rss_mib() -> float:
    """VmHWM of this process, MiB (the peak resident set since it started)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config(epochs: int) -> Any:
    from birdlab.training.config import demo

    return dataclasses.replace(demo(), epochs=epochs, max_train_seconds=None, early_stopping_patience=epochs + 1)


def child_features(args: argparse.Namespace) -> dict[str, Any]:
    """Fill the feature cache of the dataset (every file the run will read)."""
    from birdlab.features.cache import FeatureCache
    from birdlab.training.dataset import prepare_training_data
    from edge_runtime.spec import FeatureSpec

    spec = FeatureSpec()
    start = time.perf_counter()
    data = prepare_training_data(data_dir=Path(args.data), config=_config(args.epochs), spec=spec,
                                 cache=FeatureCache(spec=spec, root=args.cache), progress=False)
    return {"feature_seconds": round(time.perf_counter() - start, 1), "train_clips": len(data.train)}


def child_train(args: argparse.Namespace) -> dict[str, Any]:
    """Train on the warm cache; report this process's peak RSS and the run's timings and counts."""
    import importlib

    train_module = importlib.import_module("birdlab.training.train")  # the module (the package exports the function)

    if args.in_memory:  # the old behaviour: every training clip in one float32 array
        from birdlab.features.store import ClipStore

        prepare = train_module.prepare_training_data

        def prepare_in_memory(**kwargs: Any) -> Any:
            data = prepare(**kwargs)
            data.train.features = ClipStore.from_array(data.train.features.read())
            return data

        train_module.prepare_training_data = prepare_in_memory  # type: ignore[assignment]
    result = train_module.train(config=_config(args.epochs), data_dir=Path(args.data), out_dir=Path(args.run),
                                cache_root=args.cache, progress=False)
    info = json.loads((result.run_dir / "run_info.json").read_text())
    clips = info["clips"]
    batch = _config(args.epochs).batch_size
    epoch_seconds = info["epoch_seconds"]
    return {
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": round(statistics.median(epoch_seconds[1:] or epoch_seconds), 2),
        "clips_per_epoch": (clips["train"] + clips["train_negatives"]) // batch * batch,
        "validation_clips_per_epoch": clips["validation"],
        "train_clips": clips["train"],
        "epochs_run": info["epochs_run"],
        "train_seconds": info["train_seconds"],
    }


def _run_child(mode: str, **options: Any) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode]
    for key, value in options.items():
        if value is True:
            argv.append(f"--{key.replace('_', '-')}")
        elif value not in (None, False):
            argv += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"train_scale child {mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_scale(*, scale: int, base_recordings: int, work: Path, epochs: int, in_memory: bool) -> dict[str, Any]:
    from birdlab.data.synth import SynthConfig, ensure_synthetic

    synth = dataclasses.replace(SynthConfig(), recordings_per_species=base_recordings * scale)
    data = work / f"data-{synth.recordings_per_species}rps"
    start = time.perf_counter()
    ensure_synthetic(dest=data, config=synth)
    synth_seconds = time.perf_counter() - start
    cache = work / "cache"
    features = _run_child("features", data=data, cache=cache, epochs=epochs)
    row: dict[str, Any] = {"scale": scale, "recordings": synth.n_species * synth.recordings_per_species,
                           "recordings_per_species": synth.recordings_per_species,
                           "synth_seconds": round(synth_seconds, 1), **features}
    run = work / "runs" / f"{synth.recordings_per_species}rps"
    row["clip_store"] = _run_child("train", data=data, cache=cache, epochs=epochs, run=run)
    if in_memory:
        row["in_memory"] = _run_child("train", data=data, cache=cache, epochs=epochs, run=f"{run}-in-memory",
                                      in_memory=True)
    print(f"scale {scale}x: {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


def _ratios(base: dict[str, Any], large: dict[str, Any]) -> dict[str, float]:
    return {key: round(large[key] / base[key], 3) for key in ("peak_rss_mib", "seconds_per_epoch", "clips_per_epoch")}


def main(argv: list[str] | None = None) -> int:
    from birdlab.data.synth import SynthConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_scale.json")
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "interim" / "train_scale",
                        help="datasets, feature cache and runs (git-ignored by default)")
    parser.add_argument("--recordings-per-species", type=int, default=SynthConfig().recordings_per_species,
                        help="the base (1x) size; default: the demo's")
    parser.add_argument("--scale", type=int, default=4, help="the larger dataset, in multiples of the base")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--in-memory-reference", action="store_true",
                        help="also train with the training features read into one array (the old behaviour)")
    parser.add_argument("--child", choices=("features", "train"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps((child_features if args.child == "features" else child_train)(args)))
        return 0

    started = time.time()
    rows = [run_scale(scale=s, base_recordings=args.recordings_per_species, work=args.work, epochs=args.epochs,
                      in_memory=args.in_memory_reference) for s in (1, args.scale)]
    ratios = _ratios(rows[0]["clip_store"], rows[1]["clip_store"])
    linearity = ratios["seconds_per_epoch"] / ratios["clips_per_epoch"]
    result: dict[str, Any] = {
        "benchmark": "train_scale",
        "config": f"demo preset, epochs={args.epochs}, no early stop, no time budget",
        "base_recordings_per_species": args.recordings_per_species,
        "demo_recordings_per_species": SynthConfig().recordings_per_species,
        "scales": rows,
        "ratios": ratios,
        "targets": {
            "peak_rss_ratio_max": RSS_RATIO_MAX,
            "peak_rss_holds": ratios["peak_rss_mib"] <= RSS_RATIO_MAX,
            "epoch_time_per_clip_ratio": round(linearity, 3),
            "epoch_time_linear": abs(linearity - 1.0) <= LINEAR_TOLERANCE,
        },
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                    "platform": platform.platform(), "python": platform.python_version(),
                    "note": "timings are wall clock on this machine, which may be shared with other jobs"},
        "wall_seconds": round(time.time() - started, 1),
    }
    if args.in_memory_reference:
        result["ratios_in_memory"] = _ratios(rows[0]["in_memory"], rows[1]["in_memory"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"ratios": ratios, "targets": result["targets"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
