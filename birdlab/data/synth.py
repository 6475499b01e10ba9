"""The embedded default: a deterministic synthetic dataset in the exact BirdCLEF 2021 layout.

Each species gets a voice (`CallModel`): a frequency band, an FM shape, syllable length,
repetition and gaps, harmonics and, for some, a trill (fast amplitude modulation). Voices
come in look-alike pairs (same band, different shape or rhythm), so the task needs more
than a band-energy detector. Every recording varies the voice (pitch, tempo, syllable
count), adds background noise at a random SNR and sometimes a quieter second species
(listed in secondary_labels). Soundscapes are ~1-minute mixtures with a labels CSV whose
rows say which species call in each scored 5-s window, or 'nocall'.

Audio is written as real OGG Vorbis at 32 kHz. The same seed gives identical audio
samples (the Ogg stream serial number in the file bytes may differ).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdlab.data import birdclef2021 as bc
from birdlab.data.ogg import write_ogg_vorbis
from birdlab.data.species import Species, load_species
from birdlab.errors import UserError

SYNTH_MANIFEST = "synth_manifest.json"
SYNTH_FORMAT_VERSION = 2
SHAPES = ("up", "down", "arch", "vibrato", "flat", "wave")
_SITES = ("BRE", "LOR", "MOR")


@dataclass(frozen=True)
class SynthConfig:
    """Size and difficulty of the synthetic dataset."""

    seed: int = 2021
    """Seed of every random choice (same seed -> identical audio samples)."""
    n_species: int = 24
    """How many species of the subset get recordings (the first n of data/brittany_species.csv)."""
    recordings_per_species: int = 10
    """train_short_audio files per species."""
    recording_seconds: tuple[float, float] = (5.0, 12.0)
    """Range of recording lengths in seconds."""
    n_soundscapes: int = 8
    """Number of train_soundscapes files (training puts half in validation, half in test: 48 scored test rows)."""
    soundscape_seconds: int = 60
    """Soundscape length in seconds (a multiple of 5: BirdCLEF scores 5-s windows)."""
    sample_rate_hz: int = 32000
    """Sample rate of the written files (BirdCLEF 2021's)."""
    snr_db: tuple[float, float] = (3.0, 24.0)
    """Range of signal-to-noise ratios of a call against the background, in dB."""
    secondary_probability: float = 0.3
    """Chance that a recording also holds a quieter call of another species."""
    nocall_window_probability: float = 0.3
    """Fraction of soundscape windows with no call placed in them (at least one when > 0)."""

    @classmethod
    def quick(cls) -> SynthConfig:
        """A tiny dataset for smoke tests: 4 species, 3 short recordings each, one 30-s soundscape."""
        return cls(n_species=4, recordings_per_species=3, recording_seconds=(3.0, 5.0), n_soundscapes=1,
                   soundscape_seconds=30)

    def to_dict(self) -> dict[str, object]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


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


def _species_rng(seed: int, code: str, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(code.encode()), stream])


