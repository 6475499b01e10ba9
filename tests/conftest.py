"""Fixtures shared by every test package: a seeded rng and the quick synthetic dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: tests are repeatable."""
    return np.random.default_rng(20210401)


@pytest.fixture(scope="session")
def synthetic_quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick synthetic BirdCLEF 2021 dataset (4 species x 3 recordings, one 30-s soundscape)."""
    from birdlab.data.synth import SynthConfig, synthesize

    dest = tmp_path_factory.mktemp("synthetic_quick")
    synthesize(dest=dest, config=SynthConfig.quick())
    return dest
