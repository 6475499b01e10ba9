"""The reference receiver: a small HTTP server that stores detections in SQLite, each id once.

    python -m edge_runtime.receiver --host 127.0.0.1 --port 8750 --db receiver.sqlite3 [--token T | --token-file F]

Endpoints:
- `POST /detections` with JSON `{"detections": [detection, ...]}` (1..max_batch objects, each valid
  for `Detection.from_json_dict`) and, when a token is set, `Authorization: Bearer <token>`.
  Stores the batch in one committed transaction, ignoring ids it already has, then answers
  200 `{"stored": N, "duplicates": M}`. Errors: 400 (not JSON, wrong shape, an invalid detection:
  the message names its index and field), 401 (token), 404, 411 (no Content-Length), 413 (too large).
- `GET /detections[?limit=L&offset=O]` -> `{"count": N, "detections": [...]}` in arrival order;
  N is the total stored.
- `GET /health` -> `{"status": "ok", "count": N}`.

Fault injection for tests and demos: `--fail-first N` answers `--fail-status` (default 500) to the
first N POSTs without storing them; `--delay-s X` waits X seconds after storing a batch before
answering (a slow receiver: a sender that times out sends the batch again, and it is not stored twice).

Standard library only. It prints `receiver listening on http://HOST:PORT` on stdout once ready
(with `--port 0` the system picks a free port).
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import signal
import sqlite3
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edge_runtime.detection import Detection, DetectionError
from edge_runtime.sinks import RECEIVER_PATH, SinkError, load_token

log = logging.getLogger(__name__)

HEALTH_PATH = "/health"
_THREAD_POLL_S = 0.05  # how quickly stop() of an in-process receiver takes effect


@dataclass(frozen=True)
class ReceiverSettings:
    """How the reference receiver listens, stores and (for tests) misbehaves."""

    host: str = "127.0.0.1"
    """Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)."""
    port: int = 8750
    """TCP port; 0 lets the system pick a free one (printed on stdout)."""
    db: Path = Path("receiver.sqlite3")
    """SQLite file of the stored detections (created if missing)."""
    token: str | None = None
    """Bearer token the senders must present; None accepts any request."""
    max_batch: int = 1000
    """Most detections in one POST."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted, in bytes (413 beyond)."""
    tls_cert_file: Path | None = None
    """PEM certificate (chain) to serve HTTPS with; None serves plain HTTP."""
    tls_key_file: Path | None = None
    """PEM private key of tls_cert_file (None: the key is in the certificate file)."""
    fail_first: int = 0
    """Fault injection: answer fail_status to the first N POSTs without storing them."""
    fail_status: int = 500
    """Fault injection: the status for fail_first (e.g. 500, 503, 429, 400)."""
    delay_s: float = 0.0
    """Fault injection: seconds to wait after storing a batch before answering."""


