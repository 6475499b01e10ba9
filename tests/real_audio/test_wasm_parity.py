"""The WASM log-mel frontend agrees with librosa within MEL_DB_ATOL on real recordings.

Every robustness file (35: each format, rate and channel count) and a seeded subsample of the species
recordings (SPECIES_SAMPLE of 302; the whole set, 337 files, is one `python -m birdlab parity --audio
$BIRDLAB_REAL_AUDIO --out DIR` away and measured 1.5e-5 dB at most, see README)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from birdlab.frontend.parity import MEL_DB_ATOL, PARITY_JSON
from birdlab.frontend.parity_run import run_parity

SEED = 2021
SPECIES_SAMPLE = 60


@pytest.mark.slow
def test_wasm_parity_on_real_files(real_audio: Path, robustness_sources: list[dict[str, str]],
                                   species_sources: list[dict[str, str]], tmp_path: Path) -> None:
    picked = np.random.default_rng(SEED).choice(len(species_sources), SPECIES_SAMPLE, replace=False)
    files = [real_audio / "robustness" / r["file"] for r in robustness_sources]
    files += [real_audio / "species" / species_sources[int(i)]["file"] for i in sorted(picked)]
    report = run_parity(files, out_dir=tmp_path / "parity")
    summary = report.summary()
    print(f"{len(files)} real files, {summary['total_seconds']:.0f} s of audio: max |dB error| "
          f"{summary['max_abs_db_error']:.2e} ({summary['worst_file']}), "
          f"{100 * summary['fraction_bit_identical']:.1f} % of cells bit-identical")
    assert not report.skipped, report.skipped
    assert len(report.files) == len(files) == len(robustness_sources) + SPECIES_SAMPLE
    over = [(f.path, f.max_abs_db_error) for f in report.files if not f.max_abs_db_error <= MEL_DB_ATOL]
    assert not over, over
    assert report.passed and json.loads((tmp_path / "parity" / PARITY_JSON).read_text())["summary"]["passed"]
