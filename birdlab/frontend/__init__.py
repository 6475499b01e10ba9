"""Stage 3, frontend: the C++ log-mel compiled to WebAssembly, its speed against librosa, and parity (features
of WASM vs librosa) as figures, a command and a report (figures in `birdlab.frontend.figures`)."""

from birdlab.frontend.bench import bench_melspec
from birdlab.frontend.parity import MEL_DB_ATOL, FileParity, ParityReport, WorstCase, parity_of_samples
from birdlab.frontend.parity_run import run_parity
from birdlab.frontend.wasm import build_wasm

__all__ = [
    "MEL_DB_ATOL", "FileParity", "ParityReport", "WorstCase", "bench_melspec", "build_wasm", "parity_of_samples",
    "run_parity",
]
