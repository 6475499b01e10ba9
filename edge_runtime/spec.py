"""FeatureSpec: everything that defines the model input, in one frozen dataclass.

The same `feature_spec.json` is read by the lab (librosa features), by the C++/WASM
frontend (which receives the fields at run time) and by the edge bundle. This module
lives in `edge_runtime` because the device must read it without importing `birdlab`;
`birdlab.features.log_mel` re-exports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runtime.errors import EdgeRuntimeError

SCHEMA_VERSION = 1
SPEC_FILENAME = "feature_spec.json"

WINDOWS = ("hann",)
PAD_MODES = ("constant", "reflect")
MEL_NORMS = ("slaney", None)


class SpecError(EdgeRuntimeError, ValueError):
    """A feature spec (or its JSON file) is invalid; the message names the field."""


def _is_smooth_235(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0 and n > 1:
            n //= p
    return n == 1


@dataclass(frozen=True)
class FeatureSpec:
    """Log-mel spectrogram settings, exactly as librosa interprets them.

    The spectrogram is `librosa.power_to_db(librosa.feature.melspectrogram(...))` with
    these arguments; its shape is (n_mels, n_frames) with n_frames = 1 + n_samples //
    hop_length when `center` is true.
    """

    sample_rate_hz: int = 32000
    """Audio sample rate the model expects (BirdCLEF 2021 ships 32 kHz audio)."""
    clip_seconds: float = 5.0
    """Length of one model input window (BirdCLEF 2021 scores 5-s windows)."""
    n_fft: int = 1024
    """FFT length in samples; must be 2^a * 3^b * 5^c (the C++ FFT supports these)."""
    hop_length: int = 320
    """Samples between successive frames (10 ms at 32 kHz)."""
    win_length: int = 1024
    """Window length in samples (<= n_fft; the window is zero-padded to n_fft, centred)."""
    window: str = "hann"
    """Window function: periodic Hann (scipy's get_window('hann', fftbins=True))."""
    center: bool = True
    """Pad n_fft // 2 samples on both sides so frame t is centred on sample t * hop_length."""
    pad_mode: str = "constant"
    """Padding when centring: 'constant' (zeros, librosa's default) or 'reflect'."""
    n_mels: int = 64
    """Number of mel bands."""
    fmin_hz: float = 50.0
    """Lowest mel band edge in Hz."""
    fmax_hz: float = 14000.0
    """Highest mel band edge in Hz (<= sample_rate_hz / 2)."""
    power: float = 2.0
    """Exponent of the magnitude spectrogram (2.0 = power, 1.0 = magnitude)."""
    htk: bool = False
    """Mel scale: False = Slaney (librosa's default), True = HTK."""
    mel_norm: str | None = "slaney"
    """Filter normalisation: 'slaney' (area-normalised, librosa's default) or None."""
    db_ref: float = 1.0
    """power_to_db `ref`: a fixed reference power (0 dB), so windows are comparable."""
    db_amin: float = 1e-10
    """power_to_db `amin`: floor applied before the logarithm."""
    top_db: float | None = 80.0
    """power_to_db `top_db`: dynamic range below each window's maximum; None = no clipping."""

    def __post_init__(self) -> None:
        self.validate()

    # -- derived quantities -------------------------------------------------------------
    @property
    def clip_samples(self) -> int:
        """Samples in one model window: round(clip_seconds * sample_rate_hz)."""
        return int(round(self.clip_seconds * self.sample_rate_hz))

    @property
    def n_frequency_bins(self) -> int:
        """1 + n_fft // 2 bins of the real FFT."""
        return 1 + self.n_fft // 2

    def n_frames(self, n_samples: int) -> int:
        """Frames librosa produces for `n_samples` input samples."""
        if self.center:
            return 1 + n_samples // self.hop_length
        if n_samples < self.n_fft:
            raise SpecError(f"center=False needs at least n_fft={self.n_fft} samples, got {n_samples}")
        return 1 + (n_samples - self.n_fft) // self.hop_length

    @property
    def clip_frames(self) -> int:
        """Frames of one model window: the model's time dimension."""
        return self.n_frames(self.clip_samples)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Model input shape without batch: (n_mels, clip_frames, 1)."""
        return (self.n_mels, self.clip_frames, 1)

    # -- validation ----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise SpecError naming the first invalid field."""

        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise SpecError(f"feature spec field '{field}': {what} (got {getattr(self, field)!r})")

        for name in ("sample_rate_hz", "n_fft", "hop_length", "win_length", "n_mels"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value > 0, name, "must be a positive integer")
        need(_is_smooth_235(self.n_fft), "n_fft", "must be of the form 2^a * 3^b * 5^c")
        need(self.win_length <= self.n_fft, "win_length", f"must be <= n_fft ({self.n_fft})")
        need(self.hop_length <= self.n_fft, "hop_length", f"must be <= n_fft ({self.n_fft})")
        need(self.window in WINDOWS, "window", f"must be one of {WINDOWS}")
        need(isinstance(self.center, bool), "center", "must be true or false")
        need(self.pad_mode in PAD_MODES, "pad_mode", f"must be one of {PAD_MODES}")
        need(isinstance(self.htk, bool), "htk", "must be true or false")
        need(self.mel_norm in MEL_NORMS, "mel_norm", "must be 'slaney' or null")
        for name in ("clip_seconds", "fmin_hz", "fmax_hz", "power", "db_ref", "db_amin"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                 name, "must be a finite number")
        need(self.clip_seconds > 0, "clip_seconds", "must be > 0")
        need(self.fmin_hz >= 0, "fmin_hz", "must be >= 0")
        need(self.fmin_hz < self.fmax_hz, "fmax_hz", f"must be > fmin_hz ({self.fmin_hz})")
        need(self.fmax_hz <= self.sample_rate_hz / 2, "fmax_hz", f"must be <= sample_rate_hz / 2 ({self.sample_rate_hz / 2})")
        need(self.power > 0, "power", "must be > 0")
        need(self.db_ref > 0, "db_ref", "must be > 0")
        need(self.db_amin > 0, "db_amin", "must be > 0")
        need(self.top_db is None or (isinstance(self.top_db, (int, float)) and self.top_db >= 0),
             "top_db", "must be >= 0 or null")

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict with `schema_version` first; floats stay floats."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        out.update(dataclasses.asdict(self))
        return out

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, fixed separators): stable across runs."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "feature spec") -> FeatureSpec:
        """Build from a dict; unknown fields and a wrong schema version are errors."""
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("schema_version", None)
        if version != SCHEMA_VERSION:
            raise SpecError(
                f"{source}: schema_version {version!r} is not supported (this code reads {SCHEMA_VERSION}); "
                "re-export the spec with this birdlab version"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"{source}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        for f in dataclasses.fields(cls):
            if f.name in data and f.type in ("float", "float | None") and isinstance(data[f.name], int) and not isinstance(data[f.name], bool):
                data[f.name] = float(data[f.name])
        try:
            return cls(**data)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "feature spec") -> FeatureSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=source)

    def save(self, path: str | Path) -> Path:
        """Write `feature_spec.json` (or `path` if it names a file) and return its path."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILENAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        """Read a spec from a JSON file, or from `feature_spec.json` inside a directory."""
        path = Path(path)
        if path.is_dir():
            path = path / SPEC_FILENAME
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"{path}: cannot read feature spec ({exc.strerror})") from None
        return cls.from_json(text, source=str(path))

    @property
    def spec_hash(self) -> str:
        """sha256 of the canonical JSON, hex, first 16 characters: names a feature cache."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()[:16]
