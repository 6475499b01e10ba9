"""TeacherModel: a raw-audio .tflite (e.g. BirdNET v2.4) that labels 5-s clips in the lab.

The teacher may use any op (BirdNET computes its spectrogram with RFFT2D inside): it never
ships to a device, only its outputs do, as training targets of the RFFT-free student.

A 5-s clip at the lab's rate becomes probabilities in four steps:
1. resample to the teacher's rate (soxr HQ, as `edge_runtime.audio.load_audio` resamples);
2. cut sub-windows of the teacher's length that cover the clip (`window_starts`);
3. run each and turn its outputs into probabilities (`to_probabilities`);
4. aggregate over the sub-windows by the maximum: a species is present in the clip when it
   is present in any part of it (BirdNET's own aggregation over a file, and BirdCLEF's
   clip-level presence labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdlab.errors import UserError
from birdlab.teacher.config import TEACHER_OUTPUTS, TeacherConfig
from edge_runtime.audio import resample
from edge_runtime.bundle import sha256_file
from edge_runtime.inference import InferenceError, TFLiteModel

PROBABILITY_EPS = 1e-7
"""Probabilities are clipped to [eps, 1 - eps] before their logit is taken ('probabilities' teachers)."""


class TeacherModelError(UserError):
    """The teacher model cannot be used; the message names the file and what to do."""


def window_starts(*, clip_samples: int, window_samples: int) -> np.ndarray:
    """Starts of the teacher's sub-windows covering a clip: int64, shape (n_windows,).

    n_windows = ceil(clip_samples / window_samples); the windows are spread evenly from 0 to
    clip_samples - window_samples, so the first starts at the clip's start, the last ends at its end,
    and neighbours overlap by the same amount. For BirdNET (3-s windows) on a 5-s clip: two windows,
    at 0 s and 2 s (1 s of overlap). Why: every sample is seen by at least one window, no window is
    zero-padded (a teacher was trained on full windows of real audio; padding would show it silence it
    never learnt) and the fewest windows are run. A clip shorter than one window gives one window at 0
    (the caller zero-pads it).
    """
    if clip_samples <= window_samples:
        return np.zeros(1, dtype=np.int64)
    n_windows = math.ceil(clip_samples / window_samples)
    return np.round(np.linspace(0, clip_samples - window_samples, n_windows)).astype(np.int64)


def to_probabilities(outputs: np.ndarray, *, output: str, temperature: float) -> np.ndarray:
    """Teacher outputs -> probabilities in (0, 1), same shape, float32.

    'logits': sigmoid(logits / temperature) (BirdNET applies sigmoid to its logits; T > 1 softens).
    'probabilities': sigmoid(logit(p) / temperature), p clipped to [PROBABILITY_EPS, 1 - PROBABILITY_EPS].
    This is the identity at T = 1 (up to that clipping) and gives exactly what the same network
    exported without its final sigmoid would give with 'logits', so a temperature means the same thing
    whichever way the teacher was exported. (p ** (1 / T) would instead sharpen towards 0 only and
    make a T tuned on one export wrong for the other.)
    """
    if output not in TEACHER_OUTPUTS:
        raise ValueError(f"output must be one of {TEACHER_OUTPUTS}, got {output!r}")
    values = np.asarray(outputs, dtype=np.float64)
    if output == "probabilities":
        if temperature == 1.0:
            return np.clip(values, 0.0, 1.0).astype(np.float32)
        p = np.clip(values, PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
        values = np.log(p) - np.log1p(-p)
    return (0.5 * (1.0 + np.tanh(0.5 * values / temperature))).astype(np.float32)  # sigmoid without overflow


@dataclass(frozen=True)
class TeacherInfo:
    """What identifies a teacher's targets (recorded with a run, part of the target cache key)."""

    file_name: str
    sha256: str
    """sha256 of the .tflite file, hex."""
    sample_rate_hz: int
    window_samples: int
    n_labels: int
    output: str
    temperature: float


