"""Synthetic bird voices for the embedded default: one `CallModel` per species, phrases planned then rendered,
background noise, mixing at a signal-to-noise ratio.

A phrase is planned first (`plan_phrase`: pitch, tempo, syllable count and gains drawn from a
generator) and rendered later (`render_phrase`), so where its syllables sound (`phrase_spans`) is
known without rendering audio: soundscape labels are computed from plans.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from birdlab.data.species import Species

SHAPES = ("up", "down", "arch", "vibrato", "flat", "wave")


@dataclass(frozen=True)
class CallModel:
    """A species' voice."""

    center_hz: float
    """Centre frequency of the call."""
    bandwidth_hz: float
    """Frequency excursion of the FM shape."""
    shape: str
    """FM shape, one of SHAPES."""
    syllable_s: float
    """Syllable length in seconds."""
    gap_s: float
    """Silence between syllables in seconds."""
    syllables: int
    """Syllables per phrase."""
    harmonics: tuple[float, ...]
    """Relative amplitude of harmonics 1, 2, ..."""
    trill_hz: float
    """Amplitude modulation rate (0 = none)."""


@dataclass(frozen=True)
class Phrase:
    """One planned phrase of one species: when it starts, how loud it is and how this call varies the voice."""

    code: str
    """eBird code of the calling species."""
    start_s: float
    """Start in the file, seconds."""
    snr_db: float
    """Level against the background noise, dB."""
    pitch: float
    """Frequency factor of this call (about 1)."""
    tempo: float
    """Time factor of syllables and gaps (about 1)."""
    gains: tuple[float, ...]
    """Amplitude of each syllable (one per syllable)."""


def code_rng(seed: int, code: str, stream: int) -> np.random.Generator:
    """A generator for one (seed, species code, stream): independent of the order species are processed in."""
    return np.random.default_rng([seed, zlib.crc32(code.encode()), stream])


def _voice(code: str, *, seed: int, band_code: str, shape: str | None) -> CallModel:
    rng = code_rng(seed, code, 0)
    band_rng = code_rng(seed, band_code, 1)
    center = float(np.exp(band_rng.uniform(np.log(1000.0), np.log(8500.0))))
    center *= float(rng.uniform(0.93, 1.07))
    return CallModel(
        center_hz=center,
        bandwidth_hz=float(center * rng.uniform(0.1, 0.45)),
        shape=shape if shape is not None else SHAPES[int(rng.integers(len(SHAPES)))],
        syllable_s=float(rng.uniform(0.05, 0.3)),
        gap_s=float(rng.uniform(0.03, 0.2)),
        syllables=int(rng.integers(1, 7)),
        harmonics=tuple(float(a) for a in [1.0, *rng.uniform(0.0, 0.6, size=int(rng.integers(0, 3)))]),
        trill_hz=float(rng.uniform(18.0, 45.0)) if rng.random() < 0.3 else 0.0,
    )


