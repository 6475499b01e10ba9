"""Keras -> TFLite: float32, float16 and full-integer int8 variants, builtin ops only, batch 1.

Every variant goes through `tf.lite.TFLiteConverter.from_keras_model` on a copy of the
model whose input has a fixed batch dimension of 1, with `supported_ops` limited to
TFLITE_BUILTINS (never SELECT_TF_OPS), so the flatbuffer has no dynamic shapes and no
Flex ops. The variants:

- f32: plain float32.
- f16: weights stored as float16 (DEQUANTIZE ops expand them at load time), float32 maths.
- int8: full-integer quantisation calibrated on a representative dataset of training
  features; the input and output stay float32 (a QUANTIZE op in front, DEQUANTIZE behind).

Dynamic-range quantisation (Optimize.DEFAULT with no representative dataset) is not
offered: its ops need TF Lite >= 2.17 (see birdlab.export.audit).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from birdlab.errors import UserError

if TYPE_CHECKING:
    import keras

VARIANTS = ("f32", "f16", "int8")
"""TFLite variants in the order they are written and reported."""

MIN_REPRESENTATIVE_CLIPS = 1
"""int8 calibration needs at least one clip; a few hundred cover the dB range well."""


class ExportError(UserError):
    """The model cannot be exported as asked; the message says what to change."""


@dataclass(frozen=True)
class ExportedVariant:
    """One converted model."""

    variant: str
    """'f32', 'f16' or 'int8'."""
    path: Path
    """Where the .tflite file was written."""
    size_bytes: int


def check_variant(variant: str) -> str:
    """Return `variant` if it is one of VARIANTS, else raise ExportError naming the choices."""
    if variant not in VARIANTS:
        raise ExportError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return variant


def fixed_batch_model(model: keras.Model, *, batch_size: int = 1) -> keras.Model:
    """A functional wrapper of `model` whose input is float32 (batch_size, *model.input_shape[1:]).

    The weights are shared with `model`; only the input signature changes, so the
    converted graph has fully static shapes.
    """
    import keras

    input_shape = tuple(model.input_shape[1:])
    if any(dim is None for dim in input_shape):
        raise ExportError(f"model input shape {model.input_shape} has an unknown non-batch dimension; "
                          "build the model with a fixed (n_mels, frames, 1) input")
    inputs = keras.Input(shape=input_shape, batch_size=batch_size, dtype="float32", name="log_mel_db")
    return keras.Model(inputs, model(inputs), name=f"{model.name}_batch{batch_size}")


def _representative_batches(features: np.ndarray) -> Iterator[list[np.ndarray]]:
    for clip in features:
        yield [clip[np.newaxis].astype(np.float32)]


def convert_variant(model: keras.Model, *, variant: str, representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras model to one TFLite variant and return the flatbuffer.

    model: Keras model with input float32 (batch, n_mels, frames, 1); it is wrapped to batch 1.
    representative: float32 (n_clips, n_mels, frames, 1) training features, required for 'int8'
        (the calibration set) and ignored otherwise.
    The result has input float32 (1, n_mels, frames, 1) and output float32 (1, n_species)
    for every variant.
    """
    import tensorflow as tf

    check_variant(variant)
    fixed = fixed_batch_model(model, batch_size=1)
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "f16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        features = _check_representative(representative, input_shape=tuple(fixed.input_shape[1:]))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative_batches(features)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError and friends with long logs
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"TFLite conversion of variant {variant} failed: {first_line}") from exc


def _check_representative(representative: np.ndarray | None, *, input_shape: tuple[int, ...]) -> np.ndarray:
    if representative is None:
        raise ExportError("variant int8 needs a representative dataset of training features "
                          f"(float32, shape (n_clips, {', '.join(map(str, input_shape))}))")
    features = np.asarray(representative, dtype=np.float32)
    if features.ndim != 1 + len(input_shape) or tuple(features.shape[1:]) != input_shape:
        raise ExportError(f"representative features have shape {features.shape}; "
                          f"expected (n_clips, {', '.join(map(str, input_shape))})")
    if features.shape[0] < MIN_REPRESENTATIVE_CLIPS:
        raise ExportError("representative features are empty; give at least one training clip")
    if not np.all(np.isfinite(features)):
        raise ExportError("representative features contain NaN or infinity")
    return features


def variant_filename(variant: str) -> str:
    """'f32' -> 'model_f32.tflite'."""
    return f"model_{check_variant(variant)}.tflite"


def export_variants(
    model: keras.Model,
    *,
    out_dir: Path,
    variants: tuple[str, ...] = VARIANTS,
    representative: np.ndarray | None = None,
) -> dict[str, ExportedVariant]:
    """Write `out_dir/model_<variant>.tflite` for each variant; returns them by variant name.

    representative: see `convert_variant`; needed only when 'int8' is among the variants.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for variant in variants:
        flatbuffer = convert_variant(model, variant=variant, representative=representative)
        path = out_dir / variant_filename(variant)
        path.write_bytes(flatbuffer)
        written[variant] = ExportedVariant(variant=variant, path=path, size_bytes=len(flatbuffer))
    return written
