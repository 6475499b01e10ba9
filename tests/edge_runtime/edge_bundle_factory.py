"""Test bundles made by code: a tiny "tone detector" TFLite model, real wasm, real manifest.

The model max-pools each mel band over time and has one sigmoid output per label; output k
looks only at the mel band of TONES_HZ[k]: logit = TONE_WEIGHT * (band dB - TONE_CUTOFF_DB).
A window holding tone k therefore gives label k a confidence near 1, silence near 0: a known
answer for the whole pipeline. TensorFlow is imported here only (tests may; edge_runtime may not),
and the bundle is built once per session under pytest's base temp directory.
"""

from __future__ import annotations

import csv
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.bundle import write_manifest
from edge_runtime.spec import FeatureSpec

TONES_HZ = (1000.0, 2500.0, 5000.0, 9000.0)
"""Tone frequency of each test label, in label order."""
TONE_AMPLITUDE = 0.3
TONE_WEIGHT = 0.3
"""Logit per dB above the cutoff."""
TONE_CUTOFF_DB = 0.0
"""Band level (max over the window) at which the confidence is 0.5."""
BUNDLE_THRESHOLD = 0.5
SPECIES_CSV = Path(__file__).resolve().parents[2] / "data" / "brittany_species.csv"


def label_rows(n_labels: int = len(TONES_HZ)) -> list[tuple[str, str, str]]:
    """The first n Brittany species: (ebird_code, scientific_name, common_name)."""
    with open(SPECIES_CSV, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [(r["ebird_code"], r["scientific_name"], r["common_name"]) for r in rows[:n_labels]]


def tone_band(spec: FeatureSpec, frequency_hz: float) -> int:
    """The mel band whose filter weighs the FFT bin of frequency_hz most."""
    from birdlab.features.log_mel import mel_filterbank

    bins = mel_filterbank(spec=spec)
    fft_bin = int(round(frequency_hz * spec.n_fft / spec.sample_rate_hz))
    return int(np.argmax(bins[:, fft_bin]))


def tone(frequency_hz: float, *, seconds: float, sample_rate_hz: int, amplitude: float = TONE_AMPLITUDE) -> np.ndarray:
    """float32 sine, shape (round(seconds * rate),)."""
    t = np.arange(int(round(seconds * sample_rate_hz))) / sample_rate_hz
    return (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def tone_sequence(labels: list[int | None], *, spec: FeatureSpec, seconds_each: float | None = None) -> np.ndarray:
    """Concatenated segments: tone of label k, or silence for None; each one clip long by default."""
    seconds = seconds_each or spec.clip_seconds
    parts = [
        tone(TONES_HZ[k], seconds=seconds, sample_rate_hz=spec.sample_rate_hz) if k is not None
        else np.zeros(int(round(seconds * spec.sample_rate_hz)), dtype=np.float32)
        for k in labels
    ]
    return np.concatenate(parts)


def build_tone_keras(*, spec: FeatureSpec, n_outputs: int, batch_size: int | None = 1):  # -> keras.Model
    """The tone detector as a Keras model: input (batch, n_mels, frames, 1) dB, output (batch, n_outputs) sigmoid."""
    import keras

    n_mels, frames, _ = spec.input_shape
    inputs = keras.Input(shape=spec.input_shape, batch_size=batch_size, dtype="float32")
    x = keras.layers.MaxPooling2D(pool_size=(1, frames))(inputs)
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(n_outputs, activation="sigmoid")
    outputs = dense(x)
    kernel = np.zeros((n_mels, n_outputs), dtype=np.float32)
    for k in range(n_outputs):
        kernel[tone_band(spec, TONES_HZ[k % len(TONES_HZ)]), k] = TONE_WEIGHT
    bias = np.full(n_outputs, -TONE_WEIGHT * TONE_CUTOFF_DB, dtype=np.float32)
    dense.set_weights([kernel, bias])
    return keras.Model(inputs, outputs)


def build_tone_tflite(path: Path, *, spec: FeatureSpec, n_outputs: int) -> Path:
    """Write the tone-detector TFLite model for `spec` with n_outputs labels (tones cycle if more)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(build_tone_keras(spec=spec, n_outputs=n_outputs))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    path.write_bytes(converter.convert())
    return path


def wasm_path_or_skip() -> Path:
    """The real melspec.wasm from birdlab.frontend.wasm.build_wasm(), or skip with the reason."""
    try:
        from birdlab.frontend.wasm import build_wasm
    except ImportError as exc:
        pytest.skip(f"birdlab.frontend.wasm is not available yet ({exc}); the cpp_melspec frontend is needed")
    return Path(build_wasm())


def write_bundle(dest: Path, *, spec: FeatureSpec, model_path: Path, wasm_path: Path,
                 labels: list[tuple[str, str, str]], threshold: float = BUNDLE_THRESHOLD) -> Path:
    """A bundle directory at dest from its parts; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, dest / "model.tflite")
    shutil.copyfile(wasm_path, dest / "melspec.wasm")
    spec.save(dest)
    with open(dest / "labels.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "ebird_code", "scientific_name", "common_name"])
        for i, (code, scientific, common) in enumerate(labels):
            writer.writerow([i, code, scientific, common])
    (dest / "MODEL_CARD.md").write_text("# tone detector\n\nA test model: one sine tone per label.\n", encoding="utf-8")
    write_manifest(dest, model_id="tone-detector-test", run_id="test", variant="f32", threshold=threshold,
                   metrics={"row_wise_micro_f1": 1.0}, birdlab_version="test", git_commit="test")
    return dest


def session_model(tmp_path_factory: pytest.TempPathFactory, *, n_outputs: int) -> Path:
    """The tone-detector model.tflite, converted once per session and output count."""
    path = tmp_path_factory.getbasetemp() / f"tone_detector_{n_outputs}.tflite"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        build_tone_tflite(tmp, spec=FeatureSpec(), n_outputs=n_outputs)
        tmp.replace(path)
    return path


def session_bundle(tmp_path_factory: pytest.TempPathFactory, *, n_labels: int = len(TONES_HZ),
                   n_model_outputs: int | None = None) -> Path:
    """The tone-detector bundle with the real wasm, built once per session (per label/output count).

    n_model_outputs != n_labels makes a bundle whose labels do not match the model.
    Skips (with the reason) while birdlab.frontend.wasm does not exist.
    """
    n_outputs = n_model_outputs or n_labels
    root = tmp_path_factory.getbasetemp() / f"edge_bundle_{n_labels}_{n_outputs}"
    if (root / "manifest.json").exists():
        return root
    wasm = wasm_path_or_skip()
    model = session_model(tmp_path_factory, n_outputs=n_outputs)
    return write_bundle(root, spec=FeatureSpec(), model_path=model, wasm_path=wasm, labels=label_rows(n_labels))


def copy_bundle(bundle_dir: Path, dest: Path) -> Path:
    """A private copy a test may damage."""
    shutil.copytree(bundle_dir, dest)
    return dest


def tar_bundle(bundle_dir: Path, archive: Path) -> Path:
    """bundle_dir as a .tar.gz with the files inside one top-level directory."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(bundle_dir, arcname=bundle_dir.name)
    return archive


def write_wav(path: Path, samples: np.ndarray, *, sample_rate_hz: int, subtype: str = "PCM_16") -> Path:
    """samples: float32 (n,) or (n, channels) -> an audio file via soundfile; the suffix picks the format."""
    import soundfile

    soundfile.write(str(path), samples, sample_rate_hz, subtype=subtype)
    return path
