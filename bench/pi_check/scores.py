"""Raw per-window log-mel and model outputs of a bundle over audio files, as `run` computes them.

`python -m bench.pi_check.scores --bundle DIR --audio-root DIR --list FILE [--list FILE] --out FILE.npz`

Detections carry confidences rounded to 6 decimals and only above the threshold; the pi-check compares
probabilities on these unrounded float32 outputs (every window, every label) and the log-mel the WASM
frontend computed. Imports only what edge_runtime may (numpy, wasmtime, the TFLite package).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edge_runtime.audio import load_audio
from edge_runtime.bundle import open_bundle
from edge_runtime.frontend import MelFrontend
from edge_runtime.inference import TFLiteModel
from edge_runtime.windows import sliding_windows


def file_scores(path: Path, *, frontend: MelFrontend, model: TFLiteModel, clip_samples: int,
                sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-to-back windows of one file -> (log-mel float32 (n_windows, n_mels, n_frames),
    outputs float32 (n_windows, n_labels))."""
    samples = load_audio(path, sample_rate_hz=sample_rate_hz)
    features, outputs = [], []
    for window in sliding_windows([samples], clip_samples=clip_samples, step_samples=clip_samples):
        log_mel = frontend.log_mel(window.samples)
        features.append(log_mel)
        outputs.append(model.predict(log_mel[np.newaxis, :, :, np.newaxis])[0])
    return np.stack(features), np.stack(outputs).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pi_check.scores", description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--audio-root", type=Path, required=True, help="the list's paths are relative to it")
    parser.add_argument("--list", type=Path, action="append", required=True, help="file of relative paths")
    parser.add_argument("--out", type=Path, required=True, help=".npz: '<path>|features' and '<path>|outputs'")
    parser.add_argument("--frontend-timeout-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    bundle = open_bundle(args.bundle)
    spec = bundle.spec
    model = TFLiteModel.load(bundle.model_path)
    arrays: dict[str, np.ndarray] = {}
    with MelFrontend.load(bundle.wasm_path, spec=spec, timeout_s=args.frontend_timeout_seconds) as frontend:
        for list_file in args.list:
            for rel in list_file.read_text(encoding="utf-8").split():
                features, outputs = file_scores(args.audio_root / rel, frontend=frontend, model=model,
                                                clip_samples=spec.clip_samples, sample_rate_hz=spec.sample_rate_hz)
                arrays[f"{rel}|features"], arrays[f"{rel}|outputs"] = features, outputs
    np.savez_compressed(args.out, **arrays)
    print(f"scores: {len(arrays) // 2} files -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
