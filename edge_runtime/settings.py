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

from edge_runtime.delivery import DeliverySettings
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outbox import OutboxSettings
from edge_runtime.sinks import CREDENTIALS_REFUSED, redact_url, url_has_credentials
from edge_runtime.thresholds import check_threshold

ENV_PREFIX = "EDGE_RUNTIME_"
SINK_KINDS = ("stdout", "jsonl:PATH", "http(s)://URL")
STDIN_FORMATS = ("S16_LE", "S32_LE", "FLOAT_LE")
INTERPRETERS = ("auto", "ai_edge_litert", "tflite_runtime")
LOG_FORMATS = ("text", "json")
MAX_BATCH_SIZE = 1000
"""Most detections per request (the reference receiver's default max_batch)."""
MAX_NUM_THREADS = 64
"""Most TFLite interpreter threads (far more than a Raspberry Pi's 4 cores; beyond it the interpreter may crash)."""


class SettingsError(EdgeRuntimeError, ValueError):
    """An invalid setting; the message names the field, where the value came from and what is allowed."""


def _setting(default: Any, kind: str, help: str, *, flag: str | None = None, metavar: str | None = None,
             old: str | None = None) -> Any:
    """A dataclass field with the metadata the loaders and the CLI read.

    old: the field's former name, still read from TOML (key), the environment (EDGE_RUNTIME_<OLD>) and the
    command line (--old-name, hidden from --help).
    """
    meta = {"kind": kind, "help": help, "flag": flag, "metavar": metavar, "old": old}
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
    status_interval_s: float = _setting(5.0, "float", "seconds between status file rewrites",
                                        old="status_interval_seconds")
    device_id: str = _setting("", "str", "name of this device in every detection (default: the host name)")
    overlap_s: float = _setting(0.0, "float", "overlap of consecutive windows in seconds (0 = back to back; "
                                "windows must still advance by 0.25 s)", old="overlap_seconds")
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
    frontend_timeout_s: float = _setting(0.5, "float", "the WASM frontend is stopped after this long on one window",
                                         old="frontend_timeout_seconds")
    stdin_rate_hz: int | None = _setting(None, "int", "sample rate of stdin PCM (default: the bundle's rate)")
    stdin_format: str = _setting("S16_LE", "str", "stdin PCM sample format: S16_LE, S32_LE or FLOAT_LE")
    stdin_channels: int = _setting(1, "int", "interleaved channels of stdin PCM (mixed to mono)")
    mic_rate_hz: int | None = _setting(None, "int",
                                       "rate asked of arecord (default: the bundle's rate; other rates are resampled)")
    mic_command: str = _setting("arecord", "str", "the capture program, called as arecord would be")
    dir_poll_s: float = _setting(2.0, "float",
                                 "seconds between scans of dir: sources; a file is read once its size is "
                                 "unchanged for 2 scans", old="dir_poll_seconds")
    token_env: str = _setting("EDGE_RUNTIME_TOKEN", "str", "environment variable holding the sink's bearer token")
    token_file: Path | None = _setting(None, "path", "file (mode 0600) holding the sink's bearer token", metavar="PATH")
    ca_file: Path | None = _setting(None, "path", "PEM CA certificates for a receiver with a private CA",
                                    metavar="PATH")
    batch_size: int = _setting(50, "int", "detections per HTTP POST (1..1000)")
    timeout_s: float = _setting(10.0, "float", "longest time one HTTP request may take, connection to last byte",
                                old="http_timeout_seconds")
    backoff_initial_s: float = _setting(2.0, "float",
                                        "first retry delay after a failed send; doubles per failure (jittered)",
                                        old="retry_initial_seconds")
    backoff_max_s: float = _setting(300.0, "float", "longest retry delay", old="retry_max_seconds")
    outbox_max_rows: int = _setting(OutboxSettings.max_rows, "int", "outbox bound in rows; beyond it the oldest are dropped (logged)")
    outbox_max_bytes: int = _setting(OutboxSettings.max_bytes, "int", "outbox bound in bytes of detection JSON; oldest dropped beyond")
    flush_deadline_s: float = _setting(10.0, "float",
                                       "run: on SIGTERM/SIGINT, try this long to deliver what is pending; flush: give "
                                       "up after this long (flush's default: 60)", old="shutdown_flush_seconds")
    log_format: str = _setting("text", "str", "log lines as 'text' or 'json' (one object per line) on stderr")
    log_level: str = _setting("INFO", "str", "DEBUG, INFO, WARNING or ERROR")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SettingsError naming the first invalid field."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                shown = redact_url(self.sink) if name == "sink" else getattr(self, name)
                raise SettingsError(f"setting {name}: {what} (got {shown!r})")

        for name in ("status_interval_s", "frontend_timeout_s", "dir_poll_s", "timeout_s", "backoff_initial_s",
                     "backoff_max_s"):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, name, "must be > 0")
        need(math.isfinite(self.overlap_s) and self.overlap_s >= 0, "overlap_s", "must be >= 0")
        need(math.isfinite(self.flush_deadline_s) and self.flush_deadline_s >= 0, "flush_deadline_s", "must be >= 0")
        need(1 <= self.batch_size <= MAX_BATCH_SIZE, "batch_size", f"must be in 1..{MAX_BATCH_SIZE}")
        try:  # the one threshold-range check of the runtime, the bundle and the lab (edge_runtime.thresholds)
            if self.threshold is not None:
                check_threshold(self.threshold, where="setting threshold:")
            for code, value in self.species_thresholds:
                check_threshold(value, where=f"setting species_thresholds: {code}")
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        for name in ("top_n",):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(1 <= self.num_threads <= MAX_NUM_THREADS, "num_threads", f"must be in 1..{MAX_NUM_THREADS}")
        for name in ("stdin_channels", "outbox_max_rows", "outbox_max_bytes"):
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
        need(not url_has_credentials(sink), "sink", CREDENTIALS_REFUSED)
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

    @property
    def delivery(self) -> DeliverySettings:
        """The delivery settings of this run (the sender of `run`, and `flush`)."""
        return DeliverySettings(
            batch_size=self.batch_size, timeout_s=self.timeout_s, backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=max(self.backoff_max_s, self.backoff_initial_s), token_env=self.token_env,
            token_file=self.token_file, ca_file=self.ca_file,
        )

    @property
    def outbox_settings(self) -> OutboxSettings:
        """The bounds of the outbox at `outbox`."""
        return OutboxSettings(max_rows=self.outbox_max_rows, max_bytes=self.outbox_max_bytes)

    def species_threshold_map(self) -> dict[str, float]:
        return dict(self.species_thresholds)


