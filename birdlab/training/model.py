"""The classifier: a small Keras 3 CNN on the log-mel, built only from ops TF Lite 1.15 had.

The model input is the log-mel spectrogram in dB exactly as `birdlab.features.log_mel.log_mel`
returns it (no RFFT/STFT inside the graph); the first layer is a fixed affine
normalisation (`x * scale + offset`, i.e. MUL + ADD) from training-set dB statistics.
Convolution + BatchNormalization + ReLU blocks fold into CONV_2D / DEPTHWISE_CONV_2D
with a fused ReLU when converted; the pooling head becomes AVERAGE_POOL_2D / MAX_POOL_2D /
ADD / RESHAPE, Dense becomes FULLY_CONNECTED and the sigmoid LOGISTIC.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birdlab.training.config_fields import dataclass_from_dict

if TYPE_CHECKING:
    import keras

# TF Lite builtins that TF Lite 1.15 already had; `check_tflite_ops` refuses anything else.
ALLOWED_TFLITE_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED",
    "ADD", "MUL", "RELU", "RELU6", "LOGISTIC", "SOFTMAX", "RESHAPE",
})
MAX_DEFAULT_PARAMETERS = 1_000_000
NORMALISATION_LAYER = "normalise_db"
MODEL_PRESETS = ("tiny", "default")
TIME_POOLINGS = ("mean", "max", "mean+max")
DB_REFERENCES = ("fixed", "window_max")
MAX_MEMBERS = 8
OUTPUT_LAYER = "species"


class ModelOpError(ValueError):
    """The converted model uses an op outside ALLOWED_TFLITE_OPS."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the CNN: a strided stem, depthwise-separable blocks, a small head."""

    name: str = "default"
    """Preset name, recorded in the run's config.json."""
    db_reference: str = "fixed"
    """What 0 dB means to the network. 'fixed': the FeatureSpec's dB as they come (re its fixed db_ref), so a
    recording's level reaches the network. 'window_max': the graph first subtracts the window's loudest value
    (MAX_POOL_2D over the whole input, MUL by -1, ADD), so the network sees dB re the window's peak, as librosa's
    power_to_db(ref=np.max) gives, whatever the recorder's gain. The model input is the FeatureSpec's dB either way."""
    stem_filters: int = 16
    """Filters of the first 3x3 convolution (stride stem_stride)."""
    stem_stride: tuple[int, int] = (2, 2)
    """(mel, time) stride of the stem: halves both axes for the default."""
    stem_pool: bool = True
    """2x2 max-pool right after the stem: the blocks then run at a quarter of the resolution."""
    block_filters: tuple[int, ...] = (48, 96, 128, 192, 256)
    """Pointwise filters of each depthwise-separable block; each block ends in a 2x2 max-pool."""
    kernel_size: int = 3
    """Kernel size of the stem and of the depthwise convolutions."""
    head_units: int = 256
    """Units of the hidden dense layer before the output; 0 = no hidden layer."""
    dropout: float = 0.25
    """Dropout rate before each dense layer (training only; absent from the TFLite graph)."""
    time_pooling: str = "mean+max"
    """How the last feature map becomes one vector: mean over mel bands, then over time 'mean', 'max'
    or 'mean+max' (their sum: a short call in a long window still counts)."""
    batchnorm_momentum: float = 0.9
    """Momentum of the BatchNorm moving statistics (0.9 settles within an epoch of a small dataset)."""
    members: int = 1
    """Independently initialised copies of the network after the shared normalisation, whose sigmoid outputs the
    graph averages (ADD, MUL): an ensemble in one TF Lite model. Training gives each member its own loss on the
    same batches (`member_outputs_model`, birdlab.training.members), so they stay different models; the model's
    cost grows about `members` times. 1 = a single network, layer names unchanged."""

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise ValueError(f"model config field '{field}': {what} (got {getattr(self, field)!r})")

        need(self.stem_filters > 0, "stem_filters", "must be > 0")
        need(len(self.stem_stride) == 2 and min(self.stem_stride) >= 1, "stem_stride", "must be two integers >= 1")
        need(len(self.block_filters) > 0 and min(self.block_filters) > 0, "block_filters", "must be positive integers")
        need(self.kernel_size in (1, 3, 5), "kernel_size", "must be 1, 3 or 5")
        need(self.head_units >= 0, "head_units", "must be >= 0")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        need(self.time_pooling in TIME_POOLINGS, "time_pooling", f"must be one of {TIME_POOLINGS}")
        need(self.db_reference in DB_REFERENCES, "db_reference", f"must be one of {DB_REFERENCES}")
        need(0.0 < self.batchnorm_momentum < 1.0, "batchnorm_momentum", "must be in (0, 1)")
        need(1 <= self.members <= MAX_MEMBERS, "members", f"must be in [1, {MAX_MEMBERS}]")

    @property
    def re_window_peak(self) -> bool:
        """True when the graph subtracts the window's peak, so its normalisation statistics are of dB re the peak."""
        return self.db_reference == "window_max"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model config") -> ModelConfig:
        return dataclass_from_dict(cls, data, source=source, what="model", tuple_fields=("stem_stride", "block_filters"))


