"""Log-mel features as librosa computes them, driven by one FeatureSpec."""

from __future__ import annotations

import numpy as np

from edge_runtime.spec import SPEC_FILENAME, FeatureSpec, SpecError

__all__ = ["FeatureSpec", "SpecError", "SPEC_FILENAME", "log_mel", "mel_filterbank", "power_mel"]


def _as_mono_float32(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"samples must be mono with shape (n_samples,), got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("samples is empty: a spectrogram needs at least one sample")
    return np.ascontiguousarray(samples, dtype=np.float32)


def mel_filterbank(*, spec: FeatureSpec) -> np.ndarray:
    """librosa's mel filterbank for `spec`: float32, shape (n_mels, 1 + n_fft // 2)."""
    import librosa

    return librosa.filters.mel(
        sr=spec.sample_rate_hz,
        n_fft=spec.n_fft,
        n_mels=spec.n_mels,
        fmin=spec.fmin_hz,
        fmax=spec.fmax_hz,
        htk=spec.htk,
        norm=spec.mel_norm,  # type: ignore[arg-type]  # FeatureSpec validates it: 'slaney' or None
        dtype=np.float32,
    )


def power_mel(samples: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """Mel spectrogram before dB conversion (librosa.feature.melspectrogram).

    samples: float32, shape (n_samples,), mono, at spec.sample_rate_hz.
    Returns float32, shape (spec.n_mels, spec.n_frames(n_samples)).
    """
    import librosa

    samples = _as_mono_float32(samples)
    return librosa.feature.melspectrogram(
        y=samples,
        sr=spec.sample_rate_hz,
        n_fft=spec.n_fft,
        hop_length=spec.hop_length,
        win_length=spec.win_length,
        window=spec.window,
        center=spec.center,
        pad_mode=spec.pad_mode,  # type: ignore[arg-type]  # FeatureSpec validates it against numpy's modes
        power=spec.power,
        n_mels=spec.n_mels,
        fmin=spec.fmin_hz,
        fmax=spec.fmax_hz,
        htk=spec.htk,
        norm=spec.mel_norm,
    )


def log_mel(samples: np.ndarray, *, spec: FeatureSpec) -> np.ndarray:
    """Log-mel spectrogram exactly as librosa computes it.

    `librosa.power_to_db(librosa.feature.melspectrogram(...), ref=spec.db_ref,
    amin=spec.db_amin, top_db=spec.top_db)` with every setting taken from `spec`.

    samples: float32, shape (n_samples,), mono, at spec.sample_rate_hz; n_samples >= 1.
    Returns float32 dB, shape (spec.n_mels, 1 + n_samples // spec.hop_length) when
    spec.center (the time axis is last, as in librosa).
    """
    import librosa

    mel = power_mel(samples, spec=spec)
    db = librosa.power_to_db(mel, ref=spec.db_ref, amin=spec.db_amin, top_db=spec.top_db)
    return np.asarray(db, dtype=np.float32)
