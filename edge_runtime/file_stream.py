"""Read an audio file in blocks, with the same samples as `edge_runtime.audio.load_audio`, in bounded memory.

A 10-minute 32 kHz file is 77 MB as float32, and an hour of 48 kHz stereo is 1.4 GB as float32: loading a
file whole takes a Raspberry Pi's process past its memory limit. Every file is therefore decoded block by
block, whatever its rate and channel count: WAV by this module (header parsed as load_audio does, samples
scaled as libsndfile scales them, no soundfile needed), other formats by soundfile; each block is mixed to
mono (mean of the channels) and, when the file is not at the model's rate, resampled by soxr's streaming
resampler, which gives exactly soxr.resample's samples (the output is trimmed or padded to load_audio's
ceil(n * ratio)). Memory is a few blocks, whatever the length of the file.

Faults found mid-file (a truncated Ogg or MP3 that decodes fewer frames than it declares, an Ogg stream
without its end-of-stream page, NaN samples, a decoder error) raise AudioError after the blocks before them
were yielded: the windows already analysed keep their detections and the file counts as failed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from edge_runtime.audio import AudioError, load_audio, parse_wav_header, to_mono, wav_frames

BLOCK_SECONDS = 10.0
"""Seconds of audio decoded at a time."""
TRUNCATION_TOLERANCE = 0.01
"""A compressed file that decodes fewer than (1 - this) of the frames it declares is truncated."""
MP3_TRUNCATION_TOLERANCE = 0.05
"""The same for MP3, whose declared length libsndfile estimates from its headers (Xing or bitrate) and which can
overstate it by a few percent: a complete 10.0-s recording of the real robustness set declares 10.3 s."""
_OGG_SUFFIXES = (".ogg", ".oga", ".opus")
_OGG_TAIL_BYTES = 70_000
"""An Ogg page is at most 65 307 bytes: the last one starts within this many bytes of the end."""


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
    """Total samples at the model's rate (known before reading: the duration sets the file's start time)."""
    blocks: Iterator[np.ndarray]
    """float32 (about BLOCK_SECONDS * rate,) blocks; raises AudioError for a fault found mid-file."""
    streamed: bool
    """True when decoded block by block (always, except for a format soundfile is needed for and missing)."""


def _resampled_length(n_in: int, *, in_rate_hz: int, out_rate_hz: int) -> int:
    """load_audio's length at the model's rate: ceil(n * out / in)."""
    return n_in if in_rate_hz == out_rate_hz else int(math.ceil(n_in * float(out_rate_hz) / in_rate_hz))


class _Resampler:
    """soxr's streaming resampler whose total output is trimmed or padded, on the last block, to load_audio's
    length for the samples actually fed; the identity at equal rates."""

    def __init__(self, path: Path, *, in_rate_hz: int, out_rate_hz: int) -> None:
        self._rates = (in_rate_hz, out_rate_hz)
        self._stream = None
        if in_rate_hz != out_rate_hz:
            try:
                import soxr
            except ImportError:
                raise AudioError(path, f"audio is at {in_rate_hz} Hz and the model needs {out_rate_hz} Hz: install "
                                       f"'soxr' to resample, or record at {out_rate_hz} Hz") from None
            self._stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality="HQ")
        self._fed = 0
        self._emitted = 0

    def __call__(self, block: np.ndarray, *, last: bool) -> np.ndarray:
        if self._stream is None:
            self._fed += block.size
            self._emitted += block.size
            return block
        self._fed += block.size
        out = np.asarray(self._stream.resample_chunk(block, last=last), dtype=np.float32)
        if last:
            wanted = _resampled_length(self._fed, in_rate_hz=self._rates[0], out_rate_hz=self._rates[1]) - self._emitted
            out = out[: max(0, wanted)]
            if out.size < wanted:
                out = np.concatenate([out, np.zeros(wanted - out.size, dtype=np.float32)])
        self._emitted += out.size
        return out


def _check_finite(path: Path, mono: np.ndarray) -> None:
    if not np.isfinite(mono).all():
        bad = int(np.count_nonzero(~np.isfinite(mono)))
        raise AudioError(path, f"{bad} samples are NaN or infinite; the recorder or converter is faulty")


def _wav_stream(path: Path, *, sample_rate_hz: int, block_seconds: float) -> AudioStream:
    fd = os.open(path, os.O_RDONLY)
    try:
        info = parse_wav_header(path, _FileBytes(fd, os.fstat(fd).st_size))
    except BaseException:
        os.close(fd)
        raise
    frame_bytes = info.channels * info.bits_per_sample // 8
    n_frames = info.data_bytes // frame_bytes
    if n_frames == 0:
        os.close(fd)
        raise AudioError(path, "contains no samples")
    resample = _Resampler(path, in_rate_hz=info.sample_rate_hz, out_rate_hz=sample_rate_hz)
    n_samples = _resampled_length(n_frames, in_rate_hz=info.sample_rate_hz, out_rate_hz=sample_rate_hz)
    block_frames = max(1, int(block_seconds * info.sample_rate_hz))

    def blocks() -> Iterator[np.ndarray]:
        try:
            for first in range(0, n_frames, block_frames):
                count = min(block_frames, n_frames - first)
                raw = os.pread(fd, count * frame_bytes, info.data_offset + first * frame_bytes)
                if len(raw) < count * frame_bytes:
                    raise AudioError(path, "truncated while reading (the file shrank); copy it again")
                mono = np.ascontiguousarray(to_mono(wav_frames(raw, info)), dtype=np.float32)
                _check_finite(path, mono)
                out = resample(mono, last=first + count >= n_frames)
                if out.size:
                    yield out
        finally:
            os.close(fd)

    return AudioStream(n_samples=n_samples, blocks=blocks(), streamed=True)


def ogg_ends_cleanly(path: Path) -> bool:
    """True when the file's last Ogg page is complete and flagged end-of-stream (a truncated copy is not)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - _OGG_TAIL_BYTES))
        tail = f.read()
    start = tail.rfind(b"OggS")
    while start >= 0:
        if start + 27 <= len(tail):
            header_type, n_segments = tail[start + 5], tail[start + 26]
            table = tail[start + 27 : start + 27 + n_segments]
            if len(table) == n_segments and start + 27 + n_segments + sum(table) == len(tail):
                return bool(header_type & 0x04)
        start = tail.rfind(b"OggS", 0, start)
    return False


