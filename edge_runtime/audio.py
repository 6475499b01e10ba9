"""Audio loading, one function for every path: lab, parity, training and the device.

`load_audio` decodes wav (8/16/24/32-bit int, 32/64-bit float, WAVE_FORMAT_EXTENSIBLE),
flac, ogg and mp3, mixes to mono by the mean of the channels and resamples with soxr
HQ exactly as `librosa.load(path, sr=rate)` does. WAV is parsed here (stdlib + numpy), so
the device reads WAV without soundfile and a truncated WAV is detected from its header;
the compressed formats need `soundfile`, resampling needs `soxr`.

Thin: stdlib, numpy, and optionally soundfile and soxr.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge_runtime.errors import EdgeRuntimeError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class AudioError(EdgeRuntimeError):
    """A file that cannot be used as audio; `path` and `reason` say which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ByteSlices(Protocol):
    """What parse_wav_header reads: bytes, or any object with a len() that slices like bytes."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice, /) -> bytes: ...


@dataclass(frozen=True)
class WavInfo:
    """What a RIFF/WAVE header declares."""

    sample_rate_hz: int
    channels: int
    bits_per_sample: int
    is_float: bool
    data_offset: int
    data_bytes: int


def parse_wav_header(path: Path, blob: ByteSlices) -> WavInfo:
    """Read a RIFF/WAVE header from `blob` (bytes, or any object sliced like bytes with a len()).

    Raises AudioError naming `path` for a non-WAV, unsupported encoding or truncated file.
    """
    if len(blob) < 12 or blob[:4] not in (b"RIFF", b"RF64") or blob[8:12] != b"WAVE":
        raise AudioError(path, "not a RIFF/WAVE file (bad header); re-export it as WAV or use another format")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(blob):
        chunk_id = blob[pos : pos + 4]
        (size,) = struct.unpack("<I", blob[pos + 4 : pos + 8])
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(blob):
                raise AudioError(path, "truncated WAV 'fmt ' chunk")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", blob[body : body + 16])
            if tag == _WAVE_FORMAT_EXTENSIBLE:
                if size < 40 or body + 40 > len(blob):
                    raise AudioError(path, "truncated WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk")
                (tag,) = struct.unpack("<H", blob[body + 24 : body + 26])  # first 2 bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(path, "WAV 'data' chunk before 'fmt ' chunk")
            tag, channels, rate, bits = fmt
            if tag not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_IEEE_FLOAT):
                raise AudioError(path, f"unsupported WAV encoding (format tag 0x{tag:04x}); convert it to PCM or float WAV")
            is_float = tag == _WAVE_FORMAT_IEEE_FLOAT
            if (is_float and bits not in (32, 64)) or (not is_float and bits not in (8, 16, 24, 32)):
                raise AudioError(path, f"unsupported WAV sample size {bits} bits")
            if channels < 1 or rate < 1:
                raise AudioError(path, f"invalid WAV header: {channels} channels at {rate} Hz")
            available = len(blob) - body
            if size == 0xFFFFFFFF:  # streaming writers (and RF64) leave the size unknown
                size = available - available % (channels * bits // 8)
            if size > available:
                raise AudioError(
                    path,
                    f"truncated: the header declares {size} bytes of audio but the file holds {available}; "
                    "the recording was cut off (copy it again)",
                )
            return WavInfo(rate, channels, bits, is_float, body, size)
        pos = body + size + (size & 1)
    raise AudioError(path, "WAV file has no 'data' chunk (empty or truncated)")


def _decode_wav(path: Path) -> tuple[np.ndarray, int]:
    """WAV -> float32 (channels, n) scaled like libsndfile/soundfile, and the rate."""
    blob = path.read_bytes()
    info = parse_wav_header(path, blob)
    frame_bytes = info.channels * info.bits_per_sample // 8
    n_frames = info.data_bytes // frame_bytes
    raw = memoryview(blob)[info.data_offset : info.data_offset + n_frames * frame_bytes]
    return wav_frames(raw, info), info.sample_rate_hz


def wav_frames(raw: bytes | memoryview, info: WavInfo) -> np.ndarray:
    """Raw WAV frames -> float32 (channels, n), scaled as libsndfile/soundfile (and librosa.load) scale them.

    raw: whole frames of the data chunk (len(raw) a multiple of channels * bits_per_sample // 8).
    """
    if info.is_float:
        data = np.frombuffer(raw, dtype="<f4" if info.bits_per_sample == 32 else "<f8").astype(np.float32)
    elif info.bits_per_sample == 8:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif info.bits_per_sample == 16:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / np.float32(2**15)
    elif info.bits_per_sample == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # left-justified in 32 bits, as libsndfile does
        data = ints.astype(np.float32) / np.float32(2**31)
    else:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / np.float32(2**31)
    return data.reshape(-1, info.channels).T


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    try:
        import soundfile
    except ImportError:
        raise AudioError(
            path, f"reading {path.suffix} files needs the 'soundfile' package (pip install soundfile); WAV works without it"
        ) from None
    try:
        with soundfile.SoundFile(str(path)) as f:
            data = f.read(dtype="float32", always_2d=True)
            rate = f.samplerate
    except (RuntimeError, soundfile.LibsndfileError, OSError, ValueError) as exc:  # libsndfile: corrupt/truncated
        raise AudioError(path, f"cannot decode ({exc}); the file is corrupt, truncated or not audio") from None
    return data.T, int(rate)


def resample(samples: np.ndarray, *, orig_rate_hz: int, target_rate_hz: int, path: str | Path = "<samples>") -> np.ndarray:
    """Resample like `librosa.resample(res_type='soxr_hq')`: soxr HQ, then fixed to ceil(n * ratio).

    samples: float32, shape (n,). Returns float32, shape (ceil(n * target / orig),).
    """
    if orig_rate_hz == target_rate_hz:
        return samples
    try:
        import soxr
    except ImportError:
        raise AudioError(
            path,
            f"audio is at {orig_rate_hz} Hz and the model needs {target_rate_hz} Hz: install 'soxr' to resample, "
            f"or record at {target_rate_hz} Hz",
        ) from None
    n_out = int(math.ceil(samples.shape[-1] * float(target_rate_hz) / orig_rate_hz))
    out = soxr.resample(samples, orig_rate_hz, target_rate_hz, quality="soxr_hq")
    if out.shape[-1] > n_out:
        out = out[:n_out]
    elif out.shape[-1] < n_out:
        out = np.pad(out, (0, n_out - out.shape[-1]))
    return np.asarray(out, dtype=samples.dtype)


def to_mono(channels_first: np.ndarray) -> np.ndarray:
    """(channels, n) float32 -> (n,) float32, the mean over channels (librosa.to_mono)."""
    if channels_first.shape[0] == 1:
        return channels_first[0]
    return np.mean(channels_first, axis=0)


def load_audio(path: str | Path, *, sample_rate_hz: int) -> np.ndarray:
    """Decode an audio file to mono float32 at `sample_rate_hz`, as librosa.load does.

    Returns float32, shape (n_samples,), n_samples >= 1, every sample finite.
    Raises AudioError (with .path and .reason) for a missing, empty, corrupt, truncated
    or non-finite file, or for a format whose decoder is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    if path.suffix.lower() == ".wav":
        data, rate = _decode_wav(path)
    else:
        data, rate = _decode_soundfile(path)
    if data.shape[-1] == 0:
        raise AudioError(path, "contains no samples")
    mono = np.ascontiguousarray(to_mono(data), dtype=np.float32)
    if not np.isfinite(mono).all():
        bad = int(np.count_nonzero(~np.isfinite(mono)))
        raise AudioError(path, f"{bad} samples are NaN or infinite; the recorder or converter is faulty")
    return resample(mono, orig_rate_hz=rate, target_rate_hz=sample_rate_hz, path=path)


def decode_pcm(raw: bytes, *, sample_format: str, channels: int = 1) -> np.ndarray:
    """Raw interleaved PCM bytes (arecord -t raw, stdin) -> mono float32 (n,).

    sample_format: 'S16_LE', 'S32_LE' or 'FLOAT_LE' (ALSA names). Trailing partial frames are dropped.
    """
    dtypes = {"S16_LE": ("<i2", 2**15), "S32_LE": ("<i4", 2**31), "FLOAT_LE": ("<f4", 1)}
    if sample_format not in dtypes:
        raise ValueError(f"sample_format must be one of {sorted(dtypes)}, got {sample_format!r}")
    dtype, scale = dtypes[sample_format]
    width = np.dtype(dtype).itemsize * channels
    usable = len(raw) - len(raw) % width
    data = np.frombuffer(raw[:usable], dtype=dtype).astype(np.float32)
    if scale != 1:
        data /= np.float32(scale)
    return to_mono(data.reshape(-1, channels).T).astype(np.float32, copy=False)
