"""bench/results/pi-check.json from the runs' outputs: each emulated-Pi interpreter against the host.

WORK/out/<side>/ holds what bench/pi_check/edge_runs.sh wrote for one side (host, pi-litert,
pi-tflite): probe.json, check.json and check.rc, run.rc, status.json, detections.jsonl, run.log,
scores.npz and scores.rc.

Per interpreter: `identical` compares the decisions of `run` (its detections); `max_abs_confidence_diff` is
over the raw float32 outputs of every window and label (scores.npz), since a detection's confidence is
rounded to 6 decimals (two outputs 1e-9 apart can round 1e-6 apart); the rounded detection confidences
are checked too, within the tolerance plus that rounding step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.pi_check.compare import CONFIDENCE_ATOL, compare_detections, compare_scores, only_files, read_jsonl

NOT_COVERED = ("the Pi's kernel (qemu-user runs the aarch64 userland on the x86_64 host's kernel), its audio "
               "devices (ALSA, arecord), systemd, and real timings (emulation is ~10-50x slower than a Pi)")


@dataclass(frozen=True)
class PiSide:
    """One emulated-Pi venv and the host files it is compared on."""

    name: str
    """Directory under WORK/out/ (e.g. 'pi-litert')."""
    interpreter: str
    """The TFLite package the venv has: 'ai_edge_litert' or 'tflite_runtime'."""
    audio_sets: tuple[str, ...]
    """Which sets of WORK/audio_sets.json it analysed ('decoded', 'original')."""


PI_SIDES = (
    PiSide(name="pi-litert", interpreter="ai_edge_litert", audio_sets=("decoded", "original")),
    PiSide(name="pi-tflite", interpreter="tflite_runtime", audio_sets=("decoded",)),
)
DETECTION_ROUNDING = 1e-6
"""edge_runtime.decisions rounds a detection's confidence to 6 decimals."""
HOST_SIDE = "host"
HOST_AUDIO_SETS = ("decoded", "original")


def _read_json(path: Path) -> Any:
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _read_rc(path: Path) -> int | None:
    return int(path.read_text().strip()) if path.exists() else None


def _read_scores(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def side_summary(out_dir: Path) -> dict[str, Any]:
    """What one side's run says about itself: probe, check and run exit codes, status counters."""
    probe = _read_json(out_dir / "probe.json") or {}
    check = _read_json(out_dir / "check.json") or {}
    status = _read_json(out_dir / "status.json") or {}
    return {
        "probe": probe,
        "check_ok": bool(check.get("ok")) and _read_rc(out_dir / "check.rc") == 0,
        "check_verdict": check.get("verdict"),
        "run_exit_status": _read_rc(out_dir / "run.rc"),
        "scores_exit_status": _read_rc(out_dir / "scores.rc"),
        **{key: status.get(key) for key in ("files_done", "files_failed", "windows_processed", "detections_total")},
    }


def build_report(work_dir: Path, *, host_audio_root: str, pi_audio_root: str,
                 timings_s: Mapping[str, float]) -> dict[str, Any]:
    """The pi-check.json object; `passed` when every side checked, ran, and matched the host."""
    sets = json.loads((work_dir / "audio_sets.json").read_text(encoding="utf-8"))
    out = work_dir / "out"
    host = side_summary(out / HOST_SIDE)
    host_detections = read_jsonl(out / HOST_SIDE / "detections.jsonl")
    host_scores = _read_scores(out / HOST_SIDE / "scores.npz")
    host_ok = (host["check_ok"] and host["run_exit_status"] == 0 and host["files_failed"] == 0
               and host["scores_exit_status"] == 0)
    interpreters: dict[str, Any] = {}
    for side in PI_SIDES:
        summary = side_summary(out / side.name)
        files = [f for name in side.audio_sets for f in sets[name]]
        reference = only_files(host_detections, audio_root=host_audio_root, relative_paths=files)
        comparison = compare_detections(reference, read_jsonl(out / side.name / "detections.jsonl"),
                                        reference_root=host_audio_root, candidate_root=pi_audio_root,
                                        tolerance=CONFIDENCE_ATOL + DETECTION_ROUNDING + 1e-12)
        pi_scores = _read_scores(out / side.name / "scores.npz")
        scores = compare_scores(host_scores, pi_scores, files=files)
        scores_by_set = {name: compare_scores(host_scores, pi_scores, files=sets[name]).to_dict()
                         for name in side.audio_sets}
        ran = (summary["check_ok"] and summary["run_exit_status"] == 0 and summary["files_failed"] == 0
               and summary["files_done"] == len(files) and summary["scores_exit_status"] == 0
               and summary["probe"].get("interpreter") == side.interpreter)
        scores_ok = (not scores.mismatched_files and scores.max_abs_output_diff is not None
                     and scores.max_abs_output_diff <= CONFIDENCE_ATOL)
        interpreters[side.interpreter] = {
            "detections": comparison.detections,
            "identical": comparison.identical,
            "max_abs_confidence_diff": scores.max_abs_output_diff,
            "passed": ran and comparison.passed and scores_ok,
            "decisions": comparison.to_dict(),
            "scores": scores.to_dict(),
            "scores_by_audio_set": scores_by_set,
            "venv": side.name,
            "audio_sets": list(side.audio_sets),
            "files": len(files),
            **summary,
        }
    pi_probe = interpreters[PI_SIDES[0].interpreter]["probe"]
    return {
        "arch": pi_probe.get("arch"),
        "python": pi_probe.get("python"),
        "glibc": pi_probe.get("glibc"),
        "cpu": pi_probe.get("cpu"),
        "emulation": "Debian bookworm arm64 (debootstrap) under qemu-user-static on the host's kernel",
        "not_covered": NOT_COVERED,
        "bundle": "tone detector (tests/edge_runtime/edge_bundle_factory.py): real TFLite + real melspec.wasm",
        "audio": {**sets, "real_audio": bool(sets["original"])},
        "host": {**host, "detections": len(host_detections), "passed": host_ok},
        "interpreters": interpreters,
        "confidence_tolerance": CONFIDENCE_ATOL,
        "timings_s": dict(timings_s),
        "passed": host_ok and all(i["passed"] for i in interpreters.values()),
    }


def describe(report: Mapping[str, Any]) -> str:
    """A few lines for the log: verdict per interpreter with its counts."""
    lines = [f"pi-check: {report['arch']} Python {report['python']} glibc {report['glibc']} (emulated; host "
             f"{report['host']['probe'].get('arch')}): host {report['host']['detections']} detections"]
    for name, r in report["interpreters"].items():
        diff, mel = r["max_abs_confidence_diff"], r["scores"]["max_abs_log_mel_diff_db"]
        lines.append(f"  {name}: {r['detections']} detections vs {r['decisions']['reference_detections']} on the "
                     f"host over {r['files']} files, identical={r['identical']}; over {r['scores']['outputs']} "
                     f"outputs ({r['scores']['windows']} windows) max |dp|={'n/a' if diff is None else f'{diff:.2e}'}"
                     f", log-mel max |d|={'n/a' if mel is None else f'{mel:.2e}'} dB "
                     f"(bit-identical: {r['scores']['log_mel_bit_identical']}); check_ok={r['check_ok']}, "
                     f"files_failed={r['files_failed']} -> {'PASS' if r['passed'] else 'FAIL'}")
        if not r["identical"]:
            lines.append(f"    only on the host: {r['decisions']['only_reference']}; "
                         f"only on the Pi: {r['decisions']['only_candidate']}")
    lines.append("pi-check: " + ("PASS" if report["passed"] else "FAIL"))
    return "\n".join(lines)
