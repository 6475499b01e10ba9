"""Peak memory of `python -m edge_runtime run` on long inputs: a 48 kHz stereo WAV, an MP3 and raw PCM on stdin.

    python bench/edge_memory.py --bundle DIR_OR_TAR_GZ [--minutes 60] [--reference-minutes 1]
                                [--out bench/results/edge_memory.json]

The inputs are generated in a temporary directory (removed afterwards, never committed): a chirping tone
over noise, at 48 kHz, two channels (the WAV and stdin) or one (the MP3, 48 kHz). Each run is a fresh
process (`file:` source, or `stdin` with --stdin-rate-hz 48000 --stdin-channels 2) delivering to a jsonl sink;
its peak RSS is read from the kernel (wait4's ru_maxrss, the process's high-water mark). The same three runs
on `--reference-minutes` of audio are the reference: memory bounded by design means the long runs peak
where the short ones do (ratio about 1), whatever the length. Writes JSON with, per input, `peak_rss_mb`,
`reference_peak_rss_mb`, `ratio`, `audio_s`, `wall_s`, `windows`, `exit_code`, and `limit_mb` / `within_limit`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 48000
BLOCK_S = 10
LIMIT_MB = 120.0
"""Issue 13.4: peak RSS at most this (the systemd unit's MemoryMax is 300M, the wasm cap and the rest must fit)."""


def signal_blocks(*, minutes: float, channels: int, seed: int = 13) -> Iterator[np.ndarray]:
    """float32 (n, channels) blocks of BLOCK_S seconds: a slow chirp between 1 and 6 kHz over quiet noise."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE_HZ)
    for start in range(0, total, BLOCK_S * RATE_HZ):
        n = min(BLOCK_S * RATE_HZ, total - start)
        t = (start + np.arange(n)) / RATE_HZ
        freq = 3500 + 2500 * np.sin(2 * np.pi * t / 37.0)
        tone = 0.2 * np.sin(2 * np.pi * np.cumsum(freq) / RATE_HZ)
        block = np.stack([tone * (1 - 0.2 * c) + 0.01 * rng.standard_normal(n) for c in range(channels)], axis=1)
        yield block.astype(np.float32)


def write_inputs(directory: Path, *, minutes: float) -> dict[str, Path]:
    """The WAV (48 kHz stereo 16-bit), the MP3 (48 kHz mono) and the raw stdin PCM (S16_LE stereo)."""
    import soundfile

    paths = {"wav": directory / f"long_{minutes:g}min.wav", "mp3": directory / f"long_{minutes:g}min.mp3",
             "stdin": directory / f"long_{minutes:g}min.s16"}
    with soundfile.SoundFile(str(paths["wav"]), "w", RATE_HZ, 2, subtype="PCM_16") as wav, \
            open(paths["stdin"], "wb") as raw:
        for block in signal_blocks(minutes=minutes, channels=2):
            wav.write(block)
            raw.write((np.clip(block, -1, 1) * 32767).astype("<i2").tobytes())
    with soundfile.SoundFile(str(paths["mp3"]), "w", RATE_HZ, 1, format="MP3") as mp3:
        for block in signal_blocks(minutes=minutes, channels=1):
            mp3.write(block)
    return paths


def measure(kind: str, path: Path, *, bundle: str, work: Path) -> dict:
    """One `run` process over path; its peak RSS (MB), wall time, exit code and window count."""
    out = work / f"{kind}-{path.stem}.jsonl"
    status = work / f"{kind}-{path.stem}.status.json"
    args = [sys.executable, "-m", "edge_runtime", "run", "--bundle", bundle, "--sink", f"jsonl:{out}",
            "--outbox", str(work / f"{kind}-{path.stem}.outbox.sqlite"), "--status", str(status),
            "--device-id", "bench"]
    if kind == "stdin":
        args += ["--source", "stdin", "--stdin-rate-hz", str(RATE_HZ), "--stdin-channels", "2"]
    else:
        args += ["--source", f"file:{path}"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
               EDGE_RUNTIME_CACHE_DIR=str(work / "cache"))
    started = time.perf_counter()
    with open(path if kind == "stdin" else os.devnull, "rb") as stdin, open(work / f"{kind}.log", "wb") as log:
        process = subprocess.Popen(args, stdin=stdin, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=REPO_ROOT)
        _, wait_status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(wait_status)
    wall_s = time.perf_counter() - started
    figures = json.loads(status.read_text()) if status.exists() else {}
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(wall_s, 1),
            "exit_code": process.returncode, "windows": figures.get("windows_processed"),
            "audio_s": round(figures.get("audio_seconds", 0.0), 1), "files_failed": figures.get("files_failed")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle directory or .tar.gz (e.g. the demo's)")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--reference-minutes", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "edge_memory.json")
    args = parser.parse_args()
    results: dict = {"limit_mb": LIMIT_MB, "minutes": args.minutes, "reference_minutes": args.reference_minutes,
                     "rate_hz": RATE_HZ, "python": platform.python_version(), "machine": platform.machine(),
                     "inputs": {}}
    with tempfile.TemporaryDirectory(prefix="edge-memory-") as tmp:
        work = Path(tmp)
        short = write_inputs(work, minutes=args.reference_minutes)
        long = write_inputs(work, minutes=args.minutes)
        for kind in ("wav", "mp3", "stdin"):
            reference = measure(kind, short[kind], bundle=args.bundle, work=work)
            figures = measure(kind, long[kind], bundle=args.bundle, work=work)
            figures["input_mb"] = round(long[kind].stat().st_size / 2**20, 1)
            figures["reference_peak_rss_mb"] = reference["peak_rss_mb"]
            figures["ratio"] = round(figures["peak_rss_mb"] / reference["peak_rss_mb"], 3)
            figures["within_limit"] = figures["peak_rss_mb"] <= LIMIT_MB
            results["inputs"][kind] = figures
            print(kind, json.dumps(figures), flush=True)
    results["all_within_limit"] = all(f["within_limit"] and f["exit_code"] == 0 for f in results["inputs"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0 if results["all_within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