class TeacherModel:
    """One interpreter of a raw-audio teacher; not thread-safe (one per process or thread)."""

    def __init__(self, model: TFLiteModel, *, sha256: str, sample_rate_hz: int, output: str,
                 temperature: float) -> None:
        self._model = model
        self.path = model.path
        self.sha256 = sha256
        self.sample_rate_hz = sample_rate_hz
        self.output = output
        self.temperature = temperature
        shape = model.input_info.shape
        if len(shape) != 2 or shape[1] < 1 or model.input_info.dtype != "float32":
            raise TeacherModelError(
                f"{self.path}: the teacher's input must be raw audio, float32 [1, N]; this model takes "
                f"{model.input_info.dtype} {list(shape)}. Use a model whose input is a waveform (e.g. BirdNET v2.4)")
        self.window_samples = int(shape[1])
        out_shape = model.output_info.shape
        if len(out_shape) != 2:
            raise TeacherModelError(f"{self.path}: the teacher's output must be [1, n_labels], got {list(out_shape)}")
        self.n_labels = int(out_shape[1])

    @classmethod
    def load(cls, path: str | Path, *, sample_rate_hz: int = 48000, output: str = "logits",
             temperature: float = 1.0, backend: str = "auto", num_threads: int = 1) -> TeacherModel:
        """Load the .tflite at `path` (LiteRT first, tflite_runtime as the fallback)."""
        path = Path(path)
        if not path.is_file():
            raise TeacherModelError(f"{path}: teacher model not found; set teacher_model to a .tflite file "
                                    "(for BirdNET: python -m birdlab teacher fetch-birdnet)")
        if output not in TEACHER_OUTPUTS:
            raise TeacherModelError(f"teacher output must be one of {TEACHER_OUTPUTS}, got {output!r}")
        try:
            model = TFLiteModel.load(path, num_threads=num_threads, backend=backend)
        except InferenceError as exc:
            raise TeacherModelError(str(exc)) from None
        return cls(model, sha256=sha256_file(path), sample_rate_hz=sample_rate_hz, output=output,
                   temperature=temperature)

    @classmethod
    def from_config(cls, config: TeacherConfig, *, backend: str = "auto", num_threads: int = 1) -> TeacherModel:
        return cls.load(config.teacher_model, sample_rate_hz=config.teacher_sample_rate_hz,
                        output=config.teacher_output, temperature=config.teacher_temperature, backend=backend,
                        num_threads=num_threads)

    @property
    def info(self) -> TeacherInfo:
        return TeacherInfo(file_name=self.path.name, sha256=self.sha256, sample_rate_hz=self.sample_rate_hz,
                           window_samples=self.window_samples, n_labels=self.n_labels, output=self.output,
                           temperature=self.temperature)

    def check_labels(self, labels: tuple[str, ...] | list[str], *, labels_path: str | Path) -> None:
        """Raise TeacherModelError unless there is exactly one label per output."""
        if len(labels) != self.n_labels:
            raise TeacherModelError(f"{labels_path}: {len(labels)} labels for the {self.n_labels} outputs of "
                                    f"{self.path.name}; teacher_labels must be the labels file of this model")

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sample_rate_hz

    def window_outputs(self, windows: np.ndarray) -> np.ndarray:
        """Raw outputs of the teacher. windows: float32 (n, window_samples) at the teacher's rate.
        Returns float32 (n, n_labels), as the model gives them (logits or probabilities)."""
        return self._model.predict(np.ascontiguousarray(windows, dtype=np.float32))

    def clip_probabilities(self, samples: np.ndarray, *, sample_rate_hz: int) -> np.ndarray:
        """Teacher probabilities of one clip, max over its sub-windows.

        samples: float32 (n_samples,), mono, at sample_rate_hz (the lab's rate; a 5-s clip in training).
        Returns float32 (n_labels,), in (0, 1).
        """
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"samples must be mono (n_samples,), got shape {samples.shape}")
        audio = samples if sample_rate_hz == self.sample_rate_hz else resample(
            samples, orig_rate_hz=sample_rate_hz, target_rate_hz=self.sample_rate_hz)
        n = self.window_samples
        starts = window_starts(clip_samples=audio.shape[0], window_samples=n)
        windows = np.zeros((starts.size, n), dtype=np.float32)
        for row, start in enumerate(starts):
            part = audio[start : start + n]
            windows[row, : part.shape[0]] = part
        probabilities = to_probabilities(self.window_outputs(windows), output=self.output,
                                         temperature=self.temperature)
        return probabilities.max(axis=0)
