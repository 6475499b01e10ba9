"""Replay a soundscape through the edge runtime, as on the device, into the reference receiver.

`python -m edge_runtime run` runs as a subprocess (the device's code path: bundle check, WASM
frontend, TFLite, SQLite outbox, HTTP delivery) with the soundscape as a `file:` source and the
reference receiver (`edge_runtime.receiver`, in this process, on 127.0.0.1) as its sink. The
detections the receiver stored are then laid over the soundscape's 5-s label windows.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdlab.data.birdclef2021 import WINDOW_SECONDS, BirdCLEF2021, Soundscape
from birdlab.data.summary import LabelTimeline
from birdlab.errors import UserError
from birdlab.metrics import row_wise_micro_f1
from birdlab.training.run_dir import RunDir
from edge_runtime.cli import run_argv

if TYPE_CHECKING:
    import pandas as pd

REPLAY_TIMEOUT_S = 300.0
"""Longest a replay subprocess may run before it is stopped."""
DEVICE_ID = "notebook-replay"
DETECTION_COLUMNS = ("offset_start_s", "offset_end_s", "ebird_code", "common_name", "confidence", "start_utc", "id")
"""Columns of detections_frame."""
ENV_PREFIX = "EDGE_RUNTIME_"
"""Settings from the environment are removed for the replay: only the flags below apply."""


class ReplayError(UserError):
    """The edge runtime did not finish the replay; the message holds its exit status and last log lines."""


@dataclass(frozen=True)
class ReplayResult:
    """What the receiver got from one replay, and how the device run ended."""

    soundscape: Path
    detections: tuple[dict[str, Any], ...]
    """Detection objects as the receiver stored them, in arrival order."""
    status: dict[str, Any]
    """The runtime's final status file (files_done, windows_processed, realtime_factor, ...)."""
    exit_code: int
    wall_seconds: float
    log_tail: str

    def describe(self) -> str:
        s = self.status
        return (f"{self.soundscape.name}: exit {self.exit_code}, {s.get('windows_processed')} window(s), "
                f"{s.get('detections_total')} detection(s) committed, {len(self.detections)} received, "
                f"outbox depth {s.get('outbox_depth')}, realtime factor {s.get('realtime_factor', 0):.0f}, "
                f"{self.wall_seconds:.1f} s wall (process start included)")


def replay_soundscape(bundle_dir: str | Path, soundscape: str | Path, *, work_dir: str | Path,
                      top_n: int = 0, timeout_s: float = REPLAY_TIMEOUT_S) -> ReplayResult:
    """Run the edge runtime on `soundscape` with the bundle's threshold; collect what the receiver stored.

    work_dir receives receiver.sqlite3, outbox.sqlite, status.json and runtime.log (replaced each call).
    top_n: at most this many species per window (0 = every species over the threshold).
    """
    from edge_runtime.receiver import DetectionStore, ReceiverSettings, start_receiver

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    for name in ("receiver.sqlite3", "outbox.sqlite", "outbox.sqlite.state", "status.json", "runtime.log"):
        for path in work.glob(f"{name}*"):
            path.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    start = time.perf_counter()
    with start_receiver(ReceiverSettings(port=0, db=work / "receiver.sqlite3")) as receiver:
        command = run_argv(bundle=bundle_dir, sources=[f"file:{Path(soundscape).resolve()}"],
                           sink=f"{receiver.url}/detections", outbox=work / "outbox.sqlite",
                           status=work / "status.json", device_id=DEVICE_ID, top_n=top_n, log_format="text")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise ReplayError(f"edge runtime on {soundscape} ran longer than {timeout_s:.0f} s; stopped") from None
    wall = time.perf_counter() - start
    (work / "runtime.log").write_text(done.stderr, encoding="utf-8")
    tail = "\n".join(done.stderr.strip().splitlines()[-5:])
    if done.returncode != 0:
        raise ReplayError(f"edge runtime on {soundscape} exited with {done.returncode}:\n{tail}")
    store = DetectionStore(work / "receiver.sqlite3")
    try:
        detections = tuple(store.detections())
    finally:
        store.close()
    status = json.loads((work / "status.json").read_text(encoding="utf-8"))
    return ReplayResult(soundscape=Path(soundscape), detections=detections, status=status,
                        exit_code=done.returncode, wall_seconds=wall, log_tail=tail)


