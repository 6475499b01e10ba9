"""`python -m birdlab parity`: librosa vs the WASM frontend over audio files; writes parity.json and report.html.

The figures and their types are birdlab.frontend.parity's; this module is the command that runs them over
files and writes the two artefacts.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from birdlab.errors import UserError
from birdlab.features.audio import SkipReport, find_audio_files, iter_audio
from birdlab.frontend.parity import (
    MEL_DB_ATOL,
    PARITY_JSON,
    REPORT_HTML,
    REPORT_WORST_FILES,
    FileParity,
    ParityReport,
    WorstCase,
    parity_of_samples,
)
from birdlab.frontend.parity_report import write_report
from birdlab.frontend.wasm import build_wasm
from edge_runtime.frontend import MelFrontend
from edge_runtime.spec import FeatureSpec


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for name in ("numpy", "librosa", "wasmtime", "ziglang"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_parity(
    audio: Sequence[str | Path],
    *,
    out_dir: str | Path,
    spec: FeatureSpec | None = None,
    tolerance_db: float = MEL_DB_ATOL,
    wasm_path: str | Path | None = None,
    extra_signals: dict[str, np.ndarray] | None = None,
) -> ParityReport:
    """Run librosa and the WASM frontend over every audio file; write parity.json and report.html.

    audio: files, or directories searched for wav/flac/ogg/mp3. extra_signals: named in-memory
    signals (float32 (n,) at spec.sample_rate_hz) compared as well. wasm_path: default is the cached
    build of the current sources (built when missing). Unreadable files are listed as skipped.
    """

    spec = spec or FeatureSpec()
    if tolerance_db < 0:
        raise UserError(f"--tolerance-db must be >= 0 (got {tolerance_db})")
    files = find_audio_files(audio)
    if not files and not extra_signals:
        raise UserError(f"no audio files (wav/flac/ogg/mp3) found in {[str(a) for a in audio]}")
    missing = [str(f) for f in files if not Path(f).exists()]
    if missing:
        raise UserError(f"audio path(s) not found: {missing}")
    wasm = Path(wasm_path) if wasm_path else build_wasm()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    results: list[FileParity] = []
    worst: list[WorstCase] = []

    def keep(case: WorstCase) -> None:
        worst.append(case)
        worst.sort(key=lambda c: c.parity.max_abs_db_error, reverse=True)
        del worst[REPORT_WORST_FILES:]

    skips = SkipReport()
    with MelFrontend.load(wasm, spec=spec) as frontend:
        signals = iter_audio(files, sample_rate_hz=spec.sample_rate_hz, report=skips)
        for path, samples in [*signals, *(extra_signals or {}).items()]:
            parity, reference, candidate = parity_of_samples(
                np.asarray(samples, dtype=np.float32), frontend=frontend, spec=spec, path=str(path))
            results.append(parity)
            keep(WorstCase(parity, reference, candidate))

    report = ParityReport(
        files=tuple(results),
        tolerance_db=tolerance_db,
        spec=spec,
        wasm_path=str(wasm),
        wasm_sha256=hashlib.sha256(wasm.read_bytes()).hexdigest(),
        skipped=tuple(skips.skipped),
        versions=_versions(),
    )
    (out / PARITY_JSON).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    write_report(out / REPORT_HTML, report=report, worst=worst)
    return report