class DetectionStore:
    """SQLite table of received detections, primary key = detection id (WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS detections ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, received_utc TEXT NOT NULL,"
            " device_id TEXT NOT NULL, ebird_code TEXT NOT NULL, start_utc TEXT NOT NULL, payload TEXT NOT NULL)"
        )

    def store(self, detections: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Insert validated detection objects, ignoring known ids; committed on return. -> (stored, duplicates)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rows = [
            (d["id"], now, d["device_id"], d["ebird_code"], d["start_utc"], json.dumps(d, ensure_ascii=False))
            for d in detections
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                stored = self._conn.executemany(
                    "INSERT OR IGNORE INTO detections (id, received_utc, device_id, ebird_code, start_utc, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                ).rowcount
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return stored, len(rows) - stored

    def count(self) -> int:
        """Detections stored."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM detections").fetchone()[0])

    def detections(self, *, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Stored detection objects in arrival order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT payload FROM detections ORDER BY seq LIMIT ? OFFSET ?", (-1 if limit is None else limit, offset)
            ).fetchall()
        return [json.loads(payload) for (payload,) in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def validate_batch(payload: Any, *, max_batch: int) -> list[dict[str, Any]]:
    """Check a parsed request body; returns the detection objects or raises ValueError naming the index and field."""
    if not isinstance(payload, dict) or not isinstance(payload.get("detections"), list):
        raise ValueError('expected a JSON object {"detections": [...]}')
    items = payload["detections"]
    if not items:
        raise ValueError("detections: empty list")
    if len(items) > max_batch:
        raise ValueError(f"detections: {len(items)} in one batch, at most {max_batch}; send smaller batches")
    for index, item in enumerate(items):
        try:
            Detection.from_json_dict(item)
        except DetectionError as exc:
            raise ValueError(f"detections[{index}]: {exc}") from None
    return items


class ReceiverServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the store, the settings and the fault-injection state."""

    daemon_threads = True

    def __init__(self, settings: ReceiverSettings, store: DetectionStore) -> None:
        self.settings = settings
        self.store = store
        self._posts = 0
        self._posts_lock = threading.Lock()
        super().__init__((settings.host, settings.port), _Handler)
        self.scheme = "http"
        if settings.tls_cert_file is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
            except (OSError, ssl.SSLError):
                self.server_close()
                raise
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def next_post_fails(self) -> bool:
        """True for the first fail_first POSTs (thread-safe)."""
        with self._posts_lock:
            self._posts += 1
            return self._posts <= self.settings.fail_first


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    server_version = "birdlab-receiver/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.info("%s %s", self.address_string(), format % args)  # the request line only, never the headers

    def _reply(self, status: int, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        token = self.server.settings.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {token}"
        return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))

    def _deny(self) -> None:
        self._reply(401, {"error": "missing or wrong bearer token"}, headers={"WWW-Authenticate": "Bearer"})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urllib.parse.urlsplit(self.path)
        if not self._authorised():
            return self._deny()
        store = self.server.store
        if url.path == HEALTH_PATH:
            return self._reply(200, {"status": "ok", "count": store.count()})
        if url.path != RECEIVER_PATH:
            return self._reply(404, {"error": f"no such path {url.path}; use {RECEIVER_PATH}"})
        query = urllib.parse.parse_qs(url.query)
        try:
            limit = int(query["limit"][0]) if "limit" in query else None
            offset = int(query.get("offset", ["0"])[0])
            if (limit is not None and limit < 0) or offset < 0:
                raise ValueError
        except ValueError:
            return self._reply(400, {"error": "limit and offset must be non-negative integers"})
        self._reply(200, {"count": store.count(), "detections": store.detections(limit=limit, offset=offset)})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        settings = self.server.settings
        try:
            length_text = self.headers.get("Content-Length")
            if length_text is None:
                raise _BadRequest(411, "Content-Length required")
            try:
                length = int(length_text)
            except ValueError:
                raise _BadRequest(400, f"bad Content-Length {length_text!r}") from None
            if length > settings.max_body_bytes:
                self.close_connection = True
                raise _BadRequest(413, f"body of {length} bytes, at most {settings.max_body_bytes}; send smaller batches")
            body = self.rfile.read(length)  # read before any answer, so the sender sees the answer, not a reset
            if urllib.parse.urlsplit(self.path).path != RECEIVER_PATH:
                raise _BadRequest(404, f"no such path {self.path}; POST to {RECEIVER_PATH}")
            if not self._authorised():
                return self._deny()
            if self.server.next_post_fails():
                return self._reply(settings.fail_status, {"error": f"injected failure (HTTP {settings.fail_status})"})
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _BadRequest(400, f"body is not JSON ({exc})") from None
            try:
                items = validate_batch(payload, max_batch=settings.max_batch)
            except ValueError as exc:
                raise _BadRequest(400, str(exc)) from None
            try:
                stored, duplicates = self.server.store.store(items)
            except sqlite3.Error as exc:
                log.error("cannot store a batch: %s", exc)
                raise _BadRequest(503, f"storage failed ({exc}); retry later") from None
        except _BadRequest as exc:
            return self._reply(exc.status, {"error": exc.message})
        log.info("stored %d, duplicates %d", stored, duplicates)
        if settings.delay_s > 0:
            time.sleep(settings.delay_s)
        self._reply(200, {"stored": stored, "duplicates": duplicates})


@dataclass
class RunningReceiver:
    """A receiver serving in a background thread of this process (for the demo and tests)."""

    server: ReceiverServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8750 (POST to url + '/detections')."""
        return self.server.url

    def stop(self) -> None:
        """Stop serving, close the socket and the database."""
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        self.server.store.close()

    def __enter__(self) -> RunningReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_receiver(settings: ReceiverSettings) -> RunningReceiver:
    """Start serving in a daemon thread; stop() it when done. Raises OSError when the port is taken."""
    store = DetectionStore(settings.db)
    try:
        server = ReceiverServer(settings, store)
    except BaseException:
        store.close()
        raise
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": _THREAD_POLL_S}, name="edge-receiver", daemon=True
    )
    thread.start()
    return RunningReceiver(server=server, thread=thread)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge_runtime.receiver", description=__doc__.splitlines()[0],
        epilog="Stops cleanly on SIGTERM or Ctrl-C.",
    )
    defaults = ReceiverSettings()
    parser.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=defaults.port, help="TCP port, 0 = any free port (default %(default)s)")
    parser.add_argument("--db", type=Path, default=defaults.db, help="SQLite file of stored detections (default %(default)s)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="bearer token senders must present (visible in `ps`; prefer --token-file)")
    auth.add_argument("--token-file", type=Path, help="file (mode 0600) holding the bearer token")
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate: serve HTTPS instead of HTTP")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert (if not inside it)")
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch, help="most detections per POST")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N",
                        help="fault injection: answer --fail-status to the first N POSTs, storing nothing")
    parser.add_argument("--fail-status", type=int, default=defaults.fail_status, metavar="CODE",
                        help="status for --fail-first (default %(default)s)")
    parser.add_argument("--delay-s", type=float, default=0.0, metavar="X",
                        help="fault injection: wait X seconds after storing a batch before answering")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        token = args.token or (load_token(token_env=None, token_file=args.token_file) if args.token_file else None)
    except SinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 100 <= args.fail_status <= 599 or args.fail_first < 0 or args.delay_s < 0 or args.max_batch < 1:
        print("error: --fail-status must be an HTTP status, --fail-first, --delay-s >= 0, --max-batch >= 1",
              file=sys.stderr)
        return 2
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return 2
    settings = ReceiverSettings(
        host=args.host, port=args.port, db=args.db, token=token, max_batch=args.max_batch,
        fail_first=args.fail_first, fail_status=args.fail_status, delay_s=args.delay_s,
        tls_cert_file=args.tls_cert, tls_key_file=args.tls_key,
    )
    try:
        store = DetectionStore(settings.db)
    except (OSError, sqlite3.Error) as exc:
        print(f"error: {settings.db}: cannot open the database ({exc})", file=sys.stderr)
        return 2
    try:
        server = ReceiverServer(settings, store)
    except ssl.SSLError as exc:
        store.close()
        print(f"error: --tls-cert/--tls-key: cannot load them ({exc})", file=sys.stderr)
        return 2
    except OSError as exc:
        store.close()
        print(f"error: cannot listen on {settings.host}:{settings.port} ({exc.strerror}); choose another --port",
              file=sys.stderr)
        return 2

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    print(f"receiver listening on {server.url} (db {settings.db}, {store.count()} stored)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
        log.info("receiver stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
