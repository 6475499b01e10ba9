"""`python -m edge_runtime run` when things go wrong around it: files it must not read, an outbox that vanishes,
inputs that would hang it or pass silently. Real bundle (tone detector), real wasm, real SQLite, real files."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pytest
from edge_bundle_factory import session_bundle

from edge_runtime.runner import EXIT_OUTBOX_FAILED, run
from edge_runtime.settings import EdgeSettings

RUN_WAIT_S = 60.0
POLL_S = 0.1


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_bundle(tmp_path_factory)


@pytest.fixture
def settings(tmp_path: Path, bundle_dir: Path) -> EdgeSettings:
    """The production defaults, pointed at temporary files and a jsonl sink."""
    return dataclasses.replace(EdgeSettings(), bundle=str(bundle_dir), sink=f"jsonl:{tmp_path / 'out.jsonl'}",
                               outbox=tmp_path / "outbox.sqlite", status=tmp_path / "status.json",
                               device_id="pi-test", shutdown_flush_seconds=1.0, dir_poll_seconds=0.1)


class RunThread:
    """run(settings) in a thread, with its exit status."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.stop = threading.Event()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._target, args=(settings,), daemon=True)
        self.thread.start()

    def _target(self, settings: EdgeSettings) -> None:
        self.code = run(settings, stop=self.stop)

    def wait(self, timeout_s: float = RUN_WAIT_S) -> int | None:
        self.thread.join(timeout_s)
        return self.code


def wait_for(condition, timeout_s: float = RUN_WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def test_an_outbox_deleted_while_running_ends_the_run_with_an_error(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    watched = tmp_path / "incoming"
    watched.mkdir()
    settings = dataclasses.replace(settings, sources=(f"dir:{watched}",))
    running = RunThread(settings)
    try:
        assert wait_for(lambda: settings.outbox.exists() and "running" in caplog.text)
        for path in (settings.outbox, settings.outbox.with_name(settings.outbox.name + "-wal"),
                     settings.outbox.with_name(settings.outbox.name + "-shm")):
            path.unlink(missing_ok=True)
        code = running.wait(timeout_s=30)
    finally:
        running.stop.set()
        running.wait()
    assert code == EXIT_OUTBOX_FAILED
    assert "deleted or replaced" in caplog.text
    assert "still pending" not in caplog.text
    assert "Traceback" not in caplog.text
