"""Settings of the edge runtime: one frozen dataclass, filled from TOML, environment and flags.

Precedence, lowest first: the defaults below, a TOML file (`--config FILE.toml`, keys =
field names, optionally under an `[edge_runtime]` table), environment variables
`EDGE_RUNTIME_<FIELD>` (e.g. EDGE_RUNTIME_THRESHOLD=0.4; lists comma-separated), then
command-line flags. Each field's `help` is what `--help` prints, so the documentation
lives in one place.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runtime.outbox import OutboxSettings

ENV_PREFIX = "EDGE_RUNTIME_"
SINK_KINDS = ("stdout", "jsonl:PATH", "http(s)://URL")
STDIN_FORMATS = ("S16_LE", "S32_LE", "FLOAT_LE")
INTERPRETERS = ("auto", "ai_edge_litert", "tflite_runtime")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """An invalid setting; the message names the field, where the value came from and what is allowed."""


def _setting(default: Any, kind: str, help: str, *, flag: str | None = None, metavar: str | None = None) -> Any:
    """A dataclass field with the metadata the loaders and the CLI read."""
    meta = {"kind": kind, "help": help, "flag": flag, "metavar": metavar}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for frozen settings")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class EdgeSettings:
    """Everything `python -m edge_runtime` can be told; see each field's help."""

    bundle: str = _setting("", "str", "bundle directory or .tar.gz exported by birdlab (required for run, check, bench)",
                           metavar="DIR_OR_TAR_GZ")
    sources: tuple[str, ...] = _setting(
        (), "list",
        "audio source, repeatable: mic[:ALSA_DEVICE] (arecord), file:PATH (wav/flac/ogg/mp3), "
        "dir:PATH (new files in a directory, polled), stdin (raw PCM, see --stdin-format)",
        flag="--source", metavar="SOURCE")
    sink: str = _setting("stdout", "str",
                         "where detections go: an http(s):// URL (POST JSON batches), jsonl:PATH, or stdout",
                         metavar="URL|jsonl:PATH|stdout")
    outbox: Path = _setting(Path("edge_outbox.sqlite"), "path",
                            "SQLite outbox: every detection is committed here before it is sent", metavar="PATH")
    state: Path | None = _setting(None, "path",
                                  "SQLite file remembering which dir: files are done (default: <outbox>.state)",
                                  metavar="PATH")
    status: Path | None = _setting(None, "path", "status JSON file, rewritten atomically while running and at exit",
                                   metavar="PATH")
    status_interval_seconds: float = _setting(5.0, "float", "seconds between status file rewrites")
    device_id: str = _setting("", "str", "name of this device in every detection (default: the host name)")
    overlap_seconds: float = _setting(0.0, "float", "overlap of consecutive windows in seconds (0 = back to back)")
    threshold: float | None = _setting(None, "float",
                                       "global confidence threshold in (0, 1) (default: the bundle's threshold)")
    species_thresholds: tuple[tuple[str, float], ...] = _setting(
        (), "thresholds", "per-species threshold overriding the global one, repeatable (TOML: a table)",
        flag="--species-threshold", metavar="EBIRD_CODE=VALUE")
    top_n: int = _setting(5, "int", "report at most this many species per window (highest confidence first; 0 = all)")
    include_species: tuple[str, ...] = _setting((), "list",
                                                "only report these eBird codes, repeatable or comma-separated",
                                                flag="--include", metavar="EBIRD_CODE")
    exclude_species: tuple[str, ...] = _setting((), "list", "never report these eBird codes, repeatable or comma-separated",
                                                flag="--exclude", metavar="EBIRD_CODE")
    num_threads: int = _setting(1, "int", "TFLite interpreter threads")
    interpreter: str = _setting("auto", "str",
                                "TFLite package: auto (ai_edge_litert, then tflite_runtime), ai_edge_litert, tflite_runtime")
    frontend_timeout_seconds: float = _setting(0.5, "float",
                                               "the WASM frontend is stopped after this long on one window")
    stdin_rate_hz: int | None = _setting(None, "int", "sample rate of stdin PCM (default: the bundle's rate)")
    stdin_format: str = _setting("S16_LE", "str", "stdin PCM sample format: S16_LE, S32_LE or FLOAT_LE")
    stdin_channels: int = _setting(1, "int", "interleaved channels of stdin PCM (mixed to mono)")
    mic_rate_hz: int | None = _setting(None, "int",
                                       "rate asked of arecord (default: the bundle's rate; other rates are resampled)")
    mic_command: str = _setting("arecord", "str", "the capture program, called as arecord would be")
    dir_poll_seconds: float = _setting(2.0, "float",
                                       "seconds between scans of dir: sources; a file is read once its size is "
                                       "unchanged for 2 scans")
    token_env: str = _setting("EDGE_RUNTIME_TOKEN", "str", "environment variable holding the sink's bearer token")
    token_file: Path | None = _setting(None, "path", "file (mode 0600) holding the sink's bearer token", metavar="PATH")
    ca_file: Path | None = _setting(None, "path", "PEM CA certificates for a receiver with a private CA",
                                    metavar="PATH")
    batch_size: int = _setting(50, "int", "detections per HTTP POST (1..1000)")
    http_timeout_seconds: float = _setting(10.0, "float", "timeout of one HTTP request")
    retry_initial_seconds: float = _setting(2.0, "float",
                                            "first retry delay after a failed send; doubles per failure (jittered)")
    retry_max_seconds: float = _setting(300.0, "float", "longest retry delay")
    outbox_max_rows: int = _setting(OutboxSettings.max_rows, "int", "outbox bound in rows; beyond it the oldest are dropped (logged)")
    outbox_max_bytes: int = _setting(OutboxSettings.max_bytes, "int", "outbox bound in bytes of detection JSON; oldest dropped beyond")
    shutdown_flush_seconds: float = _setting(10.0, "float",
                                             "on SIGTERM/SIGINT, try this long to deliver what is pending")
    log_format: str = _setting("text", "str", "log lines as 'text' or 'json' (one object per line) on stderr")
    log_level: str = _setting("INFO", "str", "DEBUG, INFO, WARNING or ERROR")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SettingsError naming the first invalid field."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise SettingsError(f"setting {name}: {what} (got {getattr(self, name)!r})")

        for name in ("status_interval_seconds", "frontend_timeout_seconds", "dir_poll_seconds", "http_timeout_seconds",
                     "retry_initial_seconds", "retry_max_seconds"):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, name, "must be > 0")
        need(math.isfinite(self.overlap_seconds) and self.overlap_seconds >= 0, "overlap_seconds", "must be >= 0")
        need(math.isfinite(self.shutdown_flush_seconds) and self.shutdown_flush_seconds >= 0,
             "shutdown_flush_seconds", "must be >= 0")
        need(self.threshold is None or 0.0 < self.threshold < 1.0, "threshold", "must be in (0, 1)")
        for code, value in self.species_thresholds:
            if not 0.0 < value < 1.0:
                raise SettingsError(f"setting species_thresholds: {code}={value} must be in (0, 1)")
        for name in ("top_n",):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        for name in ("num_threads", "stdin_channels", "batch_size", "outbox_max_rows", "outbox_max_bytes"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("stdin_rate_hz", "mic_rate_hz"):
            need(getattr(self, name) is None or getattr(self, name) >= 1, name, "must be a positive rate in Hz")
        need(self.interpreter in INTERPRETERS, "interpreter", f"must be one of {INTERPRETERS}")
        need(self.stdin_format in STDIN_FORMATS, "stdin_format", f"must be one of {STDIN_FORMATS}")
        need(self.log_format in LOG_FORMATS, "log_format", f"must be one of {LOG_FORMATS}")
        need(self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "log_level",
             "must be DEBUG, INFO, WARNING or ERROR")
        sink = self.sink
        need(sink == "stdout" or sink.startswith(("jsonl:", "http://", "https://")), "sink", f"must be one of {SINK_KINDS}")
        overlap = set(self.include_species) & set(self.exclude_species)
        need(not overlap, "include_species", f"species both included and excluded: {sorted(overlap)}")

    @property
    def resolved_device_id(self) -> str:
        """device_id, or the host name when empty."""
        return self.device_id or socket.gethostname()

    @property
    def resolved_state(self) -> Path:
        """state, or `<outbox>.state` next to the outbox."""
        return self.state if self.state is not None else self.outbox.with_name(self.outbox.name + ".state")

    def species_threshold_map(self) -> dict[str, float]:
        return dict(self.species_thresholds)


def setting_fields() -> tuple[dataclasses.Field, ...]:
    """The fields of EdgeSettings with their metadata (kind, help, flag, metavar)."""
    return dataclasses.fields(EdgeSettings)


def flag_name(f: dataclasses.Field) -> str:
    """The command-line flag of a field: metadata 'flag' or --field-name."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _convert(f: dataclasses.Field, value: Any, *, origin: str) -> Any:
    """Turn a TOML/env/flag value into the field's type; SettingsError names the origin."""
    kind = f.metadata["kind"]

    def fail(what: str) -> SettingsError:
        return SettingsError(f"setting {f.name} from {origin}: {what} (got {value!r})")

    if value is None:
        return None
    try:
        if kind == "str":
            if not isinstance(value, str):
                raise fail("must be a string")
            return value
        if kind == "path":
            if not isinstance(value, (str, Path)):
                raise fail("must be a path string")
            return Path(value).expanduser()
        if kind == "int":
            if isinstance(value, bool) or isinstance(value, float):
                raise fail("must be an integer")
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise fail("must be a number")
            return float(value)
        if kind == "list":
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
                raise fail("must be a list of strings")
            return tuple(i.strip() for i in items if i.strip())
        if kind == "thresholds":
            if isinstance(value, str):
                value = [value]
            if isinstance(value, Mapping):
                pairs = list(value.items())
            else:
                pairs = []
                for item in value:
                    for part in str(item).split(","):
                        code, sep, number = part.partition("=")
                        if not sep:
                            raise fail("expected EBIRD_CODE=VALUE")
                        pairs.append((code.strip(), number))
            return tuple((str(code), float(number)) for code, number in pairs)
    except ValueError as exc:
        if isinstance(exc, SettingsError):
            raise
        raise fail(f"not a valid {kind}") from None
    raise AssertionError(f"unknown setting kind {kind}")


def read_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys, or the `[edge_runtime]` table if present."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: invalid TOML ({exc})") from None
    if isinstance(data.get("edge_runtime"), dict):
        data = data["edge_runtime"]
    known = {f.name for f in setting_fields()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {unknown}; known settings are {sorted(known)}")
    return data


def load_settings(
    *,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> EdgeSettings:
    """Defaults < TOML file < EDGE_RUNTIME_* environment < flags (None means 'not given').

    environ defaults to an empty mapping (pass os.environ to read the real environment).
    """
    values: dict[str, Any] = {}
    by_name = {f.name: f for f in setting_fields()}
    if config_path is not None:
        for name, value in read_toml(config_path).items():
            values[name] = _convert(by_name[name], value, origin=str(config_path))
    for name, f in by_name.items():
        key = ENV_PREFIX + name.upper()
        if environ and key in environ:
            values[name] = _convert(f, environ[key], origin=f"${key}")
    for name, value in (flags or {}).items():
        if name not in by_name:
            raise SettingsError(f"unknown setting {name!r}")
        if value is None or value == () or value == []:
            continue
        values[name] = _convert(by_name[name], value, origin=flag_name(by_name[name]))
    try:
        return EdgeSettings(**values)
    except TypeError as exc:
        raise SettingsError(str(exc)) from None
