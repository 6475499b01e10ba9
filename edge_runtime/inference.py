"""TFLite inference: LiteRT (`ai_edge_litert`) first, `tflite_runtime` as the fallback.

The interpreter package is chosen at run time (`backend='auto'`) or named explicitly.
The model takes float32 (batch, n_mels, frames, 1) log-mel dB and returns float32
(batch, n_species) probabilities.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.errors import EdgeRuntimeError

BACKENDS = ("ai_edge_litert", "tflite_runtime")
"""Interpreter packages in the order `auto` tries them."""


class InferenceError(EdgeRuntimeError):
    """The model cannot be loaded or run; the message says which file and what to do."""


def interpreter_class(backend: str = "auto") -> tuple[type, str]:
    """The Interpreter class of `backend` ('auto', 'ai_edge_litert' or 'tflite_runtime') and its name."""
    if backend not in ("auto", *BACKENDS):
        raise InferenceError(f"interpreter backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    tried = []
    for name in BACKENDS if backend == "auto" else (backend,):
        try:
            module = importlib.import_module(f"{name}.interpreter")
        except ImportError as exc:
            tried.append(f"{name} ({exc})")
            continue
        return module.Interpreter, name
    raise InferenceError(
        "no TFLite interpreter available: tried " + ", ".join(tried)
        + "; pip install ai-edge-litert (or 'numpy<2' tflite-runtime==2.14.0)"
    )


@dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype of a model input or output, batch dimension included."""

    shape: tuple[int, ...]
    dtype: str


class TFLiteModel:
    """One TFLite interpreter for one model; not thread-safe (use one per thread)."""

    def __init__(self, interpreter: Any, *, backend: str, path: Path) -> None:
        self._interpreter = interpreter
        self.backend = backend
        self.path = path
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise InferenceError(f"{path}: expected 1 input and 1 output tensor, got {len(inputs)} and {len(outputs)}")
        self._input = inputs[0]
        self._output = outputs[0]
        self._batch = 0

    @classmethod
    def load(cls, path: str | Path, *, num_threads: int = 1, backend: str = "auto") -> TFLiteModel:
        """Load `path` with `num_threads` interpreter threads; raises InferenceError for an unusable model."""
        path = Path(path)
        cls_, name = interpreter_class(backend)
        try:
            interpreter = cls_(model_path=str(path), num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"{path}: the TFLite interpreter ({name}) cannot load it ({exc}); re-export the model") from None
        model = cls(interpreter, backend=name, path=path)
        model._batch = int(model._input["shape"][0])
        return model

    @property
    def input_info(self) -> TensorInfo:
        return TensorInfo(tuple(int(d) for d in self._input["shape"]), np.dtype(self._input["dtype"]).name)

    @property
    def output_info(self) -> TensorInfo:
        return TensorInfo(tuple(int(d) for d in self._output["shape"]), np.dtype(self._output["dtype"]).name)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """batch: float32 (b, n_mels, frames, 1) log-mel dB. Returns float32 (b, n_outputs).

        Models are exported with a fixed batch size (1): larger batches run row by row.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        expected = self.input_info.shape[1:]
        if batch.shape[1:] != expected:
            raise InferenceError(f"{self.path}: input shape {batch.shape[1:]} does not match the model's {expected}")
        if batch.shape[0] == self._batch:
            return self._invoke(batch)
        if self._batch != 1:
            raise InferenceError(f"{self.path}: the model takes batches of {self._batch}, got {batch.shape[0]}")
        return np.concatenate([self._invoke(batch[i : i + 1]) for i in range(batch.shape[0])])

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input["index"], _quantize(batch, self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output["index"]), self._output)


def _quantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """float32 -> the tensor's dtype; integer tensors use their (scale, zero_point)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """The tensor's dtype -> float32 (a copy: the interpreter reuses its buffers)."""
    if np.dtype(detail["dtype"]).kind == "f":
        return np.array(values, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
