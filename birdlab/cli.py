"""Command line of birdlab: argparse only; each command calls one library function.

Every subcommand is registered by an `_add_<name>` function below and runs a handler
that receives the parsed arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from birdlab import __version__
from birdlab.errors import UserError

Handler = Callable[[argparse.Namespace], int]


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job offline on the embedded synthetic dataset")
    p.add_argument("--data", type=Path, default=None, help="dataset directory (default: data/synthetic)")
    p.add_argument("--quick", action="store_true", help="smallest sizes, for smoke tests")

    def run(args: argparse.Namespace) -> int:
        from birdlab.demo import run_demo

        return run_demo(data_dir=args.data, quick=args.quick)

    p.set_defaults(handler=run)


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="BirdCLEF 2021 data: download from Kaggle or synthesise the embedded default")
    data_sub = p.add_subparsers(dest="data_command", required=True)

    s = data_sub.add_parser("synth", help="write the deterministic synthetic dataset in BirdCLEF 2021 layout")
    s.add_argument("--dest", type=Path, default=Path("data/synthetic"), help="output directory")
    s.add_argument("--species", type=int, default=None, help="number of species (default: all 24 Brittany species)")
    s.add_argument("--per-species", type=int, default=None, help="train_short_audio recordings per species")
    s.add_argument("--soundscapes", type=int, default=None, help="number of ~1-minute soundscapes")
    s.add_argument("--seed", type=int, default=None, help="random seed (same seed -> identical audio)")

    def run_synth(args: argparse.Namespace) -> int:
        import dataclasses

        from birdlab.synth import SynthConfig, synthesize

        overrides = {
            "n_species": args.species,
            "recordings_per_species": args.per_species,
            "n_soundscapes": args.soundscapes,
            "seed": args.seed,
        }
        config = dataclasses.replace(SynthConfig(), **{k: v for k, v in overrides.items() if v is not None})
        summary = synthesize(dest=args.dest, config=config)
        print(summary.describe())
        return 0

    s.set_defaults(handler=run_synth)

    d = data_sub.add_parser("download", help="fetch the Brittany subset of BirdCLEF 2021 with the kaggle package")
    d.add_argument("--dest", type=Path, default=Path("data/raw/birdclef-2021"), help="output directory")
    d.add_argument("--species", type=Path, default=None, help="species CSV (default: data/brittany_species.csv)")
    d.add_argument("--no-soundscapes", action="store_true", help="skip train_soundscapes/")
    d.add_argument("--refresh", action="store_true", help="download the two metadata CSVs again even when present")

    def run_download(args: argparse.Namespace) -> int:
        from birdlab.kaggle_download import download_subset

        report = download_subset(
            dest=args.dest, species_csv=args.species, soundscapes=not args.no_soundscapes,
            refresh_metadata=args.refresh,
        )
        print(report.describe())
        return 0 if not report.failed else 1

    d.set_defaults(handler=run_download)


# Each entry adds one subcommand. Add yours here, in the order of `python -m birdlab --help`.
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo,
    _add_data,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m birdlab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"birdlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
