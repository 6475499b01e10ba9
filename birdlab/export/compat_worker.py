"""Runs one model on one runtime inside that runtime's own virtual environment.

This file is executed by path with the venv's interpreter (Python 3.7 for TensorFlow
1.15, 3.11 for the others): it may import only the standard library, numpy and the
runtime under test, and must stay valid Python 3.7. It never imports birdlab.

    python compat_worker.py --runtime tflite_runtime --model m.tflite --inputs x.npy --outputs y.npy

inputs: float32 (n_clips, n_mels, frames, 1); each clip runs as a batch of one.
Prints one JSON line: {"loaded": bool, "ran": bool, "runtime_version": str, "error": str}.
"""

import argparse
import json
import sys
import traceback

import numpy as np


def _tflite_interpreter_class(runtime):
    if runtime == "ai_edge_litert":
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, getattr(ai_edge_litert, "__version__", "?")
    if runtime == "tflite_runtime":
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, getattr(tflite_runtime, "__version__", "?")
    if runtime == "tensorflow":
        import tensorflow as tf

        return tf.lite.Interpreter, tf.__version__
    raise ValueError("unknown TFLite runtime " + repr(runtime))


def _quantize(values, detail):
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values, detail):
    if np.dtype(detail["dtype"]).kind == "f":
        return np.array(values, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def run_tflite(runtime, model_path, inputs, report):
    interpreter_class, version = _tflite_interpreter_class(runtime)
    report["runtime_version"] = str(version)
    interpreter = interpreter_class(model_path=model_path)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    report["loaded"] = True
    outputs = []
    for clip in inputs:
        interpreter.set_tensor(input_detail["index"], _quantize(clip[np.newaxis], input_detail))
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(output_detail["index"]), output_detail)[0])
    return np.stack(outputs)


def run_tract(model_path, inputs, report):
    import tract

    version = tract.version() if callable(getattr(tract, "version", None)) else getattr(tract, "__version__", "?")
    report["runtime_version"] = str(version)
    shape = ",".join(str(d) for d in (1,) + tuple(inputs.shape[1:]))
    onnx = tract.onnx()
    if hasattr(onnx, "load"):  # tract >= 0.21: load -> InferenceModel -> into_model (optimised) -> runnable
        model = onnx.load(model_path)
        model.set_input_fact(0, shape + ",f32")
        runnable = model.into_model().into_runnable()
    else:  # older bindings
        model = onnx.model_for_path(model_path)
        model.set_input_fact(0, shape + ",f32")
        runnable = model.into_optimized().into_runnable()
    report["loaded"] = True
    outputs = []
    for clip in inputs:
        result = runnable.run([np.ascontiguousarray(clip[np.newaxis], dtype=np.float32)])
        outputs.append(np.asarray(result[0].to_numpy(), dtype=np.float32)[0])
    return np.stack(outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", required=True, choices=["ai_edge_litert", "tflite_runtime", "tensorflow", "tract"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--outputs", required=True)
    args = parser.parse_args(argv)
    report = {"loaded": False, "ran": False, "runtime_version": "", "error": ""}
    try:
        inputs = np.load(args.inputs).astype(np.float32)
        if args.runtime == "tract":
            outputs = run_tract(args.model, inputs, report)
        else:
            outputs = run_tflite(args.runtime, args.model, inputs, report)
        np.save(args.outputs, outputs.astype(np.float32))
        report["ran"] = True
    except Exception as exc:  # report every failure as data: the matrix records it
        lines = str(exc).strip().splitlines()
        report["error"] = "{}: {}".format(type(exc).__name__, lines[-1] if lines else "")
        report["traceback"] = traceback.format_exc(limit=3)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