def call_models(species: Sequence[Species], *, seed: int) -> dict[str, CallModel]:
    """One voice per species; species 2k and 2k+1 share a band with different shapes (look-alike pairs)."""
    return {sp.ebird_code: _voice(sp.ebird_code, seed=seed, band_code=species[index - index % 2].ebird_code,
                                  shape=SHAPES[(index // 2 * 7 + index % 2 * 3) % len(SHAPES)])
            for index, sp in enumerate(species)}


def distractor_models(codes: Sequence[str], *, seed: int) -> dict[str, CallModel]:
    """Voices of species outside the subset (background birds: secondary labels, soundscape birds the model
    does not know); each has its own band and a random shape."""
    return {code: _voice(code, seed=seed, band_code=code, shape=None) for code in codes}


def _fm_curve(shape: str, u: np.ndarray) -> np.ndarray:
    """Normalised frequency offset in [-1, 1] over syllable time u in [0, 1]."""
    if shape == "up":
        return 2 * u - 1
    if shape == "down":
        return 1 - 2 * u
    if shape == "arch":
        return 1 - 2 * (2 * u - 1) ** 2
    if shape == "vibrato":
        return np.sin(2 * np.pi * 3 * u)
    if shape == "wave":
        return np.sin(2 * np.pi * u)
    return np.zeros_like(u)


def render_syllable(model: CallModel, *, sample_rate_hz: int, pitch: float, duration_s: float) -> np.ndarray:
    """One syllable, peak ~1: float64, shape (max(8, round(duration_s * sample_rate_hz)),)."""
    n = max(int(round(duration_s * sample_rate_hz)), 8)
    u = np.arange(n) / n
    freq = pitch * (model.center_hz + 0.5 * model.bandwidth_hz * _fm_curve(model.shape, u))
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate_hz
    nyquist = sample_rate_hz / 2
    wave = np.zeros(n)
    for k, amp in enumerate(model.harmonics, start=1):
        if amp > 0 and k * freq.max() < nyquist * 0.95:
            wave += amp * np.sin(k * phase)
    envelope = np.sin(np.pi * u) ** 0.5
    if model.trill_hz:
        envelope = envelope * (0.5 + 0.5 * np.cos(2 * np.pi * model.trill_hz * np.arange(n) / sample_rate_hz))
    out = wave * envelope
    return out / max(float(np.max(np.abs(out))), 1e-9)


def plan_phrase(code: str, model: CallModel, *, rng: np.random.Generator, start_s: float, snr_db: float) -> Phrase:
    """A call of `code` varied from its voice (pitch +-3.5 %, tempo 0.75-1.3, syllable count +-1)."""
    pitch = float(rng.normal(1.0, 0.035))
    tempo = float(np.clip(rng.normal(1.0, 0.08), 0.75, 1.3))
    count = max(1, model.syllables + int(rng.integers(-1, 2)))
    gains = tuple(float(g) for g in rng.uniform(0.7, 1.0, size=count))
    return Phrase(code=code, start_s=start_s, snr_db=snr_db, pitch=pitch, tempo=tempo, gains=gains)


def _syllable_layout(model: CallModel, phrase: Phrase, *, sample_rate_hz: int) -> tuple[int, int]:
    """(syllable length, syllable-to-syllable step), in samples."""
    syllable_s, gap_s = model.syllable_s * phrase.tempo, model.gap_s * phrase.tempo
    length = max(int(round(syllable_s * sample_rate_hz)), 8)
    return length, int(round((syllable_s + gap_s) * sample_rate_hz))


def phrase_spans(model: CallModel, phrase: Phrase, *, sample_rate_hz: int) -> list[tuple[float, float]]:
    """(start_s, end_s) in the file of each syllable of the phrase, exactly where render_phrase puts them."""
    length, step = _syllable_layout(model, phrase, sample_rate_hz=sample_rate_hz)
    first = int(phrase.start_s * sample_rate_hz)
    return [((first + i * step) / sample_rate_hz, (first + i * step + length) / sample_rate_hz)
            for i in range(len(phrase.gains))]


def phrase_seconds(model: CallModel, phrase: Phrase, *, sample_rate_hz: int) -> float:
    """Length of the rendered phrase in seconds."""
    length, step = _syllable_layout(model, phrase, sample_rate_hz=sample_rate_hz)
    return (step * (len(phrase.gains) - 1) + length) / sample_rate_hz


def render_phrase(model: CallModel, phrase: Phrase, *, sample_rate_hz: int) -> np.ndarray:
    """The phrase's samples from its start: float64, shape (round(phrase_seconds * sample_rate_hz),)."""
    length, step = _syllable_layout(model, phrase, sample_rate_hz=sample_rate_hz)
    syllable = render_syllable(model, sample_rate_hz=sample_rate_hz, pitch=phrase.pitch,
                               duration_s=model.syllable_s * phrase.tempo)
    out = np.zeros(step * (len(phrase.gains) - 1) + length)
    for i, gain in enumerate(phrase.gains):
        out[i * step : i * step + length] += syllable * gain
    return out


def background_noise(n_samples: int, *, rng: np.random.Generator) -> np.ndarray:
    """Pink-ish and brown-ish noise plus sparse clicks, RMS 1: float32 (n_samples,)."""
    import scipy.fft

    spectrum = scipy.fft.rfft(rng.standard_normal(n_samples, dtype=np.float32))
    tilt = np.float32(rng.uniform(0.5, 1.6) / 2)  # 1 = pink, 2 = brown
    spectrum /= np.arange(1, spectrum.size + 1, dtype=np.float32) ** tilt
    noise = scipy.fft.irfft(spectrum, n=n_samples)
    del spectrum
    noise /= max(float(np.std(noise)), 1e-12)
    clicks = np.flatnonzero(rng.random(n_samples, dtype=np.float32) < 2e-5)
    noise[clicks] += rng.standard_normal(clicks.size, dtype=np.float32) * 20
    return noise / np.float32(max(float(np.std(noise)), 1e-12))


def mix_phrase(target: np.ndarray, model: CallModel, phrase: Phrase, *, sample_rate_hz: int,
               noise_rms: float) -> None:
    """Add the rendered phrase to `target` (float64 (n,)) at its start, scaled to its SNR against noise_rms."""
    call = render_phrase(model, phrase, sample_rate_hz=sample_rate_hz)
    active = call[np.abs(call) > 1e-3]
    call_rms = float(np.sqrt(np.mean(active**2))) if active.size else 1.0
    gain = noise_rms * 10 ** (phrase.snr_db / 20) / call_rms
    start = int(phrase.start_s * sample_rate_hz)
    end = min(target.size, start + call.size)
    if end > start:
        target[start:end] += gain * call[: end - start]


def normalise(samples: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Scale to a random peak in [0.3, 0.9]: float32, same shape."""
    peak = float(rng.uniform(0.3, 0.9))
    return (samples * (peak / max(float(np.max(np.abs(samples))), 1e-12))).astype(np.float32)
