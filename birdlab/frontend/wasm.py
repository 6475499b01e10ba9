"""Build melspec.wasm (cpp_melspec/) with the `ziglang` PyPI package: wasm32-wasi reactor, stripped.

The build is deterministic (same sources and flags -> same bytes) and cached by a hash of the
sources, the flags and the zig version under `birdlab.paths.cache_dir() / "wasm"`; a rebuild only
happens when one of those changes. The .wasm is a build output (git-ignored) that ships in bundles.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from birdlab import paths
from birdlab.errors import UserError

SOURCE_DIR = paths.REPO_ROOT / "cpp_melspec" / "src"
WASM_FILENAME = "melspec.wasm"
TARGET = "wasm32-wasi"
COMPILE_FLAGS = (
    "-target", TARGET,
    "-std=c++17",
    "-O3",
    "-fno-exceptions",
    "-fno-rtti",
    "-msimd128",
    "-mexec-model=reactor",
    "-s",
    "-Wl,-z,stack-size=262144",  # 256 KiB of stack is plenty; zig's default (16 MiB) would be the module's minimum memory
    "-Wall",
    "-Wextra",
)
"""Flags of `python -m ziglang c++`; part of the cache key."""
BUILD_TIMEOUT_S = 600


class WasmBuildError(UserError):
    """The C++ -> wasm build failed; the message carries the compiler's own words."""


def source_files(source_dir: Path = SOURCE_DIR) -> list[Path]:
    """The C++ sources and headers, sorted by name."""
    files = sorted([*source_dir.glob("*.cpp"), *source_dir.glob("*.h")])
    if not any(f.suffix == ".cpp" for f in files):
        raise WasmBuildError(f"{source_dir}: no C++ sources found; is the checkout complete?")
    return files


def zig_version() -> str:
    """Version of the `ziglang` package (part of the cache key)."""
    try:
        from importlib.metadata import version

        return version("ziglang")
    except Exception as exc:  # noqa: BLE001 - PackageNotFoundError and friends
        raise WasmBuildError(
            "the `ziglang` package is not installed; install it with `pip install ziglang` (it is in the dev extra)"
        ) from exc


def source_hash(source_dir: Path = SOURCE_DIR) -> str:
    """sha256 (hex, 16 characters) of the sources, the compile flags and the zig version."""
    digest = hashlib.sha256()
    for path in source_files(source_dir):
        digest.update(path.name.encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update(" ".join(COMPILE_FLAGS).encode("utf-8") + b"\0")
    digest.update(zig_version().encode("utf-8"))
    return digest.hexdigest()[:16]


def default_wasm_path() -> Path:
    """Where the build of the current sources lives (it may not be built yet; see build_wasm)."""
    return paths.cache_dir() / "wasm" / f"melspec-{source_hash()}.wasm"


def _zig_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ZIG_GLOBAL_CACHE_DIR", str(paths.cache_dir() / "zig"))
    env.setdefault("ZIG_LOCAL_CACHE_DIR", str(paths.cache_dir() / "zig-local"))
    return env


def compile_wasm(dest: Path, *, source_dir: Path = SOURCE_DIR, flags: tuple[str, ...] = COMPILE_FLAGS) -> Path:
    """Run the compiler (always, no cache) and write the module to `dest` atomically.

    flags: compiler flags (tests build a variant without -msimd128 to check the scalar code path).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    # Relative file names and a fixed working directory keep paths out of the output.
    names = [p.name for p in source_files(source_dir) if p.suffix == ".cpp"]
    cmd = [sys.executable, "-m", "ziglang", "c++", *flags, "-o", str(tmp), *names]
    try:
        result = subprocess.run(cmd, cwd=source_dir, env=_zig_env(), capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise WasmBuildError(f"building {dest.name} took more than {BUILD_TIMEOUT_S} s; retry on a quieter machine") from None
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
        raise WasmBuildError(f"compiling {source_dir} to {TARGET} failed (exit {result.returncode}):\n{tail}")
    os.replace(tmp, dest)
    return dest


def build_wasm(out: str | Path | None = None, *, force: bool = False) -> Path:
    """Build melspec.wasm unless the cache already holds this source hash; return its path.

    out: also copy the module there (a file path, or a directory (existing, or written with a trailing
    slash) that receives melspec.wasm);
    the returned path is then `out`'s file. force: recompile even when cached.
    """
    cached = default_wasm_path()
    if force or not cached.is_file():
        compile_wasm(cached)
    if out is None:
        return cached
    target = Path(out)
    if target.is_dir() or str(out).endswith(("/", os.sep)):
        target = target / WASM_FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
    return target
