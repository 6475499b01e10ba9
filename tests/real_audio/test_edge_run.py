"""`python -m edge_runtime run` over real recordings: every format and rate of the robustness set and real
species calls, into the reference receiver; its decisions equal the lab's (librosa + Keras) on the same windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edge_bundle_factory import build_tone_keras, session_bundle

from birdlab.agreement.edge_demo import run_edge_demo
from edge_runtime.audio import load_audio
from edge_runtime.spec import FeatureSpec

SEED = 2021
SPECIES_FILES = 4


def pick_files(real_audio: Path, robustness: list[dict[str, str]], species: list[dict[str, str]]) -> list[Path]:
    """Seeded: one robustness file per format (wav, mp3, ogg, flac) and SPECIES_FILES species recordings."""
    rng = np.random.default_rng(SEED)
    picked = []
    for fmt in sorted({r["format"] for r in robustness}):
        rows = [r for r in robustness if r["format"] == fmt]
        picked.append(real_audio / "robustness" / rows[int(rng.integers(len(rows)))]["file"])
    for i in rng.choice(len(species), SPECIES_FILES, replace=False):
        picked.append(real_audio / "species" / species[int(i)]["file"])
    return picked


@pytest.mark.slow
def test_edge_run_over_real_files_equals_the_lab(real_audio: Path, robustness_sources: list[dict[str, str]],
                                                 species_sources: list[dict[str, str]], tmp_path: Path,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    spec = FeatureSpec()
    files = pick_files(real_audio, robustness_sources, species_sources)
    assert {f.suffix for f in files} == {".wav", ".mp3", ".ogg", ".flac"}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    build_tone_keras(spec=spec, n_outputs=4, batch_size=None).save(run_dir / "model.keras")
    result = run_edge_demo(bundle_dir=session_bundle(tmp_path_factory), run_dir=run_dir, audio_paths=files,
                           work_dir=tmp_path / "edge")
    windows = sum(int(np.ceil(load_audio(f, sample_rate_hz=spec.sample_rate_hz).size / spec.clip_samples))
                  for f in files)
    print(f"{len(files)} files, {windows} windows; {result.agreement.describe()}; "
          f"closest probability to the threshold {result.margin:.2e}")
    assert (result.status["files_done"], result.status["files_failed"]) == (len(files), 0)
    assert result.status["windows_processed"] == windows
    assert result.agreement.expected, "real audio must give some decisions, or the comparison proves nothing"
    assert result.agreement.equal, result.agreement.describe()
    assert result.receiver_count == len(result.agreement.received), "each detection stored once"
