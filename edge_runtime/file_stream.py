"""Read an audio file in blocks, with the same samples as `edge_runtime.audio.load_audio`, in bounded memory.

A 10-minute 32 kHz file is 77 MB as float32; loading it whole (plus its raw bytes) takes a
Raspberry Pi's process past 200 MB. When the file is already at the model's rate and soundfile
is installed, it is decoded block by block instead: no resampling happens, so every sample equals
load_audio's (same libsndfile scaling, same mean over channels). Everything else (another rate,
no soundfile, a WAV whose header soundfile reads differently) goes through load_audio, which
also produces the error messages for broken files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.audio import AudioError, load_audio, parse_wav_header, to_mono

BLOCK_SECONDS = 10.0
"""Seconds of audio decoded at a time."""


class _FileBytes:
    """Just enough of a bytes object over a file (len and slices, read with pread) for the WAV header parser."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: slice) -> bytes:
        start, stop, step = key.indices(self._size)
        if step != 1:
            raise ValueError("only contiguous slices")
        return os.pread(self._fd, max(0, stop - start), start) if stop > start else b""


@dataclass(frozen=True)
class AudioStream:
    """A file's audio as blocks of mono float32 at the model's rate."""

    n_samples: int
    """Total samples (known before reading: the duration sets the file's start time)."""
    blocks: Iterator[np.ndarray]
    """float32 (<= BLOCK_SECONDS * rate,) blocks; raises AudioError for a fault found mid-file."""
    streamed: bool
    """True when decoded block by block; False when load_audio loaded it whole."""


def _whole(path: Path, sample_rate_hz: int) -> AudioStream:
    samples = load_audio(path, sample_rate_hz=sample_rate_hz)
    return AudioStream(n_samples=samples.size, blocks=iter([samples]), streamed=False)


def _wav_header_ok(path: Path) -> int | None:
    """Validate the WAV header as load_audio does (AudioError if broken); returns the data frames it declares."""
    fd = os.open(path, os.O_RDONLY)
    try:
        info = parse_wav_header(path, _FileBytes(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)
    return info.data_bytes // (info.channels * info.bits_per_sample // 8)


def open_audio_stream(path: str | Path, *, sample_rate_hz: int, block_seconds: float = BLOCK_SECONDS) -> AudioStream:
    """The audio of `path`, mono float32 at sample_rate_hz, as load_audio gives it; raises AudioError."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return _whole(path, sample_rate_hz)  # load_audio words the error
    try:
        import soundfile
    except ImportError:
        return _whole(path, sample_rate_hz)
    declared = _wav_header_ok(path) if path.suffix.lower() == ".wav" else None
    try:
        f = soundfile.SoundFile(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError, ValueError):
        return _whole(path, sample_rate_hz)
    if f.samplerate != sample_rate_hz or f.frames <= 0 or (declared is not None and declared != f.frames):
        f.close()
        return _whole(path, sample_rate_hz)
    block = max(1, int(block_seconds * sample_rate_hz))

    def blocks() -> Iterator[np.ndarray]:
        with f:
            while True:
                try:
                    data = f.read(block, dtype="float32", always_2d=True)
                except (RuntimeError, soundfile.LibsndfileError, ValueError) as exc:
                    raise AudioError(path, f"cannot decode ({exc}); the file is corrupt, truncated or not audio") from None
                if data.shape[0] == 0:
                    return
                mono = np.ascontiguousarray(to_mono(data.T), dtype=np.float32)
                if not np.isfinite(mono).all():
                    bad = int(np.count_nonzero(~np.isfinite(mono)))
                    raise AudioError(path, f"{bad} samples are NaN or infinite; the recorder or converter is faulty")
                yield mono

    return AudioStream(n_samples=int(f.frames), blocks=blocks(), streamed=True)