def setting_fields() -> tuple[dataclasses.Field, ...]:
    """The fields of EdgeSettings with their metadata (kind, help, flag, metavar)."""
    return dataclasses.fields(EdgeSettings)


def flag_name(f: dataclasses.Field) -> str:
    """The command-line flag of a field: metadata 'flag' or --field-name."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def old_flag_name(f: dataclasses.Field) -> str | None:
    """The flag of the field's former name (hidden, still accepted), or None."""
    old = f.metadata.get("old")
    return "--" + old.replace("_", "-") if old else None


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
    renamed = {f.metadata["old"]: f.name for f in setting_fields() if f.metadata.get("old")}
    data = {renamed.get(key, key): value for key, value in data.items()}
    known = {f.name for f in setting_fields()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {unknown}; known settings are {sorted(known)}")
    return data


def given_settings(
    *, config_path: Path | None = None, environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> set[str]:
    """The names of the settings that a TOML file, the environment or a flag gives (not left to the default)."""
    names = set(read_toml(config_path)) if config_path is not None else set()
    renamed = {f.metadata["old"]: f.name for f in setting_fields() if f.metadata.get("old")}
    names = {renamed.get(n, n) for n in names}
    for f in setting_fields():
        keys = [ENV_PREFIX + f.name.upper()] + ([ENV_PREFIX + f.metadata["old"].upper()] if f.metadata.get("old") else [])
        if environ and any(k in environ for k in keys):
            names.add(f.name)
    names |= {n for n, v in (flags or {}).items() if v not in (None, (), [])}
    return names


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
        for key in filter(None, (ENV_PREFIX + name.upper(), f.metadata.get("old") and ENV_PREFIX + f.metadata["old"].upper())):
            if environ and key in environ:
                values[name] = _convert(f, environ[key], origin=f"${key}")
                break
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
