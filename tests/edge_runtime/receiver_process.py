"""The reference receiver as a real subprocess on 127.0.0.1, for the delivery and reliability tests."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

STARTUP_TIMEOUT_S = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (for a receiver that must come back on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_env() -> dict[str, str]:
    """Environment for child Pythons: the repository importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ReceiverProcess:
    """`python -m edge_runtime.receiver` in a subprocess; start() waits until it listens."""

    def __init__(self, db: Path, *, port: int = 0, args: tuple[str, ...] = (), log_path: Path | None = None) -> None:
        self.db = Path(db)
        self.port = port
        self.args = args
        self.log_path = log_path or self.db.with_suffix(".log")
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> ReceiverProcess:
        command = [sys.executable, "-m", "edge_runtime.receiver", "--host", "127.0.0.1", "--port", str(self.port),
                   "--db", str(self.db), *self.args]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log_file, env=python_env(),
                                        cwd=REPO_ROOT, text=True)
        log_file.close()
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"receiver did not start: {line!r}; see {self.log_path}:\n{self.log_path.read_text()}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> int | None:
        """SIGTERM, then wait; returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
        self.process.stdout.close()
        self.process = None
        return code

    def detections(self, *, token: str | None = None) -> dict:
        """GET /detections -> {"count": N, "detections": [...]}."""
        request = urllib.request.Request(self.url + "/detections")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def __enter__(self) -> ReceiverProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
