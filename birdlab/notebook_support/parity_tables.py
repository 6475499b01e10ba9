"""The analyses of the parity notebook: the per-file table, the worst cases, and decision agreement.

`birdlab.frontend.parity.run_parity` gives the figures of every file; this module turns them into a table,
recomputes the spectrograms of the worst files, and asks the question that matters on the device:
does the model decide the same thing on WASM features as on librosa features?
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from birdlab.data.birdclef2021 import SHORT_AUDIO_DIR, SOUNDSCAPES_DIR
from birdlab.features.audio import find_audio_files, load_audio
from birdlab.frontend.parity import FileParity, ParityReport, WorstCase, parity_of_samples
from edge_runtime.spec import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd


def parity_audio_files(root: str | Path, *, max_files: int) -> list[Path]:
    """Audio of a BirdCLEF 2021 directory to compare: the soundscapes first, then train_short_audio, sorted.

    At most `max_files`; raises ValueError when the directory holds no audio.
    """

    root = Path(root)
    found = [*find_audio_files([d for d in (root / SOUNDSCAPES_DIR,) if d.is_dir()]),
             *find_audio_files([d for d in (root / SHORT_AUDIO_DIR,) if d.is_dir()])]
    if not found:
        raise ValueError(f"{root}: no audio under {SOUNDSCAPES_DIR}/ or {SHORT_AUDIO_DIR}/")
    return found[:max_files]


def parity_frame(report: ParityReport) -> pd.DataFrame:
    """One row per compared file (`file` = its name, then the figures of birdlab.frontend.parity.FileParity), worst first."""
    import pandas as pd

    columns = ["file", *(field.name for field in dataclasses.fields(FileParity) if field.name != "path")]
    rows = [{"file": Path(f.path).name, **dataclasses.asdict(f)} for f in report.files]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("max_abs_db_error", ascending=False, kind="stable").reset_index(drop=True)


def worst_cases(report: ParityReport, *, count: int, wasm_path: str | Path, spec: FeatureSpec) -> list[WorstCase]:
    """The `count` files with the largest max |dB error|, with both spectrograms recomputed.

    Each case holds librosa's and the WASM frontend's float32 dB arrays, shape (n_mels, n_frames).
    Only file paths are recomputed (in-memory signals of the report are passed over).
    """
    from edge_runtime.frontend import MelFrontend

    ranked = sorted(report.files, key=lambda f: f.max_abs_db_error, reverse=True)
    chosen = [f for f in ranked if Path(f.path).is_file()][:count]
    cases = []
    with MelFrontend.load(wasm_path, spec=spec) as frontend:
        for figures in chosen:
            samples = load_audio(figures.path, sample_rate_hz=spec.sample_rate_hz)
            parity, reference, candidate = parity_of_samples(samples, frontend=frontend, spec=spec, path=figures.path)
            cases.append(WorstCase(parity, reference, candidate))
    return cases


