"""Command line of the edge runtime: argparse only; each command calls one function.

    python -m edge_runtime run   --bundle DIR_OR_TAR_GZ --source SOURCE [--source ...] [--sink ...] ...
    python -m edge_runtime check --bundle DIR_OR_TAR_GZ
    python -m edge_runtime bench --bundle DIR_OR_TAR_GZ --out FILE.json
    python -m edge_runtime flush [--config FILE.toml] [--outbox PATH] [--sink URL] [--flush-deadline-s S]

Every setting can also come from a TOML file (--config) or an EDGE_RUNTIME_<NAME> environment
variable; flags win over the environment, which wins over the file. `run` and `flush` read the same
settings (one file can serve both). Former spellings (`--shutdown-flush-seconds`, `--http-timeout-seconds`,
flush's `--deadline-s`, ...) are still accepted, hidden from --help. `run_argv` builds the command line
of `run` for other programs (the lab's demo and replay).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.settings import (
    ENV_PREFIX,
    EdgeSettings,
    SettingsError,
    flag_name,
    given_settings,
    load_settings,
    old_flag_name,
    setting_fields,
)

EXIT_USAGE = 2
CHECK_SETTINGS = ("bundle", "interpreter", "num_threads", "frontend_timeout_s", "log_format", "log_level")
BENCH_SETTINGS = ("bundle", "interpreter", "frontend_timeout_s", "log_format", "log_level")
FLUSH_SETTINGS = ("sink", "outbox", "batch_size", "timeout_s", "backoff_initial_s", "backoff_max_s",
                  "flush_deadline_s", "token_env", "token_file", "ca_file", "log_format", "log_level")


def _add_settings(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per setting (all, or `names`), with the setting's help, env variable and default."""
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                        help="TOML file of settings: keys are the NAMEs of the $EDGE_RUNTIME_<NAME> variables below "
                             "in lower case (e.g. sources = [\"mic\"], threshold = 0.4), optionally under "
                             "an [edge_runtime] table")
    defaults = EdgeSettings()
    group = parser.add_argument_group("settings (flag > $EDGE_RUNTIME_<NAME> > config file > default)")
    for f in setting_fields():
        if names is not None and f.name not in names:
            continue
        kind = f.metadata["kind"]
        default = f.value_in(defaults)
        shown = "none" if default in (None, "", ()) else default
        help_text = f"{f.metadata['help']} [${ENV_PREFIX}{f.name.upper()}; default: {shown}]".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        if kind in ("list", "thresholds"):
            kwargs["action"] = "append"
        group.add_argument(flag_name(f), **kwargs)
        old_flag = old_flag_name(f)
        if old_flag:
            group.add_argument(old_flag, **{**kwargs, "help": argparse.SUPPRESS})


def _flags(args: argparse.Namespace) -> dict[str, object]:
    names = {f.name for f in setting_fields()}
    return {k: v for k, v in vars(args).items() if k in names}


def settings_from_args(args: argparse.Namespace, *, environ: Mapping[str, str] | None = None) -> EdgeSettings:
    """The settings of parsed arguments: defaults < --config file < environ (default os.environ) < flags."""
    return load_settings(config_path=args.config, environ=os.environ if environ is None else environ,
                         flags=_flags(args))


_settings_from = settings_from_args


def run_argv(*, bundle: str | Path, sources: Sequence[str], python: str = sys.executable,
             **settings: object) -> list[str]:
    """The command line of `python -m edge_runtime run` for these settings (EdgeSettings field names).

    Lists (include_species, ...) repeat their flag; species_thresholds takes a mapping {code: value};
    None leaves a setting to its default. Raises SettingsError for an unknown or invalid setting,
    exactly as the command would. Example: run_argv(bundle=b, sources=["file:a.wav"], sink=url, top_n=3).
    """
    by_name = {f.name: f for f in setting_fields()}
    unknown = sorted(set(settings) - set(by_name))
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r}; known settings are {sorted(by_name)}")
    given = {k: v for k, v in settings.items() if v is not None}
    thresholds = given.get("species_thresholds")
    if isinstance(thresholds, Mapping):
        given["species_thresholds"] = [f"{code}={value}" for code, value in thresholds.items()]
    load_settings(flags={"bundle": str(bundle), "sources": list(sources), **given})  # refuse what run would refuse
    argv = [python, "-m", "edge_runtime", "run", "--bundle", str(bundle)]
    for source in sources:
        argv += ["--source", source]
    for name, value in given.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            argv += [flag_name(by_name[name]), str(item)]
    return argv


