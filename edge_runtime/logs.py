"""Structured logs on stderr: human text, or one JSON object per line for journald / log shippers.

With JSON logs, stderr must carry JSON only, but native libraries (TF Lite's "INFO: Created TensorFlow
Lite XNNPACK delegate", mpg123's warnings on a damaged MP3) write to file descriptor 2 directly:
`capture_native_stderr` puts a pipe there and turns each line that arrives into a JSON record of the
logger "native" (level from its "INFO:"/"WARNING:"/"ERROR:" prefix, else WARNING).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from typing import IO

NATIVE_LOGGER = "native"
_NATIVE_LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "WARN": logging.WARNING, "ERROR": logging.ERROR}
_DRAIN_AT_EXIT_S = 2.0


class JsonFormatter(logging.Formatter):
    """{"ts": ISO 8601 UTC, "level", "logger", "message"[, "exc"]} per line."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def _native_level(line: str) -> tuple[int, str]:
    prefix, sep, rest = line.partition(":")
    level = _NATIVE_LEVELS.get(prefix.strip().upper()) if sep else None
    return (level, rest.strip()) if level is not None else (logging.WARNING, line)


def capture_native_stderr() -> IO[str]:
    """Route file descriptor 2 through a pipe whose lines become log records of the 'native' logger.

    Returns a text stream on the original stderr, for the log handler. At exit, fd 2 is restored and
    what is still in the pipe is logged. For the command line only (it rewires this process's fd 2).
    """
    original = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    native = logging.getLogger(NATIVE_LOGGER)

    def pump() -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="backslashreplace") as lines:
            for line in lines:
                if line.strip():
                    level, message = _native_level(line.rstrip("\n"))
                    native.log(level, "%s", message)

    thread = threading.Thread(target=pump, name="native-stderr", daemon=True)
    thread.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last writers close: the pump reads to its end
        sys.stderr.close()
        sys.stderr = sys.__stderr__
        thread.join(_DRAIN_AT_EXIT_S)

    atexit.register(restore)
    return os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)


def configure_logging(*, log_format: str = "text", level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log record to `stream` (default stderr) in `log_format` ('text' or 'json'), replacing
    earlier handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
