"""Second host: the same melspec.wasm under Node.js's built-in WASI gives bit-identical output to wasmtime."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from birdlab import paths
from edge_runtime.spec import FeatureSpec

NODE = shutil.which("node")
NODE_HOST = paths.REPO_ROOT / "cpp_melspec" / "hosts" / "node_melspec.mjs"
NODE_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(NODE is None, reason="node (Node.js >= 20 with node:wasi) is not installed")

SPECS = {
    "default": FeatureSpec(),
    "reflect_htk_nfft960": dataclasses.replace(FeatureSpec(), pad_mode="reflect", htk=True, mel_norm=None, n_fft=960,
                                               win_length=800, hop_length=480, n_mels=40),
}


def _signals(spec: FeatureSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(spec.sample_rate_hz) / spec.sample_rate_hz
    return {
        "one_second_noise": 0.3 * rng.standard_normal(spec.sample_rate_hz),
        "chirp_odd_length": 0.5 * np.sin(2 * np.pi * (200 * t + 6000 * t**2))[: spec.sample_rate_hz - 7],
        "short_quiet": 1e-4 * rng.standard_normal(spec.n_fft // 3),
    }


def _run_node(wasm: Path, spec: FeatureSpec, samples: np.ndarray, tmp_path: Path) -> np.ndarray:
    spec_path = spec.save(tmp_path / "feature_spec.json")
    in_path, out_path = tmp_path / "in.f32", tmp_path / "out.f32"
    samples.astype("<f4").tofile(in_path)
    result = subprocess.run([NODE, str(NODE_HOST), str(wasm), str(spec_path), str(in_path), str(out_path)],
                            capture_output=True, text=True, timeout=NODE_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr
    n_frames = int(result.stdout.strip())
    return np.fromfile(out_path, dtype="<f4").reshape(spec.n_mels, n_frames)


@pytest.mark.parametrize("spec_name", list(SPECS))
def test_node_output_is_bit_identical_to_wasmtime(spec_name: str, melspec_wasm: Path, frontend_for,
                                                  rng: np.random.Generator, tmp_path: Path) -> None:
    spec = SPECS[spec_name]
    for name, signal in _signals(spec, rng).items():
        samples = signal.astype(np.float32)
        wasmtime_out = frontend_for(spec).log_mel(samples)
        node_out = _run_node(melspec_wasm, spec, samples, tmp_path)
        assert node_out.shape == wasmtime_out.shape, name
        assert np.array_equal(node_out.view(np.uint32), wasmtime_out.view(np.uint32)), name


def test_node_host_reports_module_errors(melspec_wasm: Path, tmp_path: Path) -> None:
    spec = FeatureSpec()
    samples = np.full(1000, np.nan, dtype=np.float32)
    spec_path = spec.save(tmp_path / "feature_spec.json")
    samples.tofile(tmp_path / "in.f32")
    result = subprocess.run([NODE, str(NODE_HOST), str(melspec_wasm), str(spec_path), str(tmp_path / "in.f32"),
                             str(tmp_path / "out.f32")], capture_output=True, text=True, timeout=NODE_TIMEOUT_S,
                            check=False)
    assert result.returncode == 1
    assert "not finite at sample 0" in result.stderr
