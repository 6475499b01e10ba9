"""Settings of the edge runtime: one frozen dataclass, filled from TOML, environment and flags.

Delivery (`EdgeSettings.delivery`, a `DeliverySettings`) and the outbox bounds (`EdgeSettings.outbox_limits`, an
`OutboxSettings`) are nested dataclasses, each declared in the module that uses it. A user names every setting
by one flat name: `batch_size`, `outbox_max_rows`, `threshold`, ... (`setting_fields()` lists them).

Precedence, lowest first: the defaults below, a TOML file (`--config FILE.toml`, keys = flat
names, optionally under an `[edge_runtime]` table; a nested part may also be a table, e.g.
`[edge_runtime.delivery] batch_size = 20` or `[edge_runtime.outbox_limits] max_rows = 1000`),
environment variables `EDGE_RUNTIME_<NAME>` (e.g. EDGE_RUNTIME_THRESHOLD=0.4,
EDGE_RUNTIME_BATCH_SIZE=20; lists comma-separated), then command-line flags. Each field's `help`
is what `--help` prints, so the documentation lives in one place.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runtime.delivery import DeliverySettings, SinkError
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outbox import OutboxError, OutboxSettings
from edge_runtime.setting_field import section, setting
from edge_runtime.sinks import CREDENTIALS_REFUSED, redact_url, url_has_credentials
from edge_runtime.thresholds import check_threshold

ENV_PREFIX = "EDGE_RUNTIME_"
SINK_KINDS = ("stdout", "jsonl:PATH", "http(s)://URL")
STDIN_FORMATS = ("S16_LE", "S32_LE", "FLOAT_LE")
INTERPRETERS = ("auto", "ai_edge_litert", "tflite_runtime")
LOG_FORMATS = ("text", "json")
MAX_NUM_THREADS = 64
"""Most TFLite interpreter threads (far more than a Raspberry Pi's 4 cores; beyond it the interpreter may crash)."""


class SettingsError(EdgeRuntimeError, ValueError):
    """An invalid setting; the message names the field, where the value came from and what is allowed."""


@dataclass(frozen=True)
class Setting:
    """One user-facing setting: its flat name (TOML key, EDGE_RUNTIME_<NAME>, --flag) and the field that holds it."""

    name: str
    """The flat name, e.g. 'batch_size' or 'outbox_max_rows'."""
    section: str | None
    """The EdgeSettings field of the nested dataclass that holds it ('delivery', 'outbox_limits'), or None."""
    field: dataclasses.Field
    """The dataclass field (its metadata: kind, help, flag, metavar, old)."""

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.field.metadata

    def value_in(self, settings: EdgeSettings) -> Any:
        """This setting's value in `settings`."""
        holder = getattr(settings, self.section) if self.section is not None else settings
        return getattr(holder, self.field.name)


@dataclass(frozen=True)
class EdgeSettings:
    """Everything `python -m edge_runtime` can be told; see each field's help."""

    bundle: str = setting("", "str", "bundle directory or .tar.gz exported by birdlab (required for run, check, bench)",
                          metavar="DIR_OR_TAR_GZ")
    sources: tuple[str, ...] = setting(
        (), "list",
        "audio source, repeatable: mic[:ALSA_DEVICE] (arecord), file:PATH (wav/flac/ogg/mp3), "
        "dir:PATH (new files in a directory, polled), stdin (raw PCM, see --stdin-format)",
        flag="--source", metavar="SOURCE")
    sink: str = setting("stdout", "str",
                        "where detections go: an http(s):// URL (POST JSON batches), jsonl:PATH, or stdout",
                        metavar="URL|jsonl:PATH|stdout")
    outbox: Path = setting(Path("edge_outbox.sqlite"), "path",
                           "SQLite outbox: every detection is committed here before it is sent", metavar="PATH")
    state: Path | None = setting(None, "path",
                                 "SQLite file remembering which dir: files are done (default: <outbox>.state)",
                                 metavar="PATH")
    status: Path | None = setting(None, "path", "status JSON file, rewritten atomically while running and at exit",
                                  metavar="PATH")
    status_interval_s: float = setting(5.0, "float", "seconds between status file rewrites",
                                       old="status_interval_seconds")
    device_id: str = setting("", "str", "name of this device in every detection (default: the host name)")
    overlap_s: float = setting(0.0, "float", "overlap of consecutive windows in seconds (0 = back to back; "
                               "windows must still advance by 0.25 s)", old="overlap_seconds")
    threshold: float | None = setting(None, "float",
                                      "global confidence threshold in (0, 1) (default: the bundle's threshold)")
    species_thresholds: tuple[tuple[str, float], ...] = setting(
        (), "thresholds", "per-species threshold overriding the global one, repeatable (TOML: a table)",
        flag="--species-threshold", metavar="EBIRD_CODE=VALUE")
    top_n: int = setting(5, "int", "report at most this many species per window (highest confidence first; 0 = all)")
    include_species: tuple[str, ...] = setting((), "list",
                                               "only report these eBird codes, repeatable or comma-separated",
                                               flag="--include", metavar="EBIRD_CODE")
    exclude_species: tuple[str, ...] = setting((), "list", "never report these eBird codes, repeatable or comma-separated",
                                               flag="--exclude", metavar="EBIRD_CODE")
    num_threads: int = setting(1, "int", "TFLite interpreter threads")
    interpreter: str = setting("auto", "str",
                               "TFLite package: auto (ai_edge_litert, then tflite_runtime), ai_edge_litert, tflite_runtime")
    frontend_timeout_s: float = setting(0.5, "float", "the WASM frontend is stopped after this long on one window",
                                        old="frontend_timeout_seconds")
    stdin_rate_hz: int | None = setting(None, "int", "sample rate of stdin PCM (default: the bundle's rate)")
    stdin_format: str = setting("S16_LE", "str", "stdin PCM sample format: S16_LE, S32_LE or FLOAT_LE")
    stdin_channels: int = setting(1, "int", "interleaved channels of stdin PCM (mixed to mono)")
    mic_rate_hz: int | None = setting(None, "int",
                                      "rate asked of arecord (default: the bundle's rate; other rates are resampled)")
    mic_command: str = setting("arecord", "str", "the capture program, called as arecord would be")
    dir_poll_s: float = setting(2.0, "float",
                                "seconds between scans of dir: sources; a file is read once its size is "
                                "unchanged for 2 scans", old="dir_poll_seconds")
    delivery: DeliverySettings = section(DeliverySettings, prefix="")
    """How detections are sent (batch_size, timeout_s, backoff_initial_s, backoff_max_s, token_env, token_file,
    ca_file: flat names, as in edge_runtime.delivery)."""
    outbox_limits: OutboxSettings = section(OutboxSettings, prefix="outbox_")
    """Bounds of the outbox at `outbox` (outbox_max_rows, outbox_max_bytes)."""
    flush_deadline_s: float = setting(10.0, "float",
                                      "run: on SIGTERM/SIGINT, try this long to deliver what is pending; flush: give "
                                      "up after this long (flush's default: 60)", old="shutdown_flush_seconds")
    log_format: str = setting("text", "str", "log lines as 'text' or 'json' (one object per line) on stderr")
    log_level: str = setting("INFO", "str", "DEBUG, INFO, WARNING or ERROR")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SettingsError naming the first invalid field."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                shown = redact_url(self.sink) if name == "sink" else getattr(self, name)
                raise SettingsError(f"setting {name}: {what} (got {shown!r})")

        for name in ("status_interval_s", "frontend_timeout_s", "dir_poll_s"):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, name, "must be > 0")
        need(math.isfinite(self.overlap_s) and self.overlap_s >= 0, "overlap_s", "must be >= 0")
        need(math.isfinite(self.flush_deadline_s) and self.flush_deadline_s >= 0, "flush_deadline_s", "must be >= 0")
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
        need(self.stdin_channels >= 1, "stdin_channels", "must be >= 1")
        need(isinstance(self.delivery, DeliverySettings), "delivery", "must be a DeliverySettings")
        need(isinstance(self.outbox_limits, OutboxSettings), "outbox_limits", "must be an OutboxSettings")
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

    def species_threshold_map(self) -> dict[str, float]:
        return dict(self.species_thresholds)


