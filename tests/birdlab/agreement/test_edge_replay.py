"""Edge replay: `python -m edge_runtime run` as a subprocess, the reference receiver on 127.0.0.1, a real bundle."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from birdlab.agreement import edge_replay
from birdlab.data.birdclef2021 import BirdCLEF2021, SoundscapeRow
from birdlab.data.summary import label_timeline
from birdlab.errors import UserError

SEED = 20210701


@pytest.fixture(scope="module")
def dataset(synthetic_quick):
    return BirdCLEF2021(synthetic_quick)


@pytest.fixture(scope="module")
def quick_codes(dataset):
    return tuple(sorted({r.primary_label for r in dataset.recordings()}))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, export_spec, export_features, quick_codes, dataset):
    """A bundle of the real (shrunk, untrained, seeded) CNN whose labels are the quick dataset's species."""
    import keras
    from lab_fixtures import DB_MEAN, DB_STD, small_model_config, write_run_dir

    from birdlab.export.bundle_writer import export_run
    from birdlab.export.run_features import RunFeatures
    from birdlab.training import model as model_lib

    keras.utils.set_random_seed(SEED)
    model = model_lib.build_model(config=small_model_config(), input_shape=export_spec.input_shape,
                                  n_species=len(quick_codes), norm_mean_db=DB_MEAN, norm_std_db=DB_STD)
    run_dir = write_run_dir(tmp_path_factory.mktemp("runs") / "replay", model=model, spec=export_spec, threshold=0.5)
    names = {r.primary_label: (r.scientific_name, r.common_name) for r in dataset.recordings()}
    with open(run_dir / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "ebird_code", "scientific_name", "common_name"])
        writer.writerows([i, code, *names[code]] for i, code in enumerate(quick_codes))
    features = RunFeatures(representative=export_features[:8], heldout=export_features[:4], heldout_truth=None)
    return export_run(run_dir=run_dir, out_dir=tmp_path_factory.mktemp("export") / "replay", features=features).bundle_dir


@pytest.mark.slow
def test_replay_delivers_exactly_the_lab_decisions(bundle_dir, dataset, quick_codes, tmp_path):
    from birdlab.agreement.frontends import decision_agreement
    from edge_runtime.bundle import open_bundle

    bundle = open_bundle(bundle_dir)
    soundscape = next(iter(dataset.soundscapes().values()))
    result = edge_replay.replay_soundscape(bundle_dir, soundscape.path, work_dir=tmp_path / "replay")
    n_windows = 30  # a 30-s soundscape in the bundle's 1-s windows
    assert result.exit_code == 0
    assert result.status["windows_processed"] == n_windows
    assert result.status["detections_total"] == len(result.detections) and result.status["outbox_depth"] == 0
    assert {d["device_id"] for d in result.detections} <= {edge_replay.DEVICE_ID}
    assert {d["model_id"] for d in result.detections} <= {bundle.model_id}

    lab = decision_agreement([soundscape.path], model_path=bundle.model_path, wasm_path=bundle.wasm_path,
                             spec=bundle.spec, threshold=bundle.threshold)
    windows, species = np.nonzero(lab.wasm_decisions)
    expected = {(float(w), quick_codes[s]) for w, s in zip(windows, species, strict=True)}
    received = {(d["offset_start_s"], d["ebird_code"]) for d in result.detections}
    assert expected and expected != {(float(w), c) for w in range(n_windows) for c in quick_codes}, \
        "the seeded model must decide some, not all, (window, species) pairs for this test to mean anything"
    assert received == expected, "the device must report exactly the lab's decisions"

    frame = edge_replay.detections_frame(result.detections)
    assert len(frame) == len(result.detections)
    assert list(frame["offset_start_s"]) == sorted(frame["offset_start_s"])
    timeline = label_timeline(dataset.soundscape_rows(), audio_id=soundscape.audio_id, codes=quick_codes)
    with pytest.raises(ValueError, match="lab decisions cover"):
        edge_replay.differences_from_lab(edge_replay.detection_matrix(result.detections, timeline=timeline),
                                         lab_decisions=lab.wasm_decisions)


def test_replay_of_a_missing_bundle_reports_the_exit_status(tmp_path, dataset):
    soundscape = next(iter(dataset.soundscapes().values()))
    with pytest.raises(edge_replay.ReplayError, match=r"exited with 2"):
        edge_replay.replay_soundscape(tmp_path / "no-bundle", soundscape.path, work_dir=tmp_path / "replay")


def _timeline():
    rows = [SoundscapeRow("1_A_5", "A", 1, 5, ("a",)), SoundscapeRow("1_A_10", "A", 1, 10, ()),
            SoundscapeRow("1_A_15", "A", 1, 15, ("a", "b"))]
    return label_timeline(rows, audio_id=1, codes=("a", "b"))


def _detection(code: str, start_s: float) -> dict:
    return {"ebird_code": code, "offset_start_s": start_s}


def test_detection_matrix_places_detections_in_their_label_window():
    timeline = _timeline()
    detected = edge_replay.detection_matrix(
        [_detection("a", 0.0), _detection("a", 4.0), _detection("b", 5.0), _detection("zzz", 0.0),
         _detection("b", 15.0)], timeline=timeline)
    np.testing.assert_array_equal(detected, [[True, False, False], [False, True, False]])


def test_score_counts_hits_misses_false_alarms_and_row_f1():
    timeline = _timeline()
    detected = np.array([[True, False, False], [False, True, False]])
    score = edge_replay.score_replay(timeline, detected)
    assert (score.hits, score.misses, score.false_alarms, score.n_windows) == (1, 2, 1, 3)
    # rows: {a} vs {a} = 1; nocall vs {b} = 0; {a, b} vs nocall = 0
    assert score.row_wise_micro_f1 == pytest.approx(1 / 3)
    assert "1 hit(s), 2 miss(es), 1 false alarm(s)" in score.describe()
    with pytest.raises(ValueError, match="detected shape"):
        edge_replay.score_replay(timeline, detected[:, :2])


def test_differences_from_lab_counts_cells():
    detected = np.array([[True, False, False], [False, True, False]])
    assert edge_replay.differences_from_lab(detected, lab_decisions=detected.T) == 0
    assert edge_replay.differences_from_lab(detected, lab_decisions=~detected.T) == 6


def test_choose_soundscape_prefers_the_runs_test_soundscape(dataset, tmp_path):
    only = next(iter(dataset.soundscapes().values()))
    (tmp_path / "metrics.json").write_text(json.dumps({"test_soundscapes": [only.soundscape_id]}), encoding="utf-8")
    assert edge_replay.choose_soundscape(dataset, run_dir=tmp_path) == only
    (tmp_path / "metrics.json").write_text(json.dumps({"test_soundscapes": [only.audio_id]}), encoding="utf-8")
    assert edge_replay.choose_soundscape(dataset, run_dir=tmp_path) == only, "older runs wrote bare audio ids"
    (tmp_path / "metrics.json").write_text(json.dumps({"test_soundscapes": [999]}), encoding="utf-8")
    assert edge_replay.choose_soundscape(dataset, run_dir=tmp_path) == only, "unknown ids fall back"
    with pytest.raises(UserError, match="no soundscape"):
        edge_replay.choose_soundscape(BirdCLEF2021(tmp_path), run_dir=tmp_path)
