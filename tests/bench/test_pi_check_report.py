"""bench.pi_check.report: pi-check.json from the sides' output folders (written here by code, as
bench/pi_check/edge_runs.sh writes them), on known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.pi_check.report import PI_SIDES, build_report, describe

PI_ROOT = "/pi-check/work/audio"
DECODED = ["decoded/tones.wav", "decoded/real.mp3.wav"]
ORIGINAL = ["original/real.mp3"]


def _write_side(out: Path, *, arch: str, interpreter: str, audio_root: str, files: list[str],
                detections: list[tuple[str, float, str, float]], outputs: dict[str, np.ndarray]) -> None:
    out.mkdir(parents=True)
    probe = {"arch": arch, "python": "3.11.2", "glibc": "2.36", "cpu": "Raspberry Pi 5", "interpreter": interpreter}
    (out / "probe.json").write_text(json.dumps(probe))
    (out / "check.json").write_text(json.dumps({"ok": True, "verdict": "OK"}))
    for name in ("check", "run", "scores"):
        (out / f"{name}.rc").write_text("0\n")
    status = {"files_done": len(files), "files_failed": 0, "windows_processed": 3, "detections_total": len(detections)}
    (out / "status.json").write_text(json.dumps(status))
    lines = [json.dumps({"source": f"file:{audio_root}/{f}", "offset_start_s": s, "offset_end_s": s + 5.0,
                         "ebird_code": code, "confidence": c}) for f, s, code, c in detections]
    (out / "detections.jsonl").write_text("".join(line + "\n" for line in lines))
    arrays = {}
    for f in files:
        arrays[f"{f}|outputs"] = outputs[f]
        arrays[f"{f}|features"] = np.full((outputs[f].shape[0], 4, 3), -20.0, dtype=np.float32)
    np.savez(out / "scores.npz", **arrays)


def _work(tmp_path: Path, rng: np.random.Generator, *, tflite_shift: float = 0.0,
          tflite_extra_detection: bool = False, original: tuple[str, ...] = tuple(ORIGINAL)) -> Path:
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "audio_sets.json").write_text(json.dumps({"decoded": DECODED, "original": list(original)}))
    host_root = str(work / "audio")
    outputs = {f: rng.uniform(0, 1, (3, 4)).astype(np.float32) for f in DECODED + list(original)}
    dets = [("decoded/tones.wav", 0.0, "eurrob1", 0.91)] + [(f, 5.0, "comcha", 0.62) for f in original]
    _write_side(work / "out" / "host", arch="x86_64", interpreter="ai_edge_litert", audio_root=host_root,
                files=DECODED + list(original), detections=dets, outputs=outputs)
    _write_side(work / "out" / "pi-litert", arch="aarch64", interpreter="ai_edge_litert", audio_root=PI_ROOT,
                files=DECODED + list(original), detections=dets, outputs=outputs)
    tflite_dets = [d for d in dets if d[0] in DECODED]
    if tflite_extra_detection:
        tflite_dets.append(("decoded/real.mp3.wav", 10.0, "eurrob1", 0.5))
    tflite_outputs = {f: outputs[f] + np.float32(tflite_shift) for f in DECODED}
    _write_side(work / "out" / "pi-tflite", arch="aarch64", interpreter="tflite_runtime", audio_root=PI_ROOT,
                files=DECODED, detections=tflite_dets, outputs=tflite_outputs)
    return work


def test_equal_runs_pass_with_the_keys_the_issue_names(tmp_path: Path, rng: np.random.Generator) -> None:
    work = _work(tmp_path, rng)
    report = build_report(work, host_audio_root=str(work / "audio"), pi_audio_root=PI_ROOT, timings_s={"total": 1})
    assert (report["arch"], report["python"], report["glibc"]) == ("aarch64", "3.11.2", "2.36")
    assert set(report["interpreters"]) == {side.interpreter for side in PI_SIDES}
    litert, tflite = report["interpreters"]["ai_edge_litert"], report["interpreters"]["tflite_runtime"]
    assert (litert["detections"], litert["identical"], litert["max_abs_confidence_diff"]) == (2, True, 0.0)
    assert (tflite["detections"], tflite["identical"]) == (1, True), "tflite is compared on the decoded files only"
    assert tflite["scores"]["windows"] == 6 and litert["scores"]["windows"] == 9
    assert litert["scores_by_audio_set"]["original"]["windows"] == 3 and set(tflite["scores_by_audio_set"]) == {"decoded"}
    assert report["passed"] and "PASS" in describe(report)
    json.dumps(report)


def test_an_extra_decision_fails_the_interpreter_and_the_run(tmp_path: Path, rng: np.random.Generator) -> None:
    work = _work(tmp_path, rng, tflite_extra_detection=True)
    report = build_report(work, host_audio_root=str(work / "audio"), pi_audio_root=PI_ROOT, timings_s={})
    tflite = report["interpreters"]["tflite_runtime"]
    assert not tflite["identical"] and not tflite["passed"] and not report["passed"]
    assert tflite["decisions"]["only_candidate"] == [["decoded/real.mp3.wav", 10.0, 15.0, "eurrob1"]]
    assert report["interpreters"]["ai_edge_litert"]["passed"]


@pytest.mark.parametrize(("shift", "passed"), [(5e-7, True), (3e-6, False)])
def test_raw_outputs_are_held_to_1e_6(tmp_path: Path, rng: np.random.Generator, shift: float, passed: bool) -> None:
    work = _work(tmp_path, rng, tflite_shift=shift)
    report = build_report(work, host_audio_root=str(work / "audio"), pi_audio_root=PI_ROOT, timings_s={})
    tflite = report["interpreters"]["tflite_runtime"]
    assert tflite["max_abs_confidence_diff"] == pytest.approx(shift, rel=0.2)
    assert tflite["identical"] and tflite["passed"] is passed and report["passed"] is passed


def test_a_failed_run_on_the_pi_fails_even_with_equal_detections(tmp_path: Path, rng: np.random.Generator) -> None:
    work = _work(tmp_path, rng)
    (work / "out" / "pi-litert" / "run.rc").write_text("1\n")
    report = build_report(work, host_audio_root=str(work / "audio"), pi_audio_root=PI_ROOT, timings_s={})
    assert report["interpreters"]["ai_edge_litert"]["identical"]
    assert not report["interpreters"]["ai_edge_litert"]["passed"] and not report["passed"]


def test_without_real_audio_both_interpreters_are_compared_on_the_synthetic_files(tmp_path: Path,
                                                                                  rng: np.random.Generator) -> None:
    work = _work(tmp_path, rng, original=())
    report = build_report(work, host_audio_root=str(work / "audio"), pi_audio_root=PI_ROOT, timings_s={})
    assert report["audio"]["real_audio"] is False and report["passed"]
    assert [i["files"] for i in report["interpreters"].values()] == [2, 2]
    assert report["interpreters"]["ai_edge_litert"]["scores_by_audio_set"]["original"]["windows"] == 0