def default() -> ModelConfig:
    """The default model: ~0.2 M parameters, ~12 M multiply-adds for a 64 x 501 input."""
    return ModelConfig()


def tiny() -> ModelConfig:
    """A few thousand parameters: trains in seconds, for tests."""
    return ModelConfig(name="tiny", stem_filters=8, stem_stride=(2, 2), stem_pool=True, block_filters=(16, 16),
                       head_units=0, dropout=0.1)


def preset(name: str) -> ModelConfig:
    """Model preset by name ('tiny' or 'default')."""
    presets = {"tiny": tiny, "default": default}
    if name not in presets:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(presets)}")
    return presets[name]()


def build_model(
    *,
    config: ModelConfig,
    input_shape: tuple[int, int, int],
    n_species: int,
    norm_mean_db: float,
    norm_std_db: float,
) -> keras.Model:
    """Build the functional Keras model (uncompiled).

    input_shape: (n_mels, frames, 1), i.e. FeatureSpec.input_shape.
    norm_mean_db, norm_std_db: training-set statistics of the log-mel dB values as the normalisation layer
        sees them (re the window's peak when config.db_reference is 'window_max'); it computes
        (x - mean) / std as x * (1 / std) + (-mean / std).
    Input: float32 (batch, n_mels, frames, 1) dB. Output: float32 (batch, n_species)
    sigmoid probabilities, in the order of labels.csv (with config.members > 1, the mean of the members'; each
    member's output is the layer `member_output_name(k)`).
    """
    import keras
    from keras import layers

    if n_species < 1:
        raise ValueError(f"n_species must be >= 1, got {n_species}")
    if not norm_std_db > 0:
        raise ValueError(f"norm_std_db must be > 0, got {norm_std_db}")

    def conv_bn_relu(x, layer, name: str):
        x = layer(x)
        x = layers.BatchNormalization(momentum=config.batchnorm_momentum, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    def network(x, p: str, output_name: str):  # p: the member's layer-name prefix ("" for a single network)
        x = conv_bn_relu(x, layers.Conv2D(config.stem_filters, config.kernel_size, strides=tuple(config.stem_stride),
                                          padding="same", use_bias=False, name=f"{p}stem_conv"), f"{p}stem")
        if config.stem_pool:
            x = layers.MaxPooling2D(2, name=f"{p}stem_pool")(x)
        for i, filters in enumerate(config.block_filters):
            x = conv_bn_relu(x, layers.DepthwiseConv2D(config.kernel_size, padding="same", use_bias=False,
                                                       name=f"{p}block{i}_dw"), f"{p}block{i}_dw")
            x = conv_bn_relu(x, layers.Conv2D(filters, 1, use_bias=False, name=f"{p}block{i}_pw"), f"{p}block{i}_pw")
            if x.shape[1] >= 2 and x.shape[2] >= 2:
                x = layers.MaxPooling2D(2, name=f"{p}block{i}_pool")(x)
        # Pooling layers, not reductions: AVERAGE_POOL_2D / MAX_POOL_2D / ADD / RESHAPE in TF Lite.
        n_bands, n_steps, channels = x.shape[1], x.shape[2], x.shape[3]
        x = layers.AveragePooling2D((n_bands, 1), name=f"{p}mel_mean")(x) if n_bands > 1 else x
        pooled = []
        if config.time_pooling in ("mean", "mean+max"):
            pooled.append(layers.AveragePooling2D((1, n_steps), name=f"{p}time_mean")(x))
        if config.time_pooling in ("max", "mean+max"):
            pooled.append(layers.MaxPooling2D((1, n_steps), name=f"{p}time_max")(x))
        x = layers.Add(name=f"{p}time_mean_plus_max")(pooled) if len(pooled) > 1 else pooled[0]
        x = layers.Reshape((channels,), name=f"{p}flatten")(x)
        if config.head_units:
            x = layers.Dropout(config.dropout, name=f"{p}head_dropout")(x)
            x = layers.Dense(config.head_units, activation="relu", name=f"{p}head")(x)
        x = layers.Dropout(config.dropout, name=f"{p}out_dropout")(x)
        return layers.Dense(n_species, activation="sigmoid", name=output_name)(x)

    inputs = keras.Input(shape=tuple(input_shape), name="log_mel_db", dtype="float32")
    x = inputs
    if config.re_window_peak:  # dB re the window's peak: MAX_POOL_2D, MUL, ADD (broadcast)
        peak = layers.MaxPooling2D(tuple(input_shape[:2]), name="window_peak")(inputs)
        x = layers.Add(name="db_re_window_peak")([inputs, layers.Rescaling(-1.0, name="negated_peak")(peak)])
    x = layers.Rescaling(scale=1.0 / float(norm_std_db), offset=-float(norm_mean_db) / float(norm_std_db),
                         name=NORMALISATION_LAYER)(x)
    if config.members == 1:
        outputs = network(x, "", OUTPUT_LAYER)
    else:  # the mean of the members' probabilities: ADD, then MUL by 1 / members
        members = [network(x, f"m{k}_", member_output_name(k)) for k in range(config.members)]
        outputs = layers.Rescaling(1.0 / config.members, name=OUTPUT_LAYER)(layers.Add(name="member_sum")(members))
    return keras.Model(inputs, outputs, name=f"birdlab_{config.name}")


def member_output_name(k: int) -> str:
    """Layer name of member k's sigmoid output in a model of several members."""
    return f"m{k}_{OUTPUT_LAYER}"


def member_outputs_model(model: keras.Model, *, members: int) -> keras.Model:
    """The model to fit when it has several members: the same layers (weights shared with `model`), the members'
    probabilities side by side as output, (batch, members * n_species), member k in columns
    [k * n_species, (k + 1) * n_species), with a birdlab.training.members.MemberMeanLoss. With one member, `model`
    itself."""
    import keras

    if members == 1:
        return model
    outputs = [model.get_layer(member_output_name(k)).output for k in range(members)]
    return keras.Model(model.inputs, keras.layers.Concatenate(name="members")(outputs), name=f"{model.name}_members")


def normalisation_of(model: keras.Model) -> tuple[float, float]:
    """(mean_db, std_db) baked into the model's normalisation layer."""
    layer = model.get_layer(NORMALISATION_LAYER)
    std = 1.0 / float(layer.scale)
    return -float(layer.offset) * std, std


def convert_to_tflite(model: keras.Model, *, batch_size: int = 1) -> bytes:
    """Convert to a float32 TFLite flatbuffer with a fixed input shape and builtin ops only.

    The graph is exported with input (batch_size, n_mels, frames, 1): no dynamic shapes.
    Raises ModelOpError if the result uses an op outside ALLOWED_TFLITE_OPS.
    """
    import tensorflow as tf

    shape = (batch_size, *model.input_shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved_model"
        model.export(str(saved), format="tf_saved_model", verbose=False,
                     input_signature=[tf.TensorSpec(shape, tf.float32, name="log_mel_db")])
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flatbuffer = converter.convert()
    check_tflite_ops(flatbuffer)
    return flatbuffer


def tflite_op_names(flatbuffer: bytes) -> list[str]:
    """Builtin op names of every node of a TFLite model, in graph order (via the LiteRT interpreter)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    return [detail["op_name"] for detail in interpreter._get_ops_details()]


def check_tflite_ops(flatbuffer: bytes) -> None:
    """Raise ModelOpError naming each op outside ALLOWED_TFLITE_OPS."""
    extra = sorted(set(tflite_op_names(flatbuffer)) - ALLOWED_TFLITE_OPS)
    if extra:
        raise ModelOpError(
            f"converted model uses op(s) {extra} that TF Lite 1.15 lacks; allowed: {sorted(ALLOWED_TFLITE_OPS)}. "
            "Change the architecture in birdlab/training/model.py (no signal ops, no SUB/RSQRT normalisation layers)"
        )
