"""MelFrontend: the C++ log-mel spectrogram (melspec.wasm) hosted by wasmtime.

The module is the same file in the lab and on the device; it receives the FeatureSpec fields at
run time. One host call computes a whole clip: the samples are written into the module's input
buffer through a zero-copy numpy view of linear memory, `melspec_compute` runs once, and the
output is copied out of another view. The compiled machine code is cached on disk, keyed by the
module's sha256, the wasmtime version, the machine and the engine settings. The cache is verified,
never trusted: next to each compiled module a record holds its key and the sha256 of its bytes
(written after the module was fsynced); a module whose record is missing or does not match (damaged
by a bad SD card, swapped for another module's code), or that fails to load or instantiate, is
compiled again from the .wasm and never run.

Guards: an epoch deadline (`timeout_s`; a daemon thread per frontend ticks the engine's epoch
every EPOCH_TICK_S) or a fuel budget (`fuel`) stops a runaway module, a store limit caps linear
memory, and the module gets no WASI at all (no preopened directories, environment or arguments):
it imports nothing, and loading refuses one that does. The epoch checks cost about 10 % of the
compute time; `timeout_s=None` removes them (and the guard).

Imports only the stdlib, numpy and wasmtime (this runs on the Raspberry Pi).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import wasmtime

from edge_runtime.cache_dir import default_cache_dir
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.spec import FeatureSpec

ABI_VERSION = 1
"""The `melspec_abi_version()` this host speaks; a module reporting another one is refused."""
DEFAULT_TIMEOUT_S = 10.0
"""Wall-clock limit of one call into the module (a 5-s clip takes a few milliseconds)."""
DEFAULT_MEMORY_LIMIT_BYTES = 256 * 1024 * 1024
"""Upper bound of the module's linear memory (a 60-s clip at 32 kHz needs about 10 MiB)."""
EPOCH_TICK_S = 0.05
"""Period of the epoch ticker: the resolution of `timeout_s`."""
MODULE_CACHE_SUBDIR = "wasm"

_WINDOW_CODES = {"hann": 0}
_PAD_MODE_CODES = {"constant": 0, "reflect": 1}
_MEL_NORM_CODES = {None: 0, "slaney": 1}
_REQUIRED_EXPORTS = (
    "memory",
    "_initialize",
    "melspec_abi_version",
    "melspec_create",
    "melspec_input",
    "melspec_compute",
    "melspec_output",
    "melspec_last_error",
    "melspec_destroy",
)


class FrontendError(EdgeRuntimeError, RuntimeError):
    """The WASM frontend failed; the message names the module file and what to do."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def default_module_cache_dir() -> Path:
    """Where compiled modules go: <edge_runtime.cache_dir.default_cache_dir()>/wasm (never the lab's cache)."""
    return default_cache_dir() / MODULE_CACHE_SUBDIR


def _wasmtime_version() -> str:
    try:
        from importlib.metadata import version

        return version("wasmtime")
    except Exception:  # noqa: BLE001 - a missing dist-info only weakens the cache key
        return getattr(wasmtime, "__version__", "unknown")


def module_cache_key(wasm_bytes: bytes, *, engine_flags: str) -> str:
    """Hex key of a compiled module: sha256 of the wasm, wasmtime version, machine, engine settings."""
    wasm_sha = hashlib.sha256(wasm_bytes).hexdigest()
    parts = [wasm_sha, _wasmtime_version(), platform.machine(), platform.system(), engine_flags]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:32]


