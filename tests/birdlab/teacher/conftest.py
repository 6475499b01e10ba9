"""Fixtures of tests/birdlab/teacher: tiny teachers built with TensorFlow (RFFT2D inside) and a small
synthetic dataset of real OGG files. Built once per session; do not modify their files."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_teacher  # tests/birdlab/teacher is on pyproject's pytest pythonpath

from birdlab.data.species import load_species
from birdlab.data.synth import SynthConfig, synthesize


@pytest.fixture(scope="session")
def tone_teacher(tmp_path_factory) -> tiny_teacher.TinyTeacher:
    """Label i (after the distractors) answers a tone at TONES_HZ[i]."""
    return tiny_teacher.tone_teacher(tmp_path_factory.mktemp("tone_teacher"), frequencies_hz=tiny_teacher.TONES_HZ,
                                     labels=tiny_teacher.TONE_LABELS)


@pytest.fixture(scope="session")
def other_tone_teacher(tmp_path_factory) -> tiny_teacher.TinyTeacher:
    """Same labels as tone_teacher, other tones: another teacher file (another sha256)."""
    return tiny_teacher.tone_teacher(tmp_path_factory.mktemp("other_tone_teacher"),
                                     frequencies_hz=tuple(f * 1.5 for f in tiny_teacher.TONES_HZ),
                                     labels=tiny_teacher.TONE_LABELS)


@pytest.fixture(scope="session")
def quick_synth_config() -> SynthConfig:
    return SynthConfig.quick()


@pytest.fixture(scope="session")
def quick_dataset(tmp_path_factory, quick_synth_config) -> Path:
    """SynthConfig.quick(): 4 species x 3 recordings (3-5 s) and one 30-s soundscape, OGG Vorbis at 32 kHz."""
    dest = tmp_path_factory.mktemp("synth")
    synthesize(dest=dest, config=quick_synth_config)
    return dest


@pytest.fixture(scope="session")
def synth_species():
    """All 24 species of data/brittany_species.csv (the synthetic voices are seeded per species code)."""
    return load_species()


@pytest.fixture(scope="session")
def synth_teacher(tmp_path_factory, synth_species, quick_synth_config) -> tiny_teacher.TinyTeacher:
    """A tiny teacher that knows the synthetic voices of all 24 species."""
    return tiny_teacher.synth_teacher(tmp_path_factory.mktemp("synth_teacher"), species=synth_species,
                                      seed=quick_synth_config.seed)
