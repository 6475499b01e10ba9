"""The edge end of the demo: reference receiver + `python -m edge_runtime run` as processes, then lab-vs-edge decision agreement.

Starts the receiver on a free port of 127.0.0.1, runs the edge runtime over audio files with a
bundle (everything through its command line, as on a device), reads back what the receiver
stored, and compares it with the lab's decisions for the same windows and threshold
(`birdlab.agreement.lab_vs_edge`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdlab.agreement.lab_vs_edge import (
    LabEdgeAgreement,
    compare_decisions,
    edge_decisions,
    lab_decisions,
    lab_scores,
    threshold_margin,
)
from birdlab.errors import UserError
from birdlab.training.run_dir import RunDir
from edge_runtime.bundle import open_bundle
from edge_runtime.cli import run_argv
from edge_runtime.decisions import DetectionPolicy
from edge_runtime.settings import EdgeSettings

RECEIVER_START_TIMEOUT_S = 30.0
EDGE_RUN_TIMEOUT_S = 600.0
LISTENING_PREFIX = "receiver listening on "


class EdgeDemoError(UserError):
    """The receiver or the edge runtime did not do its job; the message carries their own words."""


@dataclass(frozen=True)
class EdgeDemoResult:
    agreement: LabEdgeAgreement
    status: dict[str, Any]
    """The runtime's final status file."""
    receiver_count: int
    """Detections stored by the receiver."""
    margin: float
    """Smallest distance of a lab probability to its threshold (how close a decision came to flipping)."""
    wall_seconds: float
    """Wall time of the edge runtime process."""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}


def _start_receiver(db: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_runtime.receiver", "--host", "127.0.0.1", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())
    assert process.stdout is not None and process.stderr is not None  # both are PIPEs
    deadline = time.monotonic() + RECEIVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(LISTENING_PREFIX):
            return process, line[len(LISTENING_PREFIX):].split()[0]
        if not line and process.poll() is not None:
            break
    _stop(process)
    raise EdgeDemoError(f"the reference receiver did not start: {process.stderr.read().strip()[-500:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def received_detections(url: str) -> list[dict[str, Any]]:
    """Everything the receiver at `url` stored (GET /detections, page by page: it answers at most a page)."""
    detections: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        with urllib.request.urlopen(f"{url}/detections?offset={offset}", timeout=30) as response:
            page = json.load(response)
        detections += page["detections"]
        offset = page.get("next_offset")
    return detections


def run_edge_demo(*, bundle_dir: Path, run_dir: Path, audio_paths: Sequence[Path], work_dir: Path) -> EdgeDemoResult:
    """Receiver + edge runtime over `audio_paths` with the bundle; lab decisions from run_dir/model.keras."""
    if not audio_paths:
        raise EdgeDemoError("no audio files for the edge demo")
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    receiver, url = _start_receiver(work_dir / "receiver.sqlite")
    try:
        command = run_argv(bundle=bundle_dir, sources=[f"file:{Path(p).absolute()}" for p in audio_paths], sink=url,
                           outbox=work_dir / "outbox.sqlite", status=work_dir / "status.json", device_id="demo-pi")
        start = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True, env=_clean_env(), timeout=EDGE_RUN_TIMEOUT_S)
        wall = time.monotonic() - start
        (work_dir / "edge_runtime.log").write_text(result.stderr, encoding="utf-8")
        if result.returncode != 0:
            raise EdgeDemoError(f"python -m edge_runtime run exited with {result.returncode}: "
                                f"{result.stderr.strip()[-800:]}")
        detections = received_detections(url)
    finally:
        _stop(receiver)
    import keras

    bundle = open_bundle(bundle_dir)
    policy = DetectionPolicy.from_settings(EdgeSettings(), bundle=bundle)
    model = keras.models.load_model(RunDir(Path(run_dir)).model_path)
    scores = [lab_scores(p, model=model, bundle=bundle) for p in audio_paths]
    agreement = compare_decisions(expected=lab_decisions(scores, bundle=bundle, policy=policy),
                               received=edge_decisions(detections))
    status = json.loads((work_dir / "status.json").read_text(encoding="utf-8"))
    return EdgeDemoResult(agreement=agreement, status=status, receiver_count=len(detections),
                          margin=threshold_margin(scores, bundle=bundle, policy=policy), wall_seconds=wall)