def _configure_logs(settings: EdgeSettings) -> None:
    from edge_runtime.logs import capture_native_stderr, configure_logging

    stream = capture_native_stderr() if settings.log_format == "json" else None
    configure_logging(log_format=settings.log_format, level=settings.log_level, stream=stream)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="analyse audio sources and deliver detections (the device daemon)",
                       description="Analyse audio from the sources with the bundle's model; every detection is "
                                   "committed to the outbox, then delivered to the sink. Ends when every source "
                                   "is exhausted (file:, stdin) or on SIGTERM/SIGINT; exits 0, or 2 for a usage "
                                   "error or a refused bundle.")
    _add_settings(p)

    def handler(args: argparse.Namespace) -> int:
        from edge_runtime.runner import run

        settings = _settings_from(args)
        _configure_logs(settings)
        return run(settings)

    p.set_defaults(handler=handler)


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="verify a bundle: checksums, model shape vs spec, labels vs outputs, wasm ABI",
                       description="Verify a bundle and print one line per check and a verdict; exit 0 when the "
                                   "bundle can run here, 1 when it is refused.")
    _add_settings(p, CHECK_SETTINGS)
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    def handler(args: argparse.Namespace) -> int:
        from edge_runtime.check import check_bundle

        settings = _settings_from(args)
        _configure_logs(settings)
        if not settings.bundle:
            raise SettingsError("check needs --bundle DIR_OR_TAR_GZ")
        report = check_bundle(settings.bundle, interpreter=settings.interpreter, num_threads=settings.num_threads,
                              frontend_timeout_seconds=settings.frontend_timeout_s)
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
        return 0 if report.ok else 1

    p.set_defaults(handler=handler)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the frontend and the model per window; write JSON",
                       description="Time the WASM frontend and the TFLite model (one thread) on synthetic "
                                   "windows, the cold and cached load times and the peak RSS; write them as JSON.")
    _add_settings(p, BENCH_SETTINGS)
    p.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="write the figures here (and print)")
    p.add_argument("--windows", type=int, default=None, help="timed windows (default: bench.DEFAULT_WINDOWS)")

    def handler(args: argparse.Namespace) -> int:
        from edge_runtime.bench import DEFAULT_WINDOWS, run_bench

        settings = _settings_from(args)
        _configure_logs(settings)
        if not settings.bundle:
            raise SettingsError("bench needs --bundle DIR_OR_TAR_GZ")
        result = run_bench(settings.bundle, windows=args.windows or DEFAULT_WINDOWS, interpreter=settings.interpreter,
                           frontend_timeout_seconds=settings.frontend_timeout_s, out=args.out)
        print(json.dumps(result, indent=2))
        return 0

    p.set_defaults(handler=handler)


def _add_flush(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flush", help="deliver what is pending in an outbox; exit non-zero if anything remains",
                       description="Deliver the pending detections of an outbox to a sink, retrying until "
                                   "flush_deadline_s; exit 0 when nothing remains, 1 when some remain pending or "
                                   "dead-lettered, 2 for a usage error. Reads the same settings as run (config "
                                   "file, environment); the sink must be given by one of them.")
    _add_settings(p, FLUSH_SETTINGS)
    p.add_argument("--deadline-s", dest="flush_deadline_s", default=None, help=argparse.SUPPRESS)
    p.add_argument("--requeue-dead-letters", action="store_true",
                   help="first put dead-lettered detections back in the queue (after fixing the cause)")

    def handler(args: argparse.Namespace) -> int:
        from edge_runtime.flush import DEFAULT_DEADLINE_S, run_flush

        settings = settings_from_args(args)
        given = given_settings(config_path=args.config, environ=os.environ, flags=_flags(args))
        if "flush_deadline_s" not in given:
            settings = dataclasses.replace(settings, flush_deadline_s=DEFAULT_DEADLINE_S)
        if "sink" not in given:
            raise SettingsError("flush needs a sink: --sink URL|jsonl:PATH|stdout, $EDGE_RUNTIME_SINK or "
                                "'sink' in the --config file")
        _configure_logs(settings)
        return run_flush(settings, requeue_dead_letters=args.requeue_dead_letters)

    p.set_defaults(handler=handler)


_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_run, _add_check, _add_bench, _add_flush]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge_runtime", description=__doc__.splitlines()[0],
                                     epilog="Run `python -m edge_runtime COMMAND --help` for the settings of each.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except EdgeRuntimeError as exc:  # a setting, a bundle, an outbox, a sink: the message says what to do
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
