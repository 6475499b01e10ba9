"""What a Python environment is: `python -m bench.pi_check.probe` prints one JSON object.

Run by each interpreter of the pi-check (the host venv and the two emulated-Pi venvs); standard library
only at import, so it runs wherever edge_runtime is supposed to.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import platform
import sys
from typing import Any

PACKAGES = ("numpy", "wasmtime", "ai-edge-litert", "tflite-runtime", "soxr", "soundfile")
"""Distributions whose installed versions are reported (None when absent)."""


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    """The Model line of /proc/cpuinfo (a Pi's board name), else the first CPU part; None when unreadable."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for prefix in ("Model", "model name", "CPU part"):
        for line in lines:
            if line.startswith(prefix) and ":" in line:
                return line.split(":", 1)[1].strip()
    return None


def probe() -> dict[str, Any]:
    """arch, python, glibc, the package versions, the TFLite package edge_runtime picks and where it comes from."""
    edge_runtime = importlib.import_module("edge_runtime")
    from edge_runtime.inference import interpreter_class

    _, interpreter = interpreter_class("auto")
    return {
        "arch": platform.machine(),
        "python": platform.python_version(),
        "glibc": platform.libc_ver()[1] or None,
        "cpu": _cpu_model(),
        "packages": {name: _version(name) for name in PACKAGES},
        "interpreter": interpreter,
        "edge_runtime_path": edge_runtime.__file__,
    }


if __name__ == "__main__":
    json.dump(probe(), sys.stdout, indent=2)
    sys.stdout.write("\n")