def detection_matrix(detections: Sequence[dict[str, Any]], *, timeline: LabelTimeline) -> np.ndarray:
    """bool (len(timeline.codes), n_windows): a species was detected in a window starting in that 5-s label window.

    A detection belongs to the label window holding its offset_start_s; species outside timeline.codes are ignored.
    """
    index = {code: i for i, code in enumerate(timeline.codes)}
    starts = timeline.window_end_s - WINDOW_SECONDS
    out = np.zeros(timeline.presence.shape, dtype=bool)
    for d in detections:
        species = index.get(d["ebird_code"])
        window = np.flatnonzero((starts <= d["offset_start_s"]) & (d["offset_start_s"] < timeline.window_end_s))
        if species is not None and window.size:
            out[species, window[0]] = True
    return out


@dataclass(frozen=True)
class ReplayScore:
    """The edge detections against the ground truth of one soundscape."""

    row_wise_micro_f1: float
    """BirdCLEF 2021's metric over the soundscape's rows (an empty row = nocall)."""
    hits: int
    misses: int
    false_alarms: int
    n_windows: int

    def describe(self) -> str:
        return (f"row-wise micro F1 {self.row_wise_micro_f1:.3f} over {self.n_windows} windows: "
                f"{self.hits} hit(s), {self.misses} miss(es), {self.false_alarms} false alarm(s)")


def score_replay(timeline: LabelTimeline, detected: np.ndarray) -> ReplayScore:
    """Score detected (bool, shape of timeline.presence) against timeline.presence."""
    detected = np.asarray(detected, dtype=bool)
    if detected.shape != timeline.presence.shape:
        raise ValueError(f"detected shape {detected.shape} != labels shape {timeline.presence.shape}")
    truth_rows = [[timeline.codes[i] for i in np.flatnonzero(col)] for col in timeline.presence.T]
    predicted_rows = [[timeline.codes[i] for i in np.flatnonzero(col)] for col in detected.T]
    return ReplayScore(
        row_wise_micro_f1=row_wise_micro_f1(truth_rows, predicted_rows),
        hits=int(np.sum(detected & timeline.presence)),
        misses=int(np.sum(~detected & timeline.presence)),
        false_alarms=int(np.sum(detected & ~timeline.presence)),
        n_windows=int(timeline.presence.shape[1]),
    )


def differences_from_lab(detected: np.ndarray, *, lab_decisions: np.ndarray) -> int:
    """Cells where the edge detections differ from the lab's decisions on the same windows.

    detected: bool (n_species, n_windows) from detection_matrix; lab_decisions: bool (n_windows, n_species)
    as birdlab.agreement.frontends.DecisionAgreement gives them (same species order: the bundle's labels).
    """
    lab = np.asarray(lab_decisions, dtype=bool).T
    if lab.shape != np.shape(detected):
        raise ValueError(f"lab decisions cover {lab.shape} (species, windows), the edge run {np.shape(detected)}")
    return int(np.sum(lab != np.asarray(detected, dtype=bool)))


def choose_soundscape(dataset: BirdCLEF2021, *, run_dir: str | Path) -> Soundscape:
    """The first of the run's test soundscapes (split.json: never trained or tuned on; soundscape ids, or audio ids
    in older runs), else the dataset's first soundscape; UserError when the dataset has none."""
    soundscapes = dataset.soundscapes()
    if not soundscapes:
        raise UserError(f"{dataset.root}: no soundscape in train_soundscapes/ to replay")
    try:
        split = RunDir(Path(run_dir)).read_split().with_soundscape_ids(soundscapes)
        tested = [a for a in split.test_soundscapes if a in soundscapes]
    except UserError:  # no readable split: any soundscape will do
        tested = []
    return soundscapes[tested[0] if tested else min(soundscapes)]



def detections_frame(detections: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The received detections as a table (DETECTION_COLUMNS), in time order then highest confidence first."""
    import pandas as pd

    frame = pd.DataFrame(list(detections), columns=list(DETECTION_COLUMNS))
    return frame.sort_values(["offset_start_s", "confidence"], ascending=[True, False], kind="stable").reset_index(
        drop=True)