def _soundfile_stream(path: Path, soundfile: ModuleType, *, sample_rate_hz: int, block_seconds: float) -> AudioStream:
    try:
        f = soundfile.SoundFile(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError, ValueError) as exc:
        raise AudioError(path, f"cannot decode ({exc}); the file is corrupt, truncated or not audio") from None
    declared = int(f.frames)
    if declared <= 0:
        f.close()
        return _whole(path, sample_rate_hz)  # unknown length: load_audio decodes what there is and words errors
    try:
        resample = _Resampler(path, in_rate_hz=int(f.samplerate), out_rate_hz=sample_rate_hz)
    except AudioError:
        f.close()
        raise
    block_frames = max(1, int(block_seconds * f.samplerate))

    def blocks() -> Iterator[np.ndarray]:
        read = 0
        with f:
            while True:
                try:
                    data = f.read(block_frames, dtype="float32", always_2d=True)
                except (RuntimeError, soundfile.LibsndfileError, ValueError) as exc:
                    raise AudioError(path, f"cannot decode ({exc}); the file is corrupt, truncated or not audio") from None
                read += data.shape[0]
                last = data.shape[0] < block_frames
                mono = np.ascontiguousarray(to_mono(data.T), dtype=np.float32)
                _check_finite(path, mono)
                out = resample(mono, last=last)
                if out.size:
                    yield out
                if last:
                    break
        tolerance = MP3_TRUNCATION_TOLERANCE if path.suffix.lower() == ".mp3" else TRUNCATION_TOLERANCE
        if read < declared * (1.0 - tolerance):
            raise AudioError(path, f"truncated: decoded {read / f.samplerate:.1f} s of the {declared / f.samplerate:.1f} s "
                                   "it declares; the analysed part is kept (copy the file again)")
        if path.suffix.lower() in _OGG_SUFFIXES and not ogg_ends_cleanly(path):
            raise AudioError(path, "truncated: the Ogg stream has no end-of-stream page; the analysed part is kept "
                                   "(copy the file again)")

    n_samples = _resampled_length(declared, in_rate_hz=int(f.samplerate), out_rate_hz=sample_rate_hz)
    return AudioStream(n_samples=n_samples, blocks=blocks(), streamed=True)


def _whole(path: Path, sample_rate_hz: int) -> AudioStream:
    samples = load_audio(path, sample_rate_hz=sample_rate_hz)
    return AudioStream(n_samples=samples.size, blocks=iter([samples]), streamed=False)


def open_audio_stream(path: str | Path, *, sample_rate_hz: int, block_seconds: float = BLOCK_SECONDS) -> AudioStream:
    """The audio of `path`, mono float32 at sample_rate_hz, as load_audio gives it, in blocks; raises AudioError."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return _whole(path, sample_rate_hz)  # load_audio words the error
    if path.suffix.lower() == ".wav":
        return _wav_stream(path, sample_rate_hz=sample_rate_hz, block_seconds=block_seconds)
    try:
        import soundfile
    except ImportError:
        return _whole(path, sample_rate_hz)  # load_audio says soundfile is needed
    return _soundfile_stream(path, soundfile, sample_rate_hz=sample_rate_hz, block_seconds=block_seconds)

