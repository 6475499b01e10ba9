"""`python -m edge_runtime check`: can this bundle run here? One line per check and a verdict.

Checks: every sha256 of the manifest, the feature spec, the model loads, its input is float32
(1, n_mels, frames, 1) as feature_spec.json says, its outputs match labels.csv, the wasm speaks
the host's ABI, and one silent window goes through the frontend (within its timeout) and the
model. `run` refuses to start unless every check passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.bundle import MODEL_FILENAME, WASM_FILENAME, Bundle, BundleError, open_bundle
from edge_runtime.frontend import MelFrontend, default_module_cache_dir
from edge_runtime.inference import InferenceError, TFLiteModel


@dataclass(frozen=True)
class CheckItem:
    """One check of `edge_runtime check`."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """All checks of one bundle; `ok` when every check passed."""

    bundle: str
    items: tuple[CheckItem, ...]

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(item.ok for item in self.items)

    @property
    def verdict(self) -> str:
        failed = [item for item in self.items if not item.ok]
        if not failed:
            return f"OK: {self.bundle} can run on this device"
        return f"REFUSED: {self.bundle}: " + "; ".join(f"{item.name}: {item.detail}" for item in failed)

    def to_text(self) -> str:
        lines = [f"[{'ok' if item.ok else 'FAIL'}] {item.name}: {item.detail}" for item in self.items]
        return "\n".join([*lines, self.verdict])

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "ok": self.ok, "verdict": self.verdict,
                "checks": [{"name": i.name, "ok": i.ok, "detail": i.detail} for i in self.items]}


def check_model(bundle: Bundle, *, input_shape: tuple[int, ...], input_dtype: str,
                output_shape: tuple[int, ...]) -> list[CheckItem]:
    """Model input vs the spec's (1, n_mels, frames, 1) float32, and model outputs vs the label count."""
    expected_input = (1, *bundle.spec.input_shape)
    items = [CheckItem(
        "model input",
        tuple(input_shape) == expected_input and input_dtype == "float32",
        f"{input_dtype} {tuple(input_shape)}" + ("" if tuple(input_shape) == expected_input and input_dtype == "float32"
                                                 else f", but feature_spec.json gives float32 {expected_input}; "
                                                      "re-export the bundle from the matching run"),
    )]
    n_outputs = int(output_shape[-1]) if output_shape else 0
    ok = len(output_shape) == 2 and n_outputs == len(bundle.labels)
    items.append(CheckItem(
        "labels vs outputs", ok,
        f"{len(bundle.labels)} labels, {n_outputs} model outputs"
        + ("" if ok else f" (output shape {tuple(output_shape)}); labels.csv does not belong to this model"),
    ))
    return items


def check_bundle(path: str | Path, *, interpreter: str = "auto", num_threads: int = 1,
                 frontend_timeout_seconds: float = 0.5, unpack_dir: Path | None = None) -> CheckReport:
    """Every check of a bundle: checksums, model shape vs spec, labels vs outputs, wasm ABI, one silent window.

    Never raises for a bad bundle: each failure is a CheckItem with the reason.
    """
    items: list[CheckItem] = []
    try:
        bundle = open_bundle(path, unpack_dir=unpack_dir)
    except BundleError as exc:
        return CheckReport(str(path), (CheckItem("checksums", False, str(exc)),))
    items.append(CheckItem("checksums", True, f"{len(bundle.manifest['files'])} files match manifest.json"))
    items.append(CheckItem("feature spec", True, f"spec_hash {bundle.spec.spec_hash}, input {bundle.spec.input_shape}"))
    model = None
    try:
        model = TFLiteModel.load(bundle.model_path, num_threads=num_threads, backend=interpreter)
    except InferenceError as exc:
        items.append(CheckItem("model", False, str(exc)))
    if model is not None:
        items.append(CheckItem("model", True, f"{MODEL_FILENAME} loads with {model.backend}"))
        items += check_model(bundle, input_shape=model.input_info.shape, input_dtype=model.input_info.dtype,
                             output_shape=model.output_info.shape)
    frontend = None
    try:
        frontend = MelFrontend.load(bundle.wasm_path, spec=bundle.spec, cache_dir=default_module_cache_dir(),
                                    timeout_s=frontend_timeout_seconds)
        items.append(CheckItem("wasm ABI", True, f"{WASM_FILENAME} ABI version {frontend.abi_version}"))
    except Exception as exc:  # noqa: BLE001 - any failure to instantiate the module is reported as a failed check
        items.append(CheckItem("wasm ABI", False, f"{WASM_FILENAME}: {exc}"))
    if frontend is not None:
        try:
            start = time.perf_counter()
            features = frontend.log_mel(np.zeros(bundle.spec.clip_samples, dtype=np.float32))
            elapsed_ms = (time.perf_counter() - start) * 1000
            expected = bundle.spec.input_shape[:2]
            ok = features.shape == expected and bool(np.isfinite(features).all())
            items.append(CheckItem("frontend run", ok, f"one silent window -> {features.shape} in {elapsed_ms:.1f} ms"
                                   + ("" if ok else f"; expected finite {expected}")))
            if ok and model is not None and all(item.ok for item in items):
                out = model.predict(features[np.newaxis, :, :, np.newaxis])
                ok = bool(np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all())
                items.append(CheckItem("model run", ok, f"outputs in [{out.min():.3g}, {out.max():.3g}]"
                                       + ("" if ok else "; expected probabilities in [0, 1]")))
        except Exception as exc:  # noqa: BLE001 - a trapped or timed-out frontend is a failed check, not a crash
            items.append(CheckItem("frontend run", False, f"{WASM_FILENAME}: {exc}"))
        finally:
            frontend.close()
    return CheckReport(str(path), tuple(items))
