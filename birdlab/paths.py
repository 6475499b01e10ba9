"""Where things live. No side effects at import: nothing here creates a directory.

raw data is immutable (data/raw), derived data goes to data/interim and data/processed.
Relative defaults are resolved against the repository root, not the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
SYNTHETIC_DIR = DATA_DIR / "synthetic"
RAW_BIRDCLEF_DIR = DATA_DIR / "raw" / "birdclef-2021"
INTERIM_DIR = DATA_DIR / "interim"
RUNS_DIR = REPO_ROOT / "runs"
EXPORT_DIR = REPO_ROOT / "export"
BRITTANY_SPECIES_CSV = DATA_DIR / "brittany_species.csv"
BIRDCLEF2021_CODES_TXT = DATA_DIR / "birdclef2021_codes.txt"


def cache_dir() -> Path:
    """User cache for build outputs (wasm, compiled modules, virtualenvs for compat runs).

    $BIRDLAB_CACHE_DIR, else $XDG_CACHE_HOME/birdlab, else ~/.cache/birdlab.
    """
    if os.environ.get("BIRDLAB_CACHE_DIR"):
        return Path(os.environ["BIRDLAB_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "birdlab"