def setting_fields() -> tuple[Setting, ...]:
    """Every user-facing setting, flat: EdgeSettings' own fields, then those of its nested sections."""
    found = [Setting(f.name, None, f) for f in dataclasses.fields(EdgeSettings) if "kind" in f.metadata]
    for name, f in _sections().items():
        found += [Setting(f.metadata["prefix"] + sub.name, name, sub)
                  for sub in dataclasses.fields(f.metadata["section"]) if "kind" in sub.metadata]
    return tuple(found)


def _sections() -> dict[str, dataclasses.Field]:
    """EdgeSettings' nested parts by field name (metadata: the dataclass and the flat-name prefix)."""
    return {f.name: f for f in dataclasses.fields(EdgeSettings) if "section" in f.metadata}


def flag_name(f: Setting) -> str:
    """The command-line flag of a setting: metadata 'flag' or --flat-name."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def old_flag_name(f: Setting) -> str | None:
    """The flag of the setting's former name (hidden, still accepted), or None."""
    old = f.metadata.get("old")
    return "--" + old.replace("_", "-") if old else None


def settings_from_flat(values: Mapping[str, Any]) -> EdgeSettings:
    """EdgeSettings from already converted values keyed by flat name (missing = default).

    Raises SettingsError for an unknown name or an invalid value (the message names the setting).
    """
    by_name = {f.name: f for f in setting_fields()}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise SettingsError(f"unknown setting(s) {unknown}; known settings are {sorted(by_name)}")
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        f = by_name[name]
        if f.section is None:
            top[name] = value
        else:
            nested.setdefault(f.section, {})[f.field.name] = value
    try:
        for name, given in nested.items():
            top[name] = _sections()[name].metadata["section"](**given)
        return EdgeSettings(**top)
    except (SinkError, OutboxError, TypeError) as exc:
        raise SettingsError(str(exc)) from None


def _convert(f: Setting, value: Any, *, origin: str) -> Any:
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
    prefixes = {name: f.metadata["prefix"] for name, f in _sections().items()}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in prefixes and isinstance(value, dict):  # [edge_runtime.delivery] batch_size = 20
            flat.update({prefixes[key] + sub: item for sub, item in value.items()})
        else:
            flat[key] = value
    renamed = {f.metadata["old"]: f.name for f in setting_fields() if f.metadata.get("old")}
    data = {renamed.get(key, key): value for key, value in flat.items()}
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
    return settings_from_flat(values)
