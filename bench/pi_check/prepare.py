"""The host side of `make pi-check`: the bundle and the audio both sides analyse.

The bundle is the test suite's tone detector (tests/edge_runtime/edge_bundle_factory.py): a real TFLite
model converted by TensorFlow (max-pool over time, one dense sigmoid per label, 4 labels) and the real
melspec.wasm from cpp_melspec/, with a real manifest. It is the cheapest real bundle: no training, one
conversion (cached under the pi-check cache by the factory's source and the wasm's sha256), and its
decisions are known answers on tones.

The audio, under WORK/audio/:
- `decoded/`: 32 kHz mono float32 WAV, which every interpreter can read without soxr or soundfile (the
  tflite-runtime venv has neither): a synthetic tone sequence (tones of each label, silences, seeded
  noise, a partial last window) and each real recording decoded and resampled on the host;
- `original/`: the real recordings as they are (wav/ogg/mp3, 44.1 kHz, stereo, PCM32), decoded on each
  side by edge_runtime itself (soundfile + soxr), for the venvs that have them.
WORK/audio_sets.json lists both sets, relative to WORK/audio.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from edge_runtime.audio import load_audio
from edge_runtime.spec import FeatureSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
FACTORY_PATH = REPO_ROOT / "tests" / "edge_runtime" / "edge_bundle_factory.py"
REAL_FILES = (
    "birdnet-go_amerob_44s.wav",
    "birdnet-go_tawnyowl_15s_pcm32.wav",
    "maad_spinetail_20s.wav",
    "librosa_robin_inspectorj_456440_44k_stereo.hq.ogg",
    "opso_XC135601_golden-winged_warbler_stereo_10s.mp3",
)
"""Recordings of $BIRDLAB_REAL_AUDIO/robustness used when present: 44.1 kHz, PCM32, 22 kHz... WAV, stereo OGG, stereo MP3."""
SYNTHETIC_LABELS = (0, None, 1, 2, 3, 3, None, 0, 2)
"""Tone of label k (None: silence) in each 5-s segment of the synthetic file."""
SYNTHETIC_NOISE_AMPLITUDE = 0.01
SEED = 20260601


@dataclass(frozen=True)
class AudioSets:
    """The files each interpreter analyses, relative to WORK/audio."""

    decoded: tuple[str, ...]
    """32 kHz mono float32 WAVs: read by every venv."""
    original: tuple[str, ...]
    """Real recordings as published: read by the venvs that have soundfile and soxr."""

    def to_dict(self) -> dict[str, list[str]]:
        return {"decoded": list(self.decoded), "original": list(self.original)}


def load_factory() -> ModuleType:
    """tests/edge_runtime/edge_bundle_factory.py, the test suite's bundle builder, as a module."""
    spec = importlib.util.spec_from_file_location("edge_bundle_factory", FACTORY_PATH)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{FACTORY_PATH}: cannot load the bundle factory")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("edge_bundle_factory", module)
    spec.loader.exec_module(module)
    return module


def tone_bundle(*, cache_dir: Path) -> Path:
    """The tone-detector bundle (4 labels) under cache_dir, built when its key is new; returns its directory."""
    factory = load_factory()
    try:  # the factory knows where birdlab builds melspec.wasm (cached by source hash)
        wasm = Path(factory.wasm_path_or_skip())
    except BaseException as exc:  # outside pytest, pytest.skip raises its Skipped (a BaseException)
        if type(exc).__name__ != "Skipped":
            raise
        raise RuntimeError(f"melspec.wasm cannot be built here: {exc}") from None
    key = hashlib.sha256(FACTORY_PATH.read_bytes() + wasm.read_bytes()).hexdigest()[:16]
    bundle_dir = cache_dir / f"bundle-{key}"
    if (bundle_dir / "manifest.json").exists():
        return bundle_dir
    tmp = cache_dir / f".bundle-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    spec = FeatureSpec()
    n_labels = len(factory.TONES_HZ)
    model = factory.build_tone_tflite(tmp / "tone_detector.tflite", spec=spec, n_outputs=n_labels)
    factory.write_bundle(tmp / "bundle", spec=spec, model_path=model, wasm_path=wasm,
                         labels=factory.label_rows(n_labels))
    (tmp / "bundle").rename(bundle_dir)
    shutil.rmtree(tmp)
    return bundle_dir


def synthetic_samples(*, spec: FeatureSpec) -> np.ndarray:
    """float32 (n,): the tone sequence of SYNTHETIC_LABELS plus seeded white noise, ending 2.5 s into a window."""
    factory = load_factory()
    tones = factory.tone_sequence(list(SYNTHETIC_LABELS), spec=spec)[: -spec.clip_samples // 2]
    noise = np.random.default_rng(SEED).normal(0.0, SYNTHETIC_NOISE_AMPLITUDE, tones.shape)
    return (tones + noise).astype(np.float32)


def write_float_wav(path: Path, samples: np.ndarray, *, sample_rate_hz: int) -> Path:
    """samples: float32 (n,) mono -> a 32-bit float WAV (read bit-exactly by edge_runtime's own WAV parser)."""
    import soundfile

    soundfile.write(str(path), samples, sample_rate_hz, subtype="FLOAT")
    return path


def prepare_audio(work_dir: Path, *, real_audio: Path | None, spec: FeatureSpec) -> AudioSets:
    """Write WORK/audio/{decoded,original}/ and return the sets; real_audio: $BIRDLAB_REAL_AUDIO or None."""
    audio = work_dir / "audio"
    shutil.rmtree(audio, ignore_errors=True)
    (audio / "decoded").mkdir(parents=True)
    (audio / "original").mkdir()
    rate = spec.sample_rate_hz
    decoded = [f"decoded/{write_float_wav(audio / 'decoded' / 'synthetic_tones.wav', synthetic_samples(spec=spec), sample_rate_hz=rate).name}"]
    original = []
    robustness = real_audio / "robustness" if real_audio else None
    for name in REAL_FILES if robustness and robustness.is_dir() else ():
        source = robustness / name
        if not source.is_file():
            continue
        shutil.copy2(source, audio / "original" / name)
        original.append(f"original/{name}")
        wav = write_float_wav(audio / "decoded" / f"{name}.wav", load_audio(source, sample_rate_hz=rate),
                              sample_rate_hz=rate)
        decoded.append(f"decoded/{wav.name}")
    return AudioSets(decoded=tuple(decoded), original=tuple(original))


def prepare(work_dir: Path, *, cache_dir: Path, real_audio: Path | None) -> AudioSets:
    """WORK/bundle (a copy of the cached tone bundle), WORK/audio/ and WORK/audio_sets.json."""
    work_dir.mkdir(parents=True, exist_ok=True)
    bundle = tone_bundle(cache_dir=cache_dir)
    shutil.rmtree(work_dir / "bundle", ignore_errors=True)
    shutil.copytree(bundle, work_dir / "bundle")
    sets = prepare_audio(work_dir, real_audio=real_audio, spec=FeatureSpec())
    (work_dir / "audio_sets.json").write_text(json.dumps(sets.to_dict(), indent=2) + "\n", encoding="utf-8")
    for name, files in sets.to_dict().items():
        (work_dir / f"sources_{name}.txt").write_text("".join(f + "\n" for f in files), encoding="utf-8")
    return sets
