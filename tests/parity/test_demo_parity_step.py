"""The demo's parity step on the quick synthetic dataset, and its fallback when there are no soundscapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from birdlab import paths
from birdlab.demo import STEPS, DemoContext, step_parity


def test_parity_is_a_demo_step_after_the_dataset() -> None:
    names = [name for name, _ in STEPS]
    assert names.index("parity") == names.index("dataset") + 1


def test_parity_step_on_synthetic_soundscapes(synthetic_quick: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(paths, "INTERIM_DIR", tmp_path)
    ctx = DemoContext(data_dir=synthetic_quick)
    step_parity(ctx)
    assert "parity PASS: 1 file(s), 30.0 s of audio" in capsys.readouterr().out
    report = json.loads((tmp_path / "parity" / "parity.json").read_text())
    assert Path(report["files"][0]["path"]).parent.name == "train_soundscapes"
    assert ctx.results["parity"].passed


def test_parity_step_without_soundscapes_uses_a_test_signal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(paths, "INTERIM_DIR", tmp_path)
    step_parity(DemoContext(data_dir=tmp_path / "no_dataset"))
    out = capsys.readouterr().out
    assert "comparing on a synthetic test signal" in out and "parity PASS: 1 file(s), 5.0 s" in out
