"""Command line of the edge runtime: argparse only; each command calls one function.

    python -m edge_runtime run   --bundle DIR_OR_TAR_GZ --source SOURCE [--source ...] [--sink ...] ...
    python -m edge_runtime check --bundle DIR_OR_TAR_GZ
    python -m edge_runtime bench --bundle DIR_OR_TAR_GZ --out FILE.json
    python -m edge_runtime flush --outbox PATH --sink URL

Every setting can also come from a TOML file (--config) or an EDGE_RUNTIME_<NAME> environment
variable; flags win over the environment, which wins over the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_runtime.settings import ENV_PREFIX, EdgeSettings, SettingsError, flag_name, load_settings, setting_fields

EXIT_USAGE = 2
CHECK_SETTINGS = ("bundle", "interpreter", "num_threads", "frontend_timeout_seconds", "log_format", "log_level")
BENCH_SETTINGS = ("bundle", "interpreter", "frontend_timeout_seconds", "log_format", "log_level")


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
        default = getattr(defaults, f.name)
        shown = "none" if default in (None, "", ()) else default
        help_text = f"{f.metadata['help']} [${ENV_PREFIX}{f.name.upper()}; default: {shown}]".replace("%", "%%")
        kwargs = {"dest": f.name, "default": None, "help": help_text}
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        if kind in ("list", "thresholds"):
            kwargs["action"] = "append"
        group.add_argument(flag_name(f), **kwargs)


def _settings_from(args: argparse.Namespace) -> EdgeSettings:
    names = {f.name for f in setting_fields()}
    flags = {k: v for k, v in vars(args).items() if k in names}
    return load_settings(config_path=args.config, environ=os.environ, flags=flags)


def _configure_logs(settings: EdgeSettings) -> None:
    from edge_runtime.logs import configure_logging

    configure_logging(log_format=settings.log_format, level=settings.log_level)


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
                              frontend_timeout_seconds=settings.frontend_timeout_seconds)
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
                           frontend_timeout_seconds=settings.frontend_timeout_seconds, out=args.out)
        print(json.dumps(result, indent=2))
        return 0

    p.set_defaults(handler=handler)


def _add_flush(sub: argparse._SubParsersAction) -> None:
    from edge_runtime.flush import add_flush_arguments

    p = sub.add_parser("flush", help="deliver what is pending in an outbox; exit non-zero if anything remains",
                       description="Deliver the pending detections of an outbox to a sink, retrying until the "
                                   "deadline; exit 0 when nothing remains, 1 when some remain or were "
                                   "dead-lettered, 2 for a usage error.")
    add_flush_arguments(p)

    def handler(args: argparse.Namespace) -> int:
        import logging

        from edge_runtime.flush import run_flush

        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run_flush(args)

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
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