class _EpochTicker:
    """Daemon thread that increments an engine's epoch every EPOCH_TICK_S until stopped.

    It holds the engine only, so a frontend that is dropped without close() is still collected;
    a weakref finalizer then stops the thread.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(engine, self._stop), name="melspec-epoch", daemon=True)
        self._thread.start()

    @staticmethod
    def _run(engine: wasmtime.Engine, stop: threading.Event) -> None:
        while not stop.wait(EPOCH_TICK_S):
            engine.increment_epoch()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


class MelFrontend:
    """Log-mel spectrogram of one FeatureSpec computed by melspec.wasm.

    Not thread-safe: use one MelFrontend per thread. Close it (or use `with`) to free the store.
    """

    def __init__(
        self,
        *,
        wasm_path: Path,
        spec: FeatureSpec,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        timeout_s: float | None,
        fuel: int | None,
        memory_limit_bytes: int,
        cache_hit: bool,
    ) -> None:
        self.wasm_path = wasm_path
        self.spec = spec
        self.timeout_s = timeout_s
        self.fuel = fuel
        self.module_cache_hit = cache_hit
        """True when the compiled module came from the disk cache (no compilation)."""
        self._store: wasmtime.Store | None = wasmtime.Store(engine)
        """None once closed."""
        self._store.set_limits(memory_size=memory_limit_bytes)
        self._deadline_ticks = None if timeout_s is None else max(1, math.ceil(timeout_s / EPOCH_TICK_S))
        self._ticker = None
        self._stop_ticker = None
        if timeout_s is not None:
            self._ticker = _EpochTicker(engine)
            self._stop_ticker = weakref.finalize(self, self._ticker.stop)
        try:
            self._start(module)
        except BaseException:
            if self._stop_ticker is not None:
                self._stop_ticker()
            raise

    def _start(self, module: wasmtime.Module) -> None:
        """Instantiate, run the reactor's _initialize, check the ABI and create the handle for self.spec."""
        wasm_path = self.wasm_path
        store = self._open_store()
        instance = self._guarded(lambda: wasmtime.Instance(store, module, []), what="instantiate")
        exports = instance.exports(store)
        self._memory: wasmtime.Memory = exports["memory"]
        self._fn = {name: exports[name] for name in _REQUIRED_EXPORTS if name != "memory"}
        for optional in ("melspec_fft_buffer", "melspec_fft_forward"):
            try:
                self._fn[optional] = exports[optional]
            except KeyError:
                pass
        self._call("_initialize")
        self.abi_version = int(self._call("melspec_abi_version"))
        if self.abi_version != ABI_VERSION:
            raise FrontendError(
                f"{wasm_path}: ABI version {self.abi_version}, this host speaks {ABI_VERSION}; "
                "rebuild it with `python -m birdlab wasm build` or update edge_runtime"
            )
        self._handle = self._create(self.spec)
        self._input_capacity = 0
        self._input_ptr = 0
        self._output_ptr = 0
        self._output_capacity = 0

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        wasm_path: str | Path,
        *,
        spec: FeatureSpec,
        cache_dir: str | Path | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        fuel: int | None = None,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
    ) -> MelFrontend:
        """Load melspec.wasm for `spec`, compiling it or taking the compiled module from the disk cache.

        cache_dir: directory of compiled modules (default `default_module_cache_dir()`).
        timeout_s: wall-clock limit per call (epoch interruption); None disables it.
        fuel: instruction budget per call (wasmtime fuel) instead of, or on top of, the timeout.
        memory_limit_bytes: cap on the module's linear memory.
        """
        wasm_path = Path(wasm_path)
        try:
            wasm_bytes = wasm_path.read_bytes()
        except OSError as exc:
            raise FrontendError(
                f"{wasm_path}: cannot read the WASM frontend ({exc.strerror}); build it with `python -m birdlab wasm build`"
            ) from None
        config = wasmtime.Config()
        config.epoch_interruption = timeout_s is not None
        config.consume_fuel = fuel is not None
        config.parallel_compilation = False
        engine = wasmtime.Engine(config)
        flags = f"epoch={timeout_s is not None};fuel={fuel is not None}"
        cache = Path(cache_dir) if cache_dir else default_module_cache_dir()
        module, cache_hit = _compile_cached(engine, wasm_bytes, wasm_path=wasm_path, flags=flags, cache_dir=cache)
        imports = [f"{imp.module}.{imp.name}" for imp in module.imports]
        if imports:
            raise FrontendError(
                f"{wasm_path}: the module imports {imports}; melspec.wasm must import nothing (no WASI, files, "
                "clocks or env): rebuild it with `python -m birdlab wasm build`"
            )
        exported = {exp.name for exp in module.exports}
        missing = [name for name in _REQUIRED_EXPORTS if name not in exported]
        if missing:
            raise FrontendError(f"{wasm_path}: not a melspec module (missing exports {missing})")
        try:
            return cls(wasm_path=wasm_path, spec=spec, engine=engine, module=module, timeout_s=timeout_s, fuel=fuel,
                       memory_limit_bytes=memory_limit_bytes, cache_hit=cache_hit)
        except FrontendError:
            if not cache_hit:
                raise
        # the cached module verified but does not start here: compile from the .wasm (and replace the cache)
        module, _ = _compile_cached(engine, wasm_bytes, wasm_path=wasm_path, flags=flags, cache_dir=cache,
                                    use_cache=False)
        return cls(wasm_path=wasm_path, spec=spec, engine=engine, module=module, timeout_s=timeout_s, fuel=fuel,
                   memory_limit_bytes=memory_limit_bytes, cache_hit=False)

    def _create(self, spec: FeatureSpec) -> int:
        top_db = -1.0 if spec.top_db is None else float(spec.top_db)
        handle = int(self._call(
            "melspec_create",
            spec.sample_rate_hz, spec.n_fft, spec.hop_length, spec.win_length, _WINDOW_CODES[spec.window],
            int(spec.center), _PAD_MODE_CODES[spec.pad_mode], spec.n_mels, float(spec.fmin_hz), float(spec.fmax_hz),
            float(spec.power), int(spec.htk), _MEL_NORM_CODES[spec.mel_norm], float(spec.db_ref),
            float(spec.db_amin), top_db,
        ))
        if handle <= 0:
            raise FrontendError(f"{self.wasm_path}: melspec_create refused the feature spec: {self.last_error()}",
                                code=handle)
        return handle

    # -- calls into the module -----------------------------------------------------------------
    def _guarded(self, call, *, what: str):
        store = self._open_store()
        if self._deadline_ticks is not None:
            store.set_epoch_deadline(self._deadline_ticks)
        if self.fuel is not None:
            store.set_fuel(self.fuel)
        try:
            return call()
        except wasmtime.Trap as exc:
            text = str(exc)
            if "interrupt" in text:
                reason = f"ran past timeout_s={self.timeout_s}"
            elif "fuel" in text:
                reason = f"ran out of fuel ({self.fuel})"
            else:
                reason = f"trapped ({text.splitlines()[0] if text else 'no message'})"
            raise FrontendError(f"{self.wasm_path}: {what} {reason}; the module is broken or the input too long") from None
        except wasmtime.WasmtimeError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else "no message"
            raise FrontendError(f"{self.wasm_path}: {what} failed ({first_line})") from None

    def _call(self, name: str, *args):
        func = self._fn[name]
        store = self._open_store()
        return self._guarded(lambda: func(store, *args), what=name)

    def _memory_view(self, ptr: int, count: int, ctype) -> np.ndarray:
        """Zero-copy numpy view of `count` items of `ctype` at wasm address `ptr`."""
        size = ctypes.sizeof(ctype) * count
        store = self._open_store()
        if ptr <= 0 or ptr + size > self._memory.data_len(store):
            raise FrontendError(f"{self.wasm_path}: pointer {ptr} (+{size} bytes) lies outside linear memory")
        base = ctypes.addressof(self._memory.data_ptr(store).contents)
        return np.ctypeslib.as_array((ctype * count).from_address(base + ptr))

    def last_error(self) -> str:
        """The module's last error message (melspec_last_error)."""
        ptr = int(self._call("melspec_last_error")) & 0xFFFFFFFF
        store = self._open_store()
        raw = self._memory.read(store, ptr, min(ptr + 512, self._memory.data_len(store)))
        return bytes(raw).split(b"\0", 1)[0].decode("utf-8", errors="replace")

    # -- public API --------------------------------------------------------------------------
    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel spectrogram, identical in layout and (to MEL_DB_ATOL) in value to birdlab.features.log_mel.log_mel.

        samples: float32 (other float dtypes are converted), shape (n_samples,), mono, at spec.sample_rate_hz,
        n_samples >= 1 (>= n_fft when spec.center is false).
        Returns a new float32 array of dB, shape (spec.n_mels, n_frames) with n_frames = 1 + n_samples //
        hop_length for centred even-n_fft specs (librosa's frame count in general).
        """
        self._check_open()
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"samples must be mono with shape (n_samples,), got shape {samples.shape}")
        n = int(samples.size)
        if n == 0:
            raise ValueError("samples is empty: a spectrogram needs at least one sample")
        if n >= 2**31:
            raise ValueError(f"samples has {n} samples; the frontend takes at most 2**31 - 1 per call")
        if n > self._input_capacity:
            ptr = int(self._call("melspec_input", self._handle, n)) & 0xFFFFFFFF
            if ptr == 0:
                raise FrontendError(f"{self.wasm_path}: melspec_input failed: {self.last_error()}")
            self._input_ptr, self._input_capacity = ptr, n
        self._memory_view(self._input_ptr, n, ctypes.c_float)[:] = samples
        n_frames = int(self._call("melspec_compute", self._handle, n))
        if n_frames <= 0:
            raise FrontendError(f"{self.wasm_path}: melspec_compute failed: {self.last_error()}", code=n_frames)
        count = n_frames * self.spec.n_mels
        if count > self._output_capacity:
            self._output_ptr = int(self._call("melspec_output", self._handle)) & 0xFFFFFFFF
            self._output_capacity = count
        out = self._memory_view(self._output_ptr, count, ctypes.c_float)
        return out.reshape(self.spec.n_mels, n_frames).copy()

    def rfft(self, frame: np.ndarray) -> np.ndarray:
        """The module's real FFT of one frame (to check it against numpy.fft.rfft).

        frame: float64, shape (spec.n_fft,). Returns complex128, shape (spec.n_fft // 2 + 1,).
        """
        self._check_open()
        n_fft = self.spec.n_fft
        frame = np.asarray(frame, dtype=np.float64)
        if frame.shape != (n_fft,):
            raise ValueError(f"frame must have shape ({n_fft},), got {frame.shape}")
        ptr = int(self._call("melspec_fft_buffer", self._handle)) & 0xFFFFFFFF
        self._memory_view(ptr, n_fft, ctypes.c_double)[:] = frame
        self._call("melspec_fft_forward", self._handle)
        out = self._memory_view(ptr, 2 * (n_fft // 2 + 1), ctypes.c_double)
        return out.view(np.complex128).copy()

    def _check_open(self) -> None:
        self._open_store()

    def _open_store(self) -> wasmtime.Store:
        """The module's store; FrontendError once this MelFrontend is closed."""
        if self._store is None:
            raise FrontendError(f"{self.wasm_path}: this MelFrontend is closed")
        return self._store

    def close(self) -> None:
        """Free the module instance; the object is unusable afterwards."""
        if self._store is not None:
            try:
                self._call("melspec_destroy", self._handle)
            finally:
                self._store = None
                if self._stop_ticker is not None:
                    self._stop_ticker()

    def __enter__(self) -> MelFrontend:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _read_verified(cached: Path, record: Path, *, key: str) -> bytes | None:
    """The compiled module's bytes when its record names this key and their sha256; else None."""
    try:
        recorded = record.read_text(encoding="ascii").split()
        data = cached.read_bytes()
    except (OSError, UnicodeDecodeError):
        return None
    if recorded != [key, hashlib.sha256(data).hexdigest()]:
        return None
    return data


def _write_durably(path: Path, data: bytes | bytearray) -> None:
    """Write data to a temporary file, fsync it, then rename it to path."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{time.monotonic_ns()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _compile_cached(
    engine: wasmtime.Engine, wasm_bytes: bytes, *, wasm_path: Path, flags: str, cache_dir: Path, use_cache: bool = True
) -> tuple[wasmtime.Module, bool]:
    """Deserialize the verified compiled module from `cache_dir`, or compile and store it (module, then record)."""
    key = module_cache_key(wasm_bytes, engine_flags=flags)
    cached = cache_dir / f"melspec-{key}.cwasm"
    record = cached.with_name(cached.name + ".sha256")
    data = _read_verified(cached, record, key=key) if use_cache else None
    if data is not None:
        try:
            return wasmtime.Module.deserialize(engine, data), True
        except wasmtime.WasmtimeError:
            pass  # stale (another wasmtime build): compile again and overwrite it
    try:
        module = wasmtime.Module(engine, wasm_bytes)
    except wasmtime.WasmtimeError as exc:
        raise FrontendError(f"{wasm_path}: not a valid WebAssembly module ({str(exc).splitlines()[0]})") from None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        record.unlink(missing_ok=True)  # never a record next to a module it does not describe
        serialized = module.serialize()
        _write_durably(cached, serialized)
        _write_durably(record, f"{key} {hashlib.sha256(serialized).hexdigest()}\n".encode("ascii"))
    except OSError:
        pass  # a read-only cache only costs the next start a compilation
    return module, False
