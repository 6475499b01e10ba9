"""Issue 6, item 8: the edge runtime's detections equal the lab's (librosa features + the Keras model, same
windows and threshold), end to end: reference receiver and `python -m edge_runtime run` as processes.

Two bundles: the tone detector (always; tones make the decisions non-trivial) over tone audio and the
quick synthetic soundscape, and the demo bundle (export/demo with runs/demo) over data/synthetic once
`python -m birdlab demo` has made them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from edge_bundle_factory import build_tone_keras, session_bundle, tone_sequence, write_wav

from birdlab import paths
from birdlab.agreement.edge_demo import run_edge_demo
from birdlab.data.birdclef2021 import BirdCLEF2021
from edge_runtime.spec import FeatureSpec


def _soundscapes(root: Path) -> list[Path]:
    return [s.path for _, s in sorted(BirdCLEF2021(root).soundscapes().items())]


@pytest.mark.slow
def test_tone_detector_decisions_equal_the_lab(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                               synthetic_quick: Path) -> None:
    bundle_dir = session_bundle(tmp_path_factory)
    spec = FeatureSpec()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    build_tone_keras(spec=spec, n_outputs=4, batch_size=None).save(run_dir / "model.keras")
    tones = write_wav(tmp_path / "tones.wav", tone_sequence([0, None, 1, 2, 3, 3, None], spec=spec)[: -spec.clip_samples // 2],
                      sample_rate_hz=spec.sample_rate_hz)
    result = run_edge_demo(bundle_dir=bundle_dir, run_dir=run_dir, audio_paths=[tones, *_soundscapes(synthetic_quick)],
                           work_dir=tmp_path / "edge_demo")
    assert len(result.agreement.expected) >= 5, "the tones must give decisions, or the comparison proves nothing"
    assert result.agreement.equal, result.agreement.describe()
    assert result.receiver_count == len(result.agreement.received), "each detection stored once"
    assert result.status["files_failed"] == 0 and result.status["outbox_depth"] == 0


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory, synthetic_quick: Path) -> tuple[Path, Path, Path]:
    """What `python -m birdlab demo --quick` makes: the tiny preset trained on the quick synthetic dataset and
    exported to a bundle (f32), in temporary directories: (run_dir, bundle_dir, data_dir)."""
    from birdlab.export.bundle_writer import export_run
    from birdlab.training.config import tiny
    from birdlab.training.train import train

    root = tmp_path_factory.mktemp("quick_demo")
    result = train(config=tiny(), data_dir=synthetic_quick, out_dir=root / "runs" / "demo",
                   cache_root=root / "interim", progress=False)
    exported = export_run(run_dir=result.run_dir, out_dir=root / "export" / "demo", variant="f32")
    return result.run_dir, exported.bundle_dir, synthetic_quick


@pytest.mark.slow
def test_trained_demo_bundle_decisions_equal_the_lab(quick_demo: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A really trained model (not the tone detector): the edge runtime's detections on the synthetic
    soundscapes equal librosa + Keras on the same windows and threshold."""
    run_dir, bundle_dir, data_dir = quick_demo
    result = run_edge_demo(bundle_dir=bundle_dir, run_dir=run_dir, audio_paths=_soundscapes(data_dir),
                           work_dir=tmp_path / "edge_demo")
    print(result.agreement.describe(), f"(closest probability to the threshold: {result.margin:.2e})")
    assert result.agreement.expected, "the trained model must detect something, or the comparison proves nothing"
    assert result.agreement.equal, result.agreement.describe()
    assert result.receiver_count == len(result.agreement.received)


@pytest.mark.slow
def test_full_demo_bundle_decisions_equal_the_lab(tmp_path: Path) -> None:
    """The full demo's bundle (24 species, data/synthetic), when `python -m birdlab demo` has made it here;
    CI checks the same path with the quick demo above."""
    bundle_dir, run_dir = paths.EXPORT_DIR / "demo", paths.RUNS_DIR / "demo"
    if not (bundle_dir / "manifest.json").exists() or not (run_dir / "model.keras").exists():
        pytest.skip("no full demo bundle here (run `make demo`); the quick-demo test covers this path")
    soundscapes = _soundscapes(paths.SYNTHETIC_DIR)
    if not soundscapes:
        pytest.skip("no synthetic soundscapes: run `python -m birdlab demo` first")
    result = run_edge_demo(bundle_dir=bundle_dir, run_dir=run_dir, audio_paths=soundscapes,
                           work_dir=tmp_path / "edge_demo")
    print(result.agreement.describe(), f"(closest probability to the threshold: {result.margin:.2e})")
    assert result.agreement.equal, result.agreement.describe()
    assert result.receiver_count == len(result.agreement.received)
