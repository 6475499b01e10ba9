"""Op audit of a .tflite file without TensorFlow: which TF Lite runtimes can load it?

The flatbuffer is parsed with the schema module that `ai_edge_litert` ships
(`ai_edge_litert.schema_py_generated`, generated from TF Lite's schema.fbs). Each
(op, version) pair is looked up in TF Lite's own op-version table, copied below, which
says the first TF Lite runtime that implements it. The audit fails when a model holds an
RFFT2D op (an FFT inside the model: the spectrogram belongs outside it), a Flex or other
custom op, an op whose minimum runtime is newer than the floor, or an (op, version) the
table does not know. The default floor is 1.15.0: the TF Lite that tflite-rs vendors.

Dynamic-range quantisation (Optimize.DEFAULT without a representative dataset) is what
this audit exists to catch: with TF 2.21 it emits FULLY_CONNECTED v12 (TF Lite >= 2.17.0)
and CONV_2D v5 (>= 2.4.0), and writes min_runtime_version "2.17.0" into the model.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdlab.errors import UserError

DEFAULT_RUNTIME_FLOOR = "1.15.0"
"""TF Lite 1.15: the generation that tflite-rs vendors (1.15.5) and TF 1.15's tf.lite.Interpreter runs."""

FORBIDDEN_BUILTINS = ("RFFT2D",)
"""Builtin ops refused whatever the floor: an FFT in the graph means the spectrogram was computed in the model."""

TFLITE_FILE_IDENTIFIER = b"TFL3"

