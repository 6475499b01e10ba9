"""A tiny raw-audio teacher .tflite, built by the tests with TensorFlow, with RFFT2D inside.

Graph: waveform float32 [1, N] at the teacher's rate -> tf.signal.stft (RFFT2D in TF Lite)
-> power -> energy in K frequency bands per frame -> log of each band's share of the frame's
energy -> max over frames -> a fixed linear layer -> logits [1, n_labels]. A band's logit is
high when some frame holds most of its energy in that band: a tone or a call in band k makes
label k's logit the highest.

`synth_teacher` gives the bands of birdlab.synth's voices (each species' FM range, widened for
the pitch jitter), so the teacher *knows* the synthetic species up to their look-alike pairs
(a pair shares a band, so it fires for both). Its labels are BirdNET-style
`Scientific name_Common name` lines, in another order than the species CSV, with distractor
labels first, so the mapping by scientific name is exercised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdlab.species import Species
from birdlab.synth import call_models

TEACHER_SAMPLE_RATE_HZ = 24000
"""Nyquist 12 kHz: above every synthetic voice (centres up to ~9.1 kHz plus half their FM range)."""
TEACHER_WINDOW_SAMPLES = 48000
"""2-s windows: a 5-s clip is covered by 3 of them (starts 0, 1.5 and 3 s)."""
FRAME_LENGTH = 512
FRAME_STEP = 256
SHARE_THRESHOLD = 0.2
"""A band holding this share of a frame's energy gives logit 0."""
LOGIT_GAIN = 3.0
"""Logit per unit of log share."""
DISTRACTOR_LABELS = ("Homo sapiens_Human vocal", "Canis familiaris_Dog")
"""Labels the tiny teacher has for no synthetic species (as BirdNET has thousands)."""
DISTRACTOR_BIAS = -8.0
"""Their constant logit."""


@dataclass(frozen=True)
class TinyTeacher:
    model_path: Path
    labels_path: Path
    labels: tuple[str, ...]
    bands_hz: tuple[tuple[float, float], ...]
    """(low, high) band of each non-distractor label, in the labels' order after the distractors."""


def build_tiny_teacher(out_dir: Path, *, bands_hz: Sequence[tuple[float, float]], labels: Sequence[str],
                       sample_rate_hz: int = TEACHER_SAMPLE_RATE_HZ,
                       window_samples: int = TEACHER_WINDOW_SAMPLES) -> TinyTeacher:
    """Write out_dir/teacher.tflite and out_dir/labels.txt: len(DISTRACTOR_LABELS) + len(labels) outputs,
    the distractors first, then one per band (label i <-> band i)."""
    import tensorflow as tf

    if len(bands_hz) != len(labels):
        raise ValueError("one label per band")
    n_bins = FRAME_LENGTH // 2 + 1
    bin_hz = np.arange(n_bins) * sample_rate_hz / FRAME_LENGTH
    band_matrix = np.stack([((bin_hz >= lo) & (bin_hz <= hi)).astype(np.float32) for lo, hi in bands_hz], axis=1)
    n_labels = len(DISTRACTOR_LABELS) + len(labels)
    weights = np.zeros((len(bands_hz), n_labels), dtype=np.float32)
    bias = np.full(n_labels, DISTRACTOR_BIAS, dtype=np.float32)
    for k in range(len(bands_hz)):
        weights[k, len(DISTRACTOR_LABELS) + k] = LOGIT_GAIN
        bias[len(DISTRACTOR_LABELS) + k] = -LOGIT_GAIN * np.log(SHARE_THRESHOLD)

    @tf.function(input_signature=[tf.TensorSpec([1, window_samples], tf.float32)])
    def teacher(waveform: tf.Tensor) -> tf.Tensor:
        spectrum = tf.signal.stft(waveform, frame_length=FRAME_LENGTH, frame_step=FRAME_STEP,
                                  fft_length=FRAME_LENGTH)  # complex [1, frames, bins]: RFFT2D in TF Lite
        power = tf.square(tf.abs(spectrum))
        band_power = tf.tensordot(power, tf.constant(band_matrix), axes=1)  # [1, frames, bands]
        total = tf.reduce_sum(power, axis=-1, keepdims=True) + 1e-10
        share = tf.math.log(band_power / total + 1e-6)
        score = tf.reduce_max(share, axis=1)  # [1, bands]
        return tf.matmul(score, tf.constant(weights)) + tf.constant(bias)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([teacher.get_concrete_function()], teacher)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "teacher.tflite"
    model_path.write_bytes(converter.convert())
    all_labels = (*DISTRACTOR_LABELS, *labels)
    labels_path = out_dir / "labels.txt"
    labels_path.write_text("\n".join(all_labels), encoding="utf-8")  # no trailing newline, as BirdNET's file
    return TinyTeacher(model_path, labels_path, all_labels, tuple((float(lo), float(hi)) for lo, hi in bands_hz))


def voice_band_hz(center_hz: float, bandwidth_hz: float) -> tuple[float, float]:
    """The range a synthetic voice sweeps (centre +- half its FM range), widened by the +-7 % pitch jitter."""
    return (0.9 * (center_hz - 0.5 * bandwidth_hz), 1.1 * (center_hz + 0.5 * bandwidth_hz))


def synth_teacher(out_dir: Path, *, species: Sequence[Species], seed: int) -> TinyTeacher:
    """A tiny teacher that knows birdlab.synth's voices of `species` (SynthConfig.seed = seed).

    Labels are in reverse species order (so index != species index) after the distractors.
    """
    models = call_models(tuple(species), seed=seed)
    ordered = list(reversed(species))
    bands = [voice_band_hz(models[sp.ebird_code].center_hz, models[sp.ebird_code].bandwidth_hz) for sp in ordered]
    labels = [f"{sp.scientific_name}_{sp.common_name}" for sp in ordered]
    return build_tiny_teacher(out_dir, bands_hz=bands, labels=labels)
