"""`python -m birdlab bench melspec`: the JSON it writes and how its figures relate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from birdlab.cli import main
from birdlab.frontend.bench import bench_clips
from edge_runtime.spec import FeatureSpec

KEYS = {"librosa_ms", "wasm_ms", "ratio", "compile_ms", "cached_start_ms"}


def test_bench_writes_the_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "melspec.json"
    assert main(["bench", "melspec", "--out", str(out), "--clips", "1", "--repeats", "1"]) == 0
    assert "ratio" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert KEYS <= set(result)
    assert all(result[k] > 0 for k in KEYS)
    assert result["ratio"] == pytest.approx(result["wasm_ms"] / result["librosa_ms"], rel=0.01, abs=0.002)
    assert result["spec_hash"] == FeatureSpec().spec_hash


def test_bench_clips_are_seeded_and_in_range() -> None:
    spec = FeatureSpec()
    first, again = bench_clips(spec=spec, n_clips=2), bench_clips(spec=spec, n_clips=2)
    for a, b in zip(first, again, strict=True):
        assert a.shape == (spec.clip_samples,) and a.dtype.name == "float32"
        assert (a == b).all() and abs(a).max() == pytest.approx(0.5)