# TF Lite's op-version table, copied from FindMinimumRuntimeVersionForOp in
#   https://github.com/tensorflow/tensorflow/blob/03f49db5a23ec2b22a59f3f3d72e5744469ea30b/
#   tensorflow/compiler/mlir/lite/tools/versioning/runtime_version.cc
# (tensorflow/tensorflow commit 03f49db5a23ec2b22a59f3f3d72e5744469ea30b; the file moved there from
# tensorflow/lite/tools/versioning/runtime_version.cc). One line per op: the i-th version string is the
# minimum runtime of version i; '-' marks a version the table does not list (BROADCAST_TO v1 was rolled back).
_OP_VERSION_TABLE = """
AVERAGE_POOL_2D 1.5.0 1.14.0 2.3.0
BATCH_MATMUL 2.3.0 2.3.0 2.4.0 2.5.0
BROADCAST_TO - 2.5.0 2.5.0
CONV_2D 1.5.0 1.14.0 1.14.0 2.3.0 2.4.0 2.9.0 2.11.0 2.15.0
DEPTHWISE_CONV_2D 1.5.0 1.12.0 1.14.0 2.2.0 2.3.0 2.3.0 2.11.0
ADD 1.5.0 1.14.0 2.4.0 2.6.0 2.13.0 2.23.0
ADD_N 1.14.0
SPACE_TO_BATCH_ND 1.6.0 1.14.0 2.3.0 2.12.0
SUB 1.6.0 1.14.0 2.3.0 2.4.0 2.4.0
DENSIFY 2.2.0
DIV 1.6.0 2.3.0
BATCH_TO_SPACE_ND 1.6.0 1.14.0 2.3.0 2.12.0
CAST 1.5.0 2.7.0 2.8.0 2.9.0 2.12.0 2.15.0 2.17.0 2.21.0
CONCATENATION 1.5.0 1.14.0 2.3.0 2.14.0 2.21.0
DEPTH_TO_SPACE 2.1.0 2.5.0
EMBEDDING_LOOKUP 1.13.0 1.14.0 1.14.0 2.18.0 2.21.0
EMBEDDING_LOOKUP_SPARSE 1.5.0
FAKE_QUANT 1.5.0 1.10.0
FULLY_CONNECTED 1.5.0 1.10.0 1.14.0 1.14.0 2.0.0 2.1.0 2.3.0 2.3.0 2.3.0 2.11.0 2.15.0 2.17.0 2.18.0 2.21.0
GATHER 1.6.0 1.14.0 1.15.0 2.4.0 2.5.0 2.13.0 2.15.0
GATHER_ND 1.14.0 2.3.0 2.5.0 2.13.0 2.16.0
HASHTABLE_LOOKUP 1.5.0
SVDF 1.5.0 1.14.0 2.2.0 2.3.0
L2_NORMALIZATION 1.5.0 1.14.0
L2_POOL_2D 1.5.0
LOCAL_RESPONSE_NORMALIZATION 1.5.0
MAX_POOL_2D 1.5.0 1.14.0 2.3.0
MAXIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MINIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MUL 1.5.0 1.14.0 1.15.0 2.3.0 2.6.0 2.11.0 2.13.0 2.23.0
NON_MAX_SUPPRESSION_V4 2.1.0
NON_MAX_SUPPRESSION_V5 2.1.0
PAD 1.5.0 1.14.0 2.4.0 2.6.0 2.20.0
TILE 1.10.1 2.2.0 2.8.0
PADV2 1.9.0 1.14.0 2.4.0 2.6.0 2.20.0
RESHAPE 1.5.0
SOFTMAX 1.5.0 1.14.0 2.3.0
SPACE_TO_DEPTH 1.5.0 1.14.0
TRANSPOSE 1.6.0 1.14.0 1.15.0 2.3.0 2.4.0 2.12.0 2.14.4 2.22.0
LSTM 1.7.0 1.10.0 1.14.0 2.3.0
UNIDIRECTIONAL_SEQUENCE_LSTM 1.13.1 1.14.0 2.3.0 2.12.0
BIDIRECTIONAL_SEQUENCE_LSTM 1.14.0 1.14.0 1.14.0
BIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
MEAN 1.6.0 1.14.0 2.4.0
SUM 1.10.0 1.15.0
REDUCE_MAX 1.11.0 1.14.0 2.5.0
REDUCE_MIN 1.11.0 1.14.0 2.5.0
REDUCE_PROD 1.11.0 2.6.0
REDUCE_ANY 1.11.0
RELU6 1.5.0 1.14.0 2.5.0
RESIZE_BILINEAR 1.7.0 1.14.0 2.2.0 2.5.0
RESIZE_NEAREST_NEIGHBOR 1.13.1 1.14.0 2.3.0 2.4.0
RNN 1.5.0 1.14.0 2.3.0
SKIP_GRAM 1.5.0
SQUEEZE 1.6.0 2.5.0
SPLIT 1.5.0 1.14.0 1.14.0 2.3.0
SPLIT_V 1.13.1 2.3.0
STRIDED_SLICE 1.6.0 1.14.0 2.1.0 2.2.0 2.5.0 2.6.0 2.14.0 2.14.0
TOPK_V2 1.7.0 1.14.0 2.13.0
ARG_MAX 1.9.0 1.14.0 2.9.0
ARG_MIN 1.9.0 1.14.0 2.9.0
TRANSPOSE_CONV 1.9.0 2.2.0 2.3.0 2.13.0 2.15.0
SPARSE_TO_DENSE 1.9.0 1.14.0 1.15.0
EXPAND_DIMS 1.10.0
PACK 1.11.0 1.14.0 2.3.0 2.13.0
SHAPE 1.10.0
SLICE 1.14.0 1.14.0 1.14.0 2.4.0 2.5.0 2.14.0 2.21.0
TANH 1.14.0 1.14.0 2.3.0
ONE_HOT 1.11.0
UNPACK 1.11.0 1.14.0 2.2.0 2.3.0 2.22.0
LEAKY_RELU 1.13.1 2.3.0
LOGISTIC 1.14.0 1.14.0 2.3.0
LOG_SOFTMAX 1.14.0 1.14.0
LSH_PROJECTION 1.5.0
SQUARED_DIFFERENCE 1.13.1 2.5.0
MIRROR_PAD 1.13.1 2.3.0 2.12.0
UNIQUE 1.14.0
UNIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
WHERE 1.14.0 2.8.0
DEQUANTIZE 1.13.1 1.14.0 1.15.0 2.2.0 2.7.0 2.18.0 2.21.0 2.22.0
REVERSE_SEQUENCE 1.14.0
EQUAL 1.14.0 1.14.0 2.3.0 2.13.0 2.21.0
NOT_EQUAL 1.14.0 1.14.0 2.3.0 2.21.0
GREATER 1.14.0 1.14.0
GREATER_EQUAL 1.14.0 1.14.0 2.13.0
LESS 1.14.0 1.14.0 2.13.0
LESS_EQUAL 1.14.0 1.14.0
SCATTER_ND 2.1.0
SEGMENT_SUM 2.2.0
SELECT 1.14.0 1.14.0 2.12.0 2.12.0
SELECT_V2 2.2.0 2.12.0
IF 1.15.0
FLOOR_DIV 1.14.0 1.14.0 2.13.0
FLOOR 1.9.0
CEIL 1.14.0
MATRIX_DIAG 1.14.0
MATRIX_SET_DIAG 1.14.0
ELU 1.14.0
QUANTIZE 1.14.0 1.15.0 2.7.0 2.21.0 2.21.0 2.21.0
ROUND 1.14.0
RELU 1.5.0 2.1.0 2.5.0
RELU_N1_TO_1 1.5.0
RELU_0_TO_1 2.10.0
PRELU 1.8.0
EXP 1.7.0 2.12.0
COS 1.14.0
NEG 1.9.0
POW 1.10.0
LOGICAL_OR 1.11.0
LOGICAL_AND 1.11.0
LOGICAL_NOT 1.11.0
FLOOR_MOD 1.13.0 2.13.0
RANGE 1.13.0 2.14.0
SIN 1.9.0
LOG 1.14.0 2.15.0
SQRT 1.10.0 2.21.0
RSQRT 1.10.0 2.5.0 2.15.0
SQUARE 1.12.0
ZEROS_LIKE 1.12.0
ABS 1.13.0 2.4.0 2.5.0 2.6.0 2.12.0
HARD_SWISH 1.15.0
FILL 1.13.0 2.3.0 2.5.0 2.12.0
REVERSE_V2 1.14.0 2.2.0 2.5.0
RANK 1.14.0
WHILE 1.15.0
CUMSUM 2.4.0
CALL_ONCE 2.5.0
RFFT2D 2.5.0
CONV_3D 2.5.0
IMAG 2.5.0
REAL 2.5.0
COMPLEX_ABS 2.5.0
HASHTABLE 2.5.0
HASHTABLE_FIND 2.5.0
HASHTABLE_IMPORT 2.5.0
HASHTABLE_SIZE 2.5.0
REDUCE_ALL 2.6.0
CONV_3D_TRANSPOSE 2.6.0
VAR_HANDLE 2.6.0
READ_VARIABLE 2.6.0
ASSIGN_VARIABLE 2.6.0
BROADCAST_ARGS 2.6.0
RANDOM_STANDARD_NORMAL 2.8.0
BUCKETIZE 2.8.0
RANDOM_UNIFORM 2.8.0
MULTINOMIAL 2.8.0
GELU 2.9.0 2.9.0
DYNAMIC_UPDATE_SLICE 2.9.0 2.17.0 2.19.0 2.20.0 2.21.0 2.22.0
UNSORTED_SEGMENT_PROD 2.10.0
UNSORTED_SEGMENT_MAX 2.10.0
UNSORTED_SEGMENT_MIN 2.11.0
UNSORTED_SEGMENT_SUM 2.10.0
ATAN2 2.10.0
SIGN 2.11.0 2.12.0
BITCAST 2.13.0
BITWISE_XOR 2.13.0
RIGHT_SHIFT 2.13.0
STABLEHLO_SCATTER 2.15.0
DILATE 2.15.0
STABLEHLO_RNG_BIT_GENERATOR 2.15.0
REDUCE_WINDOW 2.15.0
STABLEHLO_GATHER 2.16.0
STABLEHLO_ADD 2.16.0
STABLEHLO_MULTIPLY 2.16.0
STABLEHLO_REDUCE_WINDOW 2.16.0
STABLEHLO_MAXIMUM 2.16.0
STABLEHLO_MINIMUM 2.16.0
STABLEHLO_PAD 2.16.0
STABLEHLO_COMPOSITE 2.17.0
STABLEHLO_AND 2.17.0
STABLEHLO_SHIFT_LEFT 2.17.0
STABLEHLO_CBRT 2.17.0
STABLEHLO_CASE 2.17.0
"""


