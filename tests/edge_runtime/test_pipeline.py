"""The pipeline on known answers: a tone of label k in window w gives exactly the detection (w, k).

Real parts throughout: the tone-detector TFLite model, the real melspec.wasm under wasmtime,
a real SQLite outbox and real WAV files.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from edge_bundle_factory import TONES_HZ, session_bundle, tone, tone_sequence, write_wav

from edge_runtime.bundle import Label, open_bundle
from edge_runtime.decisions import DetectionPolicy, make_detections
from edge_runtime.detection import Detection
from edge_runtime.frontend import MelFrontend
from edge_runtime.inference import TFLiteModel
from edge_runtime.outbox import Outbox
from edge_runtime.pipeline import WindowAnalyzer
from edge_runtime.runner import run
from edge_runtime.settings import EdgeSettings
from edge_runtime.sources import AudioItem
from edge_runtime.windows import Window

TONE_MIN_CONFIDENCE = 0.9
"""A window holding tone k gives label k at least this (the logit there is about +5)."""
SILENT_MAX_CONFIDENCE = 0.1
"""Labels whose tone is absent stay below this."""
LIVE_TIMING_TOLERANCE_S = 0.1
"""Window times of a live capture match the true recording time this closely (one chunk at the nominal
rate, 0.03 s here, plus scheduling jitter)."""

LABELS = tuple(Label(i, code, f"Sci {code}", f"Common {code}") for i, code in enumerate(["aaa", "bbb", "ccc", "ddd"]))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_bundle(tmp_path_factory)


@pytest.fixture
def settings(tmp_path: Path, bundle_dir: Path) -> EdgeSettings:
    """The production defaults, pointed at temporary files and a jsonl sink."""
    return dataclasses.replace(EdgeSettings(), bundle=str(bundle_dir), sink=f"jsonl:{tmp_path / 'out.jsonl'}",
                               outbox=tmp_path / "outbox.sqlite", status=tmp_path / "status.json",
                               device_id="pi-test", flush_deadline_s=5.0)


def _delivered(settings: EdgeSettings) -> list[dict]:
    path = Path(settings.sink.removeprefix("jsonl:"))
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- policy: pure -------------------------------------------------------------------------------------


def test_policy_global_and_per_species_thresholds() -> None:
    probabilities = np.array([0.9, 0.45, 0.3, 0.6])
    policy = DetectionPolicy(threshold=0.5)
    assert [(lb.ebird_code, p) for lb, p in policy.select(probabilities, LABELS)] == [("aaa", 0.9), ("ddd", 0.6)]
    policy = DetectionPolicy(threshold=0.5, species_thresholds={"bbb": 0.4, "aaa": 0.95})
    assert [lb.ebird_code for lb, _ in policy.select(probabilities, LABELS)] == ["ddd", "bbb"]
    assert [lb.ebird_code for lb, _ in DetectionPolicy(threshold=0.6).select(probabilities, LABELS)] == ["aaa", "ddd"]


def test_policy_top_n_include_exclude() -> None:
    probabilities = np.array([0.7, 0.9, 0.8, 0.6])
    assert [lb.ebird_code for lb, _ in DetectionPolicy(threshold=0.5, top_n=2).select(probabilities, LABELS)] == [
        "bbb", "ccc"]
    include = DetectionPolicy(threshold=0.5, include=frozenset({"aaa", "ddd"}))
    assert [lb.ebird_code for lb, _ in include.select(probabilities, LABELS)] == ["aaa", "ddd"]
    exclude = DetectionPolicy(threshold=0.5, exclude=frozenset({"bbb"}), top_n=1)
    assert [lb.ebird_code for lb, _ in exclude.select(probabilities, LABELS)] == ["ccc"]
    with pytest.raises(ValueError, match="model gave 3 outputs for 4 labels"):
        DetectionPolicy(threshold=0.5).select(probabilities[:3], LABELS)


def test_policy_from_settings_refuses_unknown_species(bundle_dir: Path) -> None:
    bundle = open_bundle(bundle_dir)
    known = bundle.labels[1].ebird_code
    policy = DetectionPolicy.from_settings(
        EdgeSettings(threshold=0.3, species_thresholds=((known, 0.7),), top_n=2, exclude_species=(known,)),
        bundle=bundle)
    assert policy.threshold == 0.3 and policy.species_thresholds == {known: 0.7} and policy.exclude == {known}
    assert DetectionPolicy.from_settings(EdgeSettings(), bundle=bundle).threshold == bundle.threshold
    with pytest.raises(ValueError, match=r"include_species: \['nosuch'\] are not labels of the bundle"):
        DetectionPolicy.from_settings(EdgeSettings(include_species=("nosuch",)), bundle=bundle)


def test_make_detections_times_and_stable_ids(bundle_dir: Path) -> None:
    bundle = open_bundle(bundle_dir)
    start = datetime(2026, 5, 1, 5, 30, tzinfo=UTC)
    item = AudioItem(source="file:/x.wav", start_utc=start, identity="abc", read_chunks=lambda: iter(()))
    rate = bundle.spec.sample_rate_hz
    window = Window(index=3, start_sample=3 * bundle.spec.clip_samples, valid_samples=rate * 2,
                    samples=np.zeros(bundle.spec.clip_samples, np.float32))
    picks = [(bundle.labels[0], 0.91), (bundle.labels[2], 0.6)]
    first = make_detections(picks, item=item, window=window, bundle=bundle, device_id="pi")
    again = make_detections(picks, item=item, window=window, bundle=bundle, device_id="pi")
    assert [d.id for d in first] == [d.id for d in again] and len({d.id for d in first}) == 2
    d = first[0]
    assert (d.offset_start_s, d.offset_end_s) == (15.0, 17.0), "the padded tail is not part of the window's end"
    assert d.start_utc == (start + timedelta(seconds=15)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert d.end_utc == (start + timedelta(seconds=17)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert (d.ebird_code, d.confidence, d.model_id) == (bundle.labels[0].ebird_code, 0.91, bundle.model_id)
    assert d.model_sha256 == bundle.model_sha256 and d.spec_hash == bundle.spec.spec_hash
    other = dataclasses.replace(item, identity="other-file-content")
    assert make_detections(picks, item=other, window=window, bundle=bundle, device_id="pi")[0].id != d.id
    Detection.from_json_dict(d.to_json_dict())  # valid for the receiver


# -- analyzer and runs: real wasm + TFLite ------------------------------------------------------------


@pytest.mark.parametrize("label", range(len(TONES_HZ)))
def test_analyzer_known_answer(bundle_dir: Path, label: int) -> None:
    bundle = open_bundle(bundle_dir)
    spec = bundle.spec
    with MelFrontend.load(bundle.wasm_path, spec=spec) as frontend:
        analyzer = WindowAnalyzer(frontend=frontend, model=TFLiteModel.load(bundle.model_path), spec=spec)
        probabilities = analyzer.probabilities(tone(TONES_HZ[label], seconds=spec.clip_seconds,
                                                    sample_rate_hz=spec.sample_rate_hz))
        silent = analyzer.probabilities(np.zeros(spec.clip_samples, np.float32))
    assert probabilities.shape == (len(TONES_HZ),)
    assert probabilities[label] >= TONE_MIN_CONFIDENCE
    assert np.delete(probabilities, label).max() <= SILENT_MAX_CONFIDENCE
    assert silent.max() <= SILENT_MAX_CONFIDENCE
    assert analyzer.frontend_seconds > 0 and analyzer.model_seconds > 0


def test_run_over_files_detects_each_tone_in_its_window(settings: EdgeSettings, tmp_path: Path) -> None:
    spec = open_bundle(settings.bundle).spec
    plan = [0, None, 1, 2, 3, None]
    write_wav(tmp_path / "a.wav", tone_sequence(plan, spec=spec), sample_rate_hz=spec.sample_rate_hz)
    write_wav(tmp_path / "b.wav", tone_sequence([3, 3], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    settings = dataclasses.replace(settings, sources=(f"file:{tmp_path / 'a.wav'}", f"file:{tmp_path / 'b.wav'}"))
    assert run(settings) == 0
    labels = open_bundle(settings.bundle).labels
    got = sorted((Path(d["source"]).name, d["offset_start_s"], d["ebird_code"]) for d in _delivered(settings))
    expected = sorted([("a.wav", w * spec.clip_seconds, labels[k].ebird_code) for w, k in enumerate(plan) if k is not None]
                      + [("b.wav", w * spec.clip_seconds, labels[3].ebird_code) for w in range(2)])
    assert got == expected
    status = json.loads(settings.status.read_text())
    assert status["state"] == "stopped"
    assert (status["files_done"], status["files_failed"], status["windows_processed"]) == (2, 0, 8)
    assert status["detections_total"] == len(expected) and status["outbox_depth"] == 0
    assert status["realtime_factor"] > 1


def test_rerun_gives_the_same_ids_and_nothing_new(settings: EdgeSettings, tmp_path: Path) -> None:
    spec = open_bundle(settings.bundle).spec
    write_wav(tmp_path / "a.wav", tone_sequence([1, 2], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    settings = dataclasses.replace(settings, sources=(f"file:{tmp_path / 'a.wav'}",))
    assert run(settings) == 0
    first = [d["id"] for d in _delivered(settings)]
    assert run(settings) == 0
    second = [d["id"] for d in _delivered(settings)][len(first):]
    assert len(first) == 2 and second == first, "re-processing a file re-sends the same ids (the receiver dedups)"


def test_overlap_top_n_and_thresholds_reach_the_detections(settings: EdgeSettings, tmp_path: Path) -> None:
    spec = open_bundle(settings.bundle).spec
    # tones 0 and 1 together for one clip, then silence for one clip
    both = tone(TONES_HZ[0], seconds=spec.clip_seconds, sample_rate_hz=spec.sample_rate_hz) + tone(
        TONES_HZ[1], seconds=spec.clip_seconds, sample_rate_hz=spec.sample_rate_hz)
    audio = np.concatenate([both, np.zeros(spec.clip_samples, np.float32)])
    write_wav(tmp_path / "two.wav", audio * 0.5, sample_rate_hz=spec.sample_rate_hz)
    settings = dataclasses.replace(settings, sources=(f"file:{tmp_path / 'two.wav'}",), overlap_s=2.5, top_n=1)
    assert run(settings) == 0
    delivered = _delivered(settings)
    # windows start at 0, 2.5, 5 s: the first two hold the tones, the third is silent
    assert sorted({d["offset_start_s"] for d in delivered}) == [0.0, 2.5]
    assert len(delivered) == 2, "top_n=1 keeps one species per window"
    status = json.loads(settings.status.read_text())
    assert status["windows_processed"] == 3


def test_stop_event_finishes_the_current_window_and_flushes(settings: EdgeSettings, tmp_path: Path) -> None:
    spec = open_bundle(settings.bundle).spec
    stop = threading.Event()
    stop.set()  # stop before anything is read: nothing processed, still a clean exit and a status file
    write_wav(tmp_path / "a.wav", tone_sequence([0], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    settings = dataclasses.replace(settings, sources=(f"file:{tmp_path / 'a.wav'}",))
    assert run(settings, stop=stop) == 0
    status = json.loads(settings.status.read_text())
    assert status["state"] == "stopped" and status["windows_processed"] == 0
    with Outbox(settings.outbox) as outbox:
        assert outbox.depth() == 0


def test_interpreter_is_chosen_at_run_time(bundle_dir: Path) -> None:
    import subprocess
    import sys

    from edge_runtime.inference import InferenceError, interpreter_class

    _, name = interpreter_class("auto")
    assert name == "ai_edge_litert", "LiteRT first"
    model = TFLiteModel.load(open_bundle(bundle_dir).model_path, backend="ai_edge_litert", num_threads=2)
    assert model.backend == "ai_edge_litert" and model.output_info.shape == (1, len(TONES_HZ))
    with pytest.raises(InferenceError, match="must be 'auto' or one of"):
        interpreter_class("tensorflow")
    # without LiteRT, auto falls back to tflite_runtime; with neither installed the error says what to install
    code = ("import sys; sys.modules['ai_edge_litert'] = None\n"
            "from edge_runtime.inference import InferenceError, interpreter_class\n"
            "try:\n    print(interpreter_class('auto')[1])\nexcept InferenceError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    try:
        import tflite_runtime  # noqa: F401
    except ImportError:
        assert "tried ai_edge_litert" in out and "tflite_runtime" in out and "pip install ai-edge-litert" in out
    else:
        assert out.strip() == "tflite_runtime"


def test_live_windows_are_timed_by_arrival_so_a_drifting_sound_card_does_not_drift_the_clock() -> None:
    """A capture whose clock runs 5 % fast: 105 samples arrive every 0.1 s at a nominal 1000 Hz. The window
    times follow the wall clock (when the samples were really recorded), not the nominal sample count."""
    import time

    from edge_runtime.pipeline import timed_windows

    rate, chunk, period_s, n_chunks = 1000, 105, 0.1, 50
    started = datetime.now(UTC)

    def capture():
        for i in range(n_chunks):
            time.sleep(max(0.0, (started + timedelta(seconds=(i + 1) * period_s) - datetime.now(UTC)).total_seconds()))
            yield np.zeros(chunk, np.float32)

    item = AudioItem(source="mic", start_utc=started, identity="s", read_chunks=capture, realtime=True)
    timed = list(timed_windows(item, clip_samples=500, step_samples=500, rate_hz=rate))
    assert len(timed) == 11  # 5250 samples: 10 full windows and a padded tail
    for window, start_utc in timed[:-1]:
        true_start = started + timedelta(seconds=window.start_sample / chunk * period_s)
        assert abs((start_utc - true_start).total_seconds()) < LIVE_TIMING_TOLERANCE_S
    nominal = started + timedelta(seconds=timed[9][0].start_sample / rate)
    assert (nominal - timed[9][1]).total_seconds() > 0.15, "the nominal clock would be 0.21 s late by window 9"
    offline = dataclasses.replace(item, realtime=False)
    assert all(t is None for _, t in timed_windows(offline, clip_samples=500, step_samples=500, rate_hz=rate))
