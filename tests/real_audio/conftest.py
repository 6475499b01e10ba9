"""Fixtures of the real-audio tests: the shared recordings, reached through $BIRDLAB_REAL_AUDIO.

The recordings live outside the repository (../shared/real-audio, README there; never copied in).
Every test here skips, with the reason, when the variable is unset or names no such folder; `.ci/run`
sets it when ../shared/real-audio exists.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REAL_AUDIO_ENV = "BIRDLAB_REAL_AUDIO"
SUBSETS = ("robustness", "species")


@pytest.fixture(scope="session")
def real_audio() -> Path:
    """The real-audio root (robustness/ and species/, each with SOURCES.csv), or skip."""
    value = os.environ.get(REAL_AUDIO_ENV, "")
    if not value:
        pytest.skip(f"${REAL_AUDIO_ENV} is not set; point it at a real-audio folder (e.g. ../shared/real-audio, "
                    "see its README) to run the tests on real recordings")
    root = Path(value).resolve()
    missing = [s for s in SUBSETS if not (root / s / "SOURCES.csv").is_file()]
    if missing:
        pytest.skip(f"${REAL_AUDIO_ENV}={value}: no {', '.join(f'{s}/SOURCES.csv' for s in missing)} there")
    return root


def read_sources(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def robustness_sources(real_audio: Path) -> list[dict[str, str]]:
    """robustness/SOURCES.csv rows (file, sample_rate, channels, duration_s, format, ...); every file exists."""
    rows = read_sources(real_audio / "robustness" / "SOURCES.csv")
    absent = [r["file"] for r in rows if not (real_audio / "robustness" / r["file"]).is_file()]
    assert not absent, f"listed in robustness/SOURCES.csv but absent: {absent}"
    return rows


@pytest.fixture(scope="session")
def species_sources(real_audio: Path) -> list[dict[str, str]]:
    """species/SOURCES.csv rows (file, species_scientific, ..., brittany_birdclef2021_code); every file exists."""
    rows = read_sources(real_audio / "species" / "SOURCES.csv")
    absent = [r["file"] for r in rows if not (real_audio / "species" / r["file"]).is_file()]
    assert not absent, f"listed in species/SOURCES.csv but absent: {absent}"
    return rows