def _parse_op_version_table(text: str) -> dict[tuple[str, int], str]:
    table: dict[tuple[str, int], str] = {}
    for line in text.strip().splitlines():
        name, *versions = line.split()
        for version, runtime in enumerate(versions, start=1):
            if runtime != "-":
                table[(name, version)] = runtime
    return table


OP_MIN_RUNTIME: dict[tuple[str, int], str] = _parse_op_version_table(_OP_VERSION_TABLE)
"""(builtin op name, op version) -> minimum TF Lite runtime version, as TF Lite's runtime_version.cc has it."""


class AuditError(UserError):
    """The file cannot be audited (missing, not a TFLite flatbuffer); the message names it."""


def parse_runtime_version(text: str) -> tuple[int, ...]:
    """'2.17.0' -> (2, 17, 0); compares like TF Lite's CompareRuntimeVersion (numeric, missing parts = 0)."""
    parts = []
    for part in text.strip().split("."):
        if not part.isdigit():
            raise ValueError(f"runtime version {text!r}: expected numbers separated by dots, like 1.15.0")
        parts.append(int(part))
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def min_runtime_for_op(name: str, version: int) -> str | None:
    """Minimum TF Lite runtime of builtin op `name` at `version`, or None when TF Lite's table does not list it."""
    return OP_MIN_RUNTIME.get((name, int(version)))


