"""`python -m bench.pi_check prepare|report`: the host-side steps of `make pi-check` (bench/pi_check/pi_check.sh).

prepare: the bundle and the audio in WORK; report: compare the runs in WORK/out and write the JSON (exit 1
when an interpreter's decisions or confidences differ from the host's, or a run failed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _prepare(args: argparse.Namespace) -> int:
    from bench.pi_check.prepare import prepare

    real_audio = Path(args.real_audio) if args.real_audio else None
    if real_audio is None:
        print("pi-check: BIRDLAB_REAL_AUDIO is not set: synthetic audio only (set it to ../shared/real-audio "
              "to add real recordings)", file=sys.stderr)
    elif not (real_audio / "robustness").is_dir():
        print(f"pi-check: {real_audio}/robustness does not exist: synthetic audio only", file=sys.stderr)
    sets = prepare(args.work, cache_dir=args.cache, real_audio=real_audio)
    print(f"pi-check: prepared {len(sets.decoded)} decoded WAVs and {len(sets.original)} original recordings "
          f"in {args.work}/audio", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from bench.pi_check.report import build_report, describe

    timings = json.loads(args.timings.read_text(encoding="utf-8")) if args.timings and args.timings.exists() else {}
    report = build_report(args.work, host_audio_root=str(args.work.resolve() / "audio"),
                          pi_audio_root=args.pi_audio_root, timings_s=timings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(describe(report))
    print(f"pi-check: wrote {args.out}")
    return 0 if report["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pi_check", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="build (or reuse) the bundle and write the audio into WORK")
    p.add_argument("--work", type=Path, required=True, help="work directory (bind-mounted into the emulated Pi)")
    p.add_argument("--cache", type=Path, required=True, help="where the built bundle is cached")
    p.add_argument("--real-audio", default=os.environ.get("BIRDLAB_REAL_AUDIO") or None,
                   help="the real-audio folder (default: $BIRDLAB_REAL_AUDIO)")
    p.set_defaults(handler=_prepare)
    p = sub.add_parser("report", help="compare WORK/out/* with the host and write the JSON")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--pi-audio-root", required=True, help="WORK/audio as the emulated Pi sees it")
    p.add_argument("--timings", type=Path, default=None, help="JSON of step durations in seconds")
    p.add_argument("--out", type=Path, default=Path("bench/results/pi-check.json"))
    p.set_defaults(handler=_report)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
