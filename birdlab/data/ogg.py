"""OGG Vorbis files as BirdCLEF 2021 ships its audio, written safely: block by block, through a .part file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile

OGG_WRITE_BLOCK_FRAMES = 65536
"""Vorbis is written block by block: libvorbis allocates (alloca) 4 bytes a sample of one write on the
stack, so one write of more than ~65 s at 32 kHz overflows an 8 MB stack and the process segfaults
(measured: 60 s writes, 70 s crashes; libsndfile issue #1095, python-soundfile #396)."""


def write_ogg_vorbis(path: Path, samples: np.ndarray, *, sample_rate_hz: int) -> Path:
    """Write float32 mono `samples` (shape (n,)) as OGG Vorbis to `path`, atomically (via <name>.part)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with soundfile.SoundFile(str(part), "w", sample_rate_hz, 1, format="OGG", subtype="VORBIS") as out:
        for start in range(0, samples.size, OGG_WRITE_BLOCK_FRAMES):
            out.write(samples[start:start + OGG_WRITE_BLOCK_FRAMES])
    os.replace(part, path)
    return path