@dataclass(frozen=True)
class OpUse:
    """One entry of the model's operator_codes and how often the graph uses it."""

    name: str
    """Builtin op name (CONV_2D, ...), or the custom code for a custom op (FlexRFFT, ...)."""
    version: int
    """Op version as written in the flatbuffer."""
    builtin_code: int
    """max(builtin_code, deprecated_builtin_code), as TF Lite's GetBuiltinCode computes it."""
    is_custom: bool
    """A custom op (BuiltinOperator CUSTOM): a Flex (TensorFlow) op or a user kernel."""
    count: int
    """Operators in all subgraphs that use this code."""
    min_runtime: str | None
    """First TF Lite runtime that implements (op, version); None when unknown or custom."""


@dataclass(frozen=True)
class AuditReport:
    """What a .tflite file needs from a runtime, and whether the floor runtime has it."""

    path: str
    floor: str
    """The oldest TF Lite runtime the model must load on (default 1.15.0)."""
    ops: tuple[OpUse, ...]
    metadata_min_runtime: str | None
    """The model's `min_runtime_version` metadata as the converter wrote it (None if absent)."""
    problems: tuple[str, ...] = field(default_factory=tuple)
    """One sentence per reason the model fails the floor; empty when it passes."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def table_min_runtime(self) -> str | None:
        """Newest minimum runtime over all known (op, version) pairs: what the model needs by the table."""
        known = [op.min_runtime for op in self.ops if op.min_runtime]
        return max(known, key=parse_runtime_version) if known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "floor": self.floor,
            "ok": self.ok,
            "metadata_min_runtime": self.metadata_min_runtime,
            "table_min_runtime": self.table_min_runtime,
            "ops": [
                {"op": op.name, "version": op.version, "count": op.count, "custom": op.is_custom,
                 "min_runtime": op.min_runtime}
                for op in self.ops
            ],
            "problems": list(self.problems),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_text(self) -> str:
        """A fixed-width table of ops, then the verdict and each problem."""
        lines = [f"{self.path}", f"{'op':<28} {'version':>7} {'count':>5}  min runtime"]
        for op in self.ops:
            kind = "custom" if op.is_custom else (op.min_runtime or "unknown")
            lines.append(f"{op.name:<28} {op.version:>7} {op.count:>5}  {kind}")
        lines.append(f"min_runtime_version metadata: {self.metadata_min_runtime or 'absent'}; "
                     f"by TF Lite's op-version table: {self.table_min_runtime or 'unknown'}")
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(f"{verdict}: floor TF Lite {self.floor}")
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:  # pragma: no cover - ai-edge-litert is a dependency of birdlab[edge]
        raise AuditError(f"the TFLite schema module is unavailable ({exc}); pip install ai-edge-litert") from None
    return schema_py_generated


def _builtin_names(schema: Any) -> dict[int, str]:
    return {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def _read_model(path: Path) -> tuple[Any, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AuditError(f"{path}: no such file; give the path of a .tflite model") from None
    except OSError as exc:
        raise AuditError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(data) < 8 or data[4:8] != TFLITE_FILE_IDENTIFIER:
        raise AuditError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); give a .tflite file")
    schema = _schema()
    return schema.Model.GetRootAs(data, 0), data


def _metadata_min_runtime(model: Any, data: bytes) -> str | None:
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() != b"min_runtime_version":
            continue
        buffer = model.Buffers(entry.Buffer())
        if buffer.DataLength():
            raw = bytes(buffer.DataAsNumpy())
        elif buffer.Size():  # data stored after the flatbuffer (models > 2 GB)
            raw = data[buffer.Offset(): buffer.Offset() + buffer.Size()]
        else:
            raw = b""
        return raw.split(b"\0", 1)[0].decode("ascii", errors="replace") or None
    return None


def list_ops(path: str | Path) -> tuple[tuple[OpUse, ...], str | None]:
    """The model's operator codes with use counts, and its min_runtime_version metadata.

    Reads the flatbuffer only; no interpreter and no TensorFlow. Raises AuditError for a
    missing or non-TFLite file.
    """
    path = Path(path)
    model, data = _read_model(path)
    schema = _schema()
    names = _builtin_names(schema)
    counts: Counter[int] = Counter()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            counts[subgraph.Operators(o).OpcodeIndex()] += 1
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        version = code.Version()
        is_custom = builtin == schema.BuiltinOperator.CUSTOM
        if is_custom:
            custom = code.CustomCode()
            name = custom.decode("utf-8", errors="replace") if custom else "<custom>"
            runtime = None
        else:
            name = names.get(builtin, f"BUILTIN_{builtin}")
            runtime = min_runtime_for_op(name, version)
        ops.append(OpUse(name=name, version=version, builtin_code=builtin, is_custom=is_custom,
                         count=counts.get(i, 0), min_runtime=runtime))
    return tuple(ops), _metadata_min_runtime(model, data)


def audit_tflite(path: str | Path, *, floor: str = DEFAULT_RUNTIME_FLOOR) -> AuditReport:
    """Audit `path` against the TF Lite runtime `floor` (e.g. '1.15.0'); never raises for a failing model.

    Problems: RFFT2D; Flex ops (custom codes starting 'Flex', from SELECT_TF_OPS); other
    custom ops; (op, version) pairs whose minimum runtime is newer than the floor or that
    TF Lite's table does not list; min_runtime_version metadata newer than the floor.
    Raises AuditError for a file that is not a readable TFLite model or a malformed floor.
    """
    try:
        floor_key = parse_runtime_version(floor)
    except ValueError as exc:
        raise AuditError(f"--floor: {exc}") from None
    ops, metadata = list_ops(path)
    problems = []
    for op in ops:
        label = f"{op.name} v{op.version}"
        if op.is_custom and op.name.startswith("Flex"):
            problems.append(f"{label}: Flex op (SELECT_TF_OPS) needs a TensorFlow-linked runtime; "
                            "convert with TFLITE_BUILTINS only")
        elif op.is_custom:
            problems.append(f"{label}: custom op with no kernel in a stock TF Lite runtime; "
                            "remove it from the model")
        elif op.name in FORBIDDEN_BUILTINS:
            problems.append(f"{label}: an FFT inside the model; compute the log-mel spectrogram outside it "
                            "(birdlab.features.log_mel) and re-export")
        elif op.min_runtime is None:
            problems.append(f"{label}: not in TF Lite's op-version table, so no runtime floor is known; "
                            "treat it as unsupported")
        elif parse_runtime_version(op.min_runtime) > floor_key:
            problems.append(f"{label}: needs TF Lite >= {op.min_runtime}, newer than the floor {floor}")
    if metadata:
        try:
            too_new = parse_runtime_version(metadata) > floor_key
        except ValueError:
            too_new = False
            problems.append(f"min_runtime_version metadata {metadata!r} is not a version number")
        if too_new:
            problems.append(f"min_runtime_version metadata says TF Lite >= {metadata}, newer than the floor {floor}")
    return AuditReport(path=str(path), floor=floor, ops=ops, metadata_min_runtime=metadata, problems=tuple(problems))