def call_models(species: tuple[Species, ...], *, seed: int) -> dict[str, CallModel]:
    """One voice per species; species 2k and 2k+1 share a band (look-alike pairs)."""
    models: dict[str, CallModel] = {}
    for index, sp in enumerate(species):
        rng = _species_rng(seed, sp.ebird_code, 0)
        pair_rng = _species_rng(seed, species[index - index % 2].ebird_code, 1)
        center = float(np.exp(pair_rng.uniform(np.log(1000.0), np.log(8500.0))))
        center *= float(rng.uniform(0.93, 1.07))
        shape = SHAPES[(index // 2 * 7 + index % 2 * 3) % len(SHAPES)]
        models[sp.ebird_code] = CallModel(
            center_hz=center,
            bandwidth_hz=float(center * rng.uniform(0.1, 0.45)),
            shape=shape,
            syllable_s=float(rng.uniform(0.05, 0.3)),
            gap_s=float(rng.uniform(0.03, 0.2)),
            syllables=int(rng.integers(1, 7)),
            harmonics=tuple(float(a) for a in [1.0, *rng.uniform(0.0, 0.6, size=int(rng.integers(0, 3)))]),
            trill_hz=float(rng.uniform(18.0, 45.0)) if rng.random() < 0.3 else 0.0,
        )
    return models


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
    """One syllable, peak ~1: float64, shape (round(duration_s * sample_rate_hz),)."""
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


def render_phrase(
    model: CallModel, *, sample_rate_hz: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A phrase varied per call: returns (float64 samples, [(start_s, end_s) of each syllable])."""
    pitch = float(rng.normal(1.0, 0.035))
    tempo = float(np.clip(rng.normal(1.0, 0.08), 0.75, 1.3))
    count = max(1, model.syllables + int(rng.integers(-1, 2)))
    syllable_s, gap_s = model.syllable_s * tempo, model.gap_s * tempo
    step = int(round((syllable_s + gap_s) * sample_rate_hz))
    syllable = render_syllable(model, sample_rate_hz=sample_rate_hz, pitch=pitch, duration_s=syllable_s)
    out = np.zeros(step * (count - 1) + syllable.size)
    spans = []
    for i in range(count):
        out[i * step : i * step + syllable.size] += syllable * float(rng.uniform(0.7, 1.0))
        spans.append((i * step / sample_rate_hz, (i * step + syllable.size) / sample_rate_hz))
    return out, spans


def background_noise(n_samples: int, *, rng: np.random.Generator) -> np.ndarray:
    """Pink-ish and brown-ish noise plus sparse clicks, RMS 1: float64 (n_samples,)."""
    white = rng.standard_normal(n_samples)
    spectrum = np.fft.rfft(white)
    f = np.arange(spectrum.size) + 1.0
    tilt = float(rng.uniform(0.5, 1.6))  # 1 = pink, 2 = brown
    noise = np.fft.irfft(spectrum / f ** (tilt / 2), n=n_samples)
    clicks = (rng.random(n_samples) < 2e-5) * rng.standard_normal(n_samples) * 20
    noise = noise / max(float(np.std(noise)), 1e-12) + clicks
    return noise / max(float(np.std(noise)), 1e-12)


def _mix(target: np.ndarray, call: np.ndarray, start: int, *, gain: float) -> None:
    end = min(target.size, start + call.size)
    if end > start:
        target[start:end] += gain * call[: end - start]


def _snr_gain(call: np.ndarray, *, noise_rms: float, snr_db: float) -> float:
    active = call[np.abs(call) > 1e-3]
    call_rms = float(np.sqrt(np.mean(active**2))) if active.size else 1.0
    return noise_rms * 10 ** (snr_db / 20) / call_rms


def _normalise(samples: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    peak = float(rng.uniform(0.3, 0.9))
    return (samples * (peak / max(float(np.max(np.abs(samples))), 1e-12))).astype(np.float32)


def render_recording(
    code: str, *, models: dict[str, CallModel], config: SynthConfig, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A train_short_audio recording of `code`: (float32 samples, secondary labels)."""
    sr = config.sample_rate_hz
    n = int(round(rng.uniform(*config.recording_seconds) * sr))
    noise_rms = 0.05
    out = background_noise(n, rng=rng) * noise_rms
    position = float(rng.uniform(0.0, 0.5))
    while position < n / sr - 0.3:
        phrase, _ = render_phrase(models[code], sample_rate_hz=sr, rng=rng)
        _mix(out, phrase, int(position * sr), gain=_snr_gain(phrase, noise_rms=noise_rms,
                                                             snr_db=float(rng.uniform(*config.snr_db))))
        position += phrase.size / sr + float(rng.uniform(0.4, 2.0))
    secondary: tuple[str, ...] = ()
    others = [c for c in models if c != code]
    if others and rng.random() < config.secondary_probability:
        other = others[int(rng.integers(len(others)))]
        phrase, _ = render_phrase(models[other], sample_rate_hz=sr, rng=rng)
        start = int(rng.integers(0, max(1, n - phrase.size)))
        _mix(out, phrase, start, gain=_snr_gain(phrase, noise_rms=noise_rms,
                                                snr_db=float(rng.uniform(config.snr_db[0], config.snr_db[0] + 8))))
        secondary = (other,)
    return _normalise(out, rng=rng), secondary


def render_soundscape(
    *, models: dict[str, CallModel], config: SynthConfig, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """A soundscape and the birds of each scored 5-s window (empty tuple = nocall)."""
    sr = config.sample_rate_hz
    window_s = bc.WINDOW_SECONDS
    n_windows = config.soundscape_seconds // window_s
    n = config.soundscape_seconds * sr
    noise_rms = 0.05
    out = background_noise(n, rng=rng) * noise_rms
    codes = list(models)
    # seconds of syllable sound of each species inside each window
    presence = [dict.fromkeys(codes, 0.0) for _ in range(n_windows)]
    n_silent = int(round(config.nocall_window_probability * n_windows))
    if config.nocall_window_probability > 0:
        n_silent = max(1, n_silent)
    silent = set(rng.choice(n_windows, size=min(n_silent, n_windows), replace=False).tolist())
    for w in range(n_windows):
        if w in silent:
            continue
        for _ in range(int(rng.integers(1, 3))):
            code = codes[int(rng.integers(len(codes)))]
            phrase, spans = render_phrase(models[code], sample_rate_hz=sr, rng=rng)
            start_s = w * window_s + float(rng.uniform(0.0, window_s - min(phrase.size / sr, window_s - 0.5)))
            _mix(out, phrase, int(start_s * sr), gain=_snr_gain(phrase, noise_rms=noise_rms,
                                                                snr_db=float(rng.uniform(*config.snr_db))))
            for a, b in spans:
                a, b = a + start_s, b + start_s
                for k in range(int(a // window_s), min(n_windows, int(b // window_s) + 1)):
                    overlap = min(b, (k + 1) * window_s) - max(a, k * window_s)
                    if overlap > 0:
                        presence[k][code] += overlap
    # a species is labelled in a window when >= 40 ms of its syllables fall inside it
    labels = [tuple(c for c in codes if presence[w][c] >= 0.04) for w in range(n_windows)]
    return _normalise(out, rng=rng), labels


@dataclass(frozen=True)
class SynthSummary:
    dest: Path
    species: int
    recordings: int
    soundscapes: int
    soundscape_rows: int
    nocall_rows: int

    def describe(self) -> str:
        return (f"synthetic BirdCLEF 2021 dataset in {self.dest}: {self.species} species, {self.recordings} recordings, "
                f"{self.soundscapes} soundscapes ({self.soundscape_rows} rows, {self.nocall_rows} nocall)")


def synthesize(*, dest: str | Path, config: SynthConfig = SynthConfig(), species_csv: Path | None = None) -> SynthSummary:
    """Write the synthetic dataset to `dest` in BirdCLEF 2021 layout (overwrites its files)."""
    dest = Path(dest)
    species = load_species(species_csv)
    if not 1 <= config.n_species <= len(species):
        raise UserError(f"n_species must be in [1, {len(species)}], got {config.n_species}")
    if config.soundscape_seconds % bc.WINDOW_SECONDS:
        raise UserError(f"soundscape_seconds must be a multiple of {bc.WINDOW_SECONDS}")
    species = species[: config.n_species]
    models = call_models(species, seed=config.seed)
    sr = config.sample_rate_hz
    dest.mkdir(parents=True, exist_ok=True)
    (dest / SYNTH_MANIFEST).unlink(missing_ok=True)

    rows = []
    file_number = 100000
    for sp in species:
        for i in range(config.recordings_per_species):
            rng = _species_rng(config.seed, sp.ebird_code, 100 + i)
            samples, secondary = render_recording(sp.ebird_code, models=models, config=config, rng=rng)
            file_number += 1
            filename = f"XC{file_number}.ogg"
            write_ogg_vorbis(dest / bc.SHORT_AUDIO_DIR / sp.ebird_code / filename, samples, sample_rate_hz=sr)
            rows.append({
                "primary_label": sp.ebird_code,
                "secondary_labels": repr(list(secondary)),
                "type": repr(["call"] if rng.random() < 0.6 else ["call", "song"]),
                "latitude": f"{rng.uniform(47.3, 48.8):.4f}",
                "longitude": f"{rng.uniform(-4.7, -1.2):.4f}",
                "scientific_name": sp.scientific_name,
                "common_name": sp.common_name,
                "author": "birdlab synthetic",
                "date": f"2021-{int(rng.integers(3, 8)):02d}-{int(rng.integers(1, 29)):02d}",
                "filename": filename,
                "license": "CC0 1.0 (synthetic audio generated by birdlab)",
                "rating": f"{float(rng.integers(4, 11)) / 2:.1f}",
                "time": f"{int(rng.integers(5, 20)):02d}:{int(rng.integers(0, 60)):02d}",
                "url": f"synthetic:seed={config.seed}/{sp.ebird_code}/{i}",
            })
    with (dest / bc.METADATA_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=bc.METADATA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)

    label_rows = []
    scape_dir = dest / bc.SOUNDSCAPES_DIR
    for j in range(config.n_soundscapes):
        rng = np.random.default_rng([config.seed, 7, j])
        samples, windows = render_soundscape(models=models, config=config, rng=rng)
        audio_id, site = 20000 + 137 * j, _SITES[j % len(_SITES)]
        date = f"2021{int(rng.integers(4, 7)):02d}{int(rng.integers(1, 29)):02d}"
        write_ogg_vorbis(scape_dir / f"{audio_id}_{site}_{date}.ogg", samples, sample_rate_hz=sr)
        for w, birds in enumerate(windows):
            seconds = (w + 1) * bc.WINDOW_SECONDS
            label_rows.append({"row_id": f"{audio_id}_{site}_{seconds}", "site": site, "audio_id": audio_id,
                               "seconds": seconds, "birds": " ".join(birds) if birds else bc.NOCALL})
    with (dest / bc.SOUNDSCAPE_LABELS_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=bc.SOUNDSCAPE_LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(label_rows)

    manifest = {"format_version": SYNTH_FORMAT_VERSION, "config": config.to_dict(),
                "species": [s.ebird_code for s in species]}
    (dest / SYNTH_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return SynthSummary(dest=dest, species=len(species), recordings=len(rows), soundscapes=config.n_soundscapes,
                        soundscape_rows=len(label_rows),
                        nocall_rows=sum(1 for r in label_rows if r["birds"] == bc.NOCALL))


def is_synthesized(dest: str | Path, *, config: SynthConfig) -> bool:
    """True when `dest` holds a complete synthetic dataset made with this exact config."""
    manifest = Path(dest) / SYNTH_MANIFEST
    if not manifest.is_file():
        return False
    try:
        saved = json.loads(manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return saved.get("format_version") == SYNTH_FORMAT_VERSION and saved.get("config") == config.to_dict()


def ensure_synthetic(*, dest: str | Path, config: SynthConfig = SynthConfig()) -> bool:
    """Synthesise into `dest` unless it already holds this config's dataset; True if it wrote."""
    if is_synthesized(dest, config=config):
        return False
    synthesize(dest=dest, config=config)
    return True
