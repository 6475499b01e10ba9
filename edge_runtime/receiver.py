"""The reference receiver: a small HTTP server that stores detections in SQLite, each id once.

    python -m edge_runtime.receiver --host 127.0.0.1 --port 8750 --db receiver.sqlite3 [--token T | --token-file F]

Endpoints:
- `POST /detections` with JSON `{"detections": [detection, ...]}` (1..max_batch objects, each valid
  for `Detection.from_json_dict`) and, when a token is set, `Authorization: Bearer <token>`.
  Stores the batch in one committed transaction, ignoring ids it already has, then answers
  200 `{"stored": N, "duplicates": M}`. Only the fields of a detection are stored (unknown keys are
  dropped). Errors, all JSON `{"error": ...}`: 400 (a bad Content-Length, not JSON, nested deeper than
  MAX_JSON_DEPTH, a number too long or not finite, wrong shape, an invalid detection: the message names
  its index and field), 401 (token), 404, 405, 408 (the request did not arrive within request_timeout_s),
  411 (no Content-Length), 413 (too large), 503 (storage failed, the database file is gone, or
  max_connections are busy). The path, the token and the Content-Length are checked before any of the
  body is read.
- `GET /detections[?limit=L&offset=O]` -> `{"count": N, "offset": O, "limit": L, "next_offset": O+L or null,
  "detections": [...]}` in arrival order; N is the total stored; L is at most page_size (the default).
- `GET /health` -> `{"status": "ok", "count": N}` (503 when the database file is gone).

Limits: each connection carries one request, which must arrive whole (request line, headers and body)
within request_timeout_s (a slowloris client is cut off, answered 408); at most max_connections are
served at once, others are answered 503 with Retry-After at once. Request lines are logged with
control characters escaped.

Fault injection for tests and demos: `--fail-first N` answers `--fail-status` (default 500) to the
first N POSTs without storing them; `--delay-s X` waits X seconds after storing a batch before
answering (a slow receiver: a sender that times out sends the batch again, and it is not stored twice).

Standard library only. It prints `receiver listening on http://HOST:PORT` on stdout once ready
(with `--port 0` the system picks a free port).
"""

from __future__ import annotations

import argparse
import hmac
import io
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
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.receiver_limits import DeadlineReader, RequestRefused, content_length, parse_json_body, printable
from edge_runtime.sinks import RECEIVER_PATH, SinkError, load_token

log = logging.getLogger(__name__)

HEALTH_PATH = "/health"
_MAX_REQUEST_LINE_BYTES = 65536
_BUSY_BODY = b'{"error": "too many connections; retry later"}'
_BUSY_ANSWER = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))
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
    request_timeout_s: float = 15.0
    """A request (line, headers and body) must arrive whole within this many seconds of the connection (408)."""
    max_connections: int = 32
    """Connections served at once; beyond it a new connection is answered 503 with Retry-After at once."""
    page_size: int = 1000
    """Detections per GET /detections page: the default and the largest `limit`."""
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


class StoreGoneError(EdgeRuntimeError, sqlite3.OperationalError):
    """The database file was deleted or replaced while the receiver runs: nothing written now would be kept."""


class DetectionStore:
    """SQLite table of received detections, primary key = detection id (WAL, synchronous=FULL).

    Every call first checks that the file at `path` is still the one opened (StoreGoneError otherwise):
    SQLite would go on writing into a deleted file and report success.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._identity = self._file_identity()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS detections ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, received_utc TEXT NOT NULL,"
            " device_id TEXT NOT NULL, ebird_code TEXT NOT NULL, start_utc TEXT NOT NULL, payload TEXT NOT NULL)"
        )

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _check_present(self) -> None:
        if self._file_identity() != self._identity:
            raise StoreGoneError(f"{self.path}: the database file was deleted or replaced while running; "
                                 "restart the receiver (it creates a new one)")

    def store(self, detections: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Insert validated detection objects, ignoring known ids; committed on return. -> (stored, duplicates)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rows = [
            (d["id"], now, d["device_id"], d["ebird_code"], d["start_utc"], json.dumps(d, ensure_ascii=False))
            for d in detections
        ]
        with self._lock:
            self._check_present()
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
            self._check_present()  # deleted during the transaction: the client must not see a 200
        return stored, len(rows) - stored

    def count(self) -> int:
        """Detections stored."""
        with self._lock:
            self._check_present()
            return int(self._conn.execute("SELECT COUNT(*) FROM detections").fetchone()[0])

    def detections(self, *, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Stored detection objects in arrival order."""
        with self._lock:
            self._check_present()
            rows = self._conn.execute(
                "SELECT payload FROM detections ORDER BY seq LIMIT ? OFFSET ?", (-1 if limit is None else limit, offset)
            ).fetchall()
        return [json.loads(payload) for (payload,) in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def validate_batch(payload: Any, *, max_batch: int) -> list[dict[str, Any]]:
    """Check a parsed request body; returns the detection objects (their known fields only, as
    Detection.to_json_dict gives them) or raises ValueError naming the index and field."""
    if not isinstance(payload, dict) or not isinstance(payload.get("detections"), list):
        raise ValueError('expected a JSON object {"detections": [...]}')
    items = payload["detections"]
    if not items:
        raise ValueError("detections: empty list")
    if len(items) > max_batch:
        raise ValueError(f"detections: {len(items)} in one batch, at most {max_batch}; send smaller batches")
    valid = []
    for index, item in enumerate(items):
        try:
            valid.append(Detection.from_json_dict(item).to_json_dict())
        except DetectionError as exc:
            raise ValueError(f"detections[{index}]: {exc}") from None
    return valid


class ReceiverServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the store, the settings and the fault-injection state.

    At most settings.max_connections connections are served at once (a thread each); the TLS
    handshake happens in that thread, under the request deadline, never in the accepting one.
    """

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, settings: ReceiverSettings, store: DetectionStore) -> None:
        self.settings = settings
        self.store = store
        self._posts = 0
        self._posts_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        super().__init__((settings.host, settings.port), _Handler)
        self.scheme = "http"
        if settings.tls_cert_file is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
            except (OSError, ssl.SSLError):
                self.server_close()
                raise
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
            self.scheme = "https"

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # a TCP server's address is (host, port, ...), never an AF_UNIX path
        return f"{self.scheme}://{host}:{port}"

    def next_post_fails(self) -> bool:
        """True for the first fail_first POSTs (thread-safe)."""
        with self._posts_lock:
            self._posts += 1
            return self._posts <= self.settings.fail_first

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a new thread when a slot is free; else answer 503 at once and close."""
        if not self._slots.acquire(blocking=False):
            log.warning("%s: %d connections busy; answered 503", client_address[0], self.settings.max_connections)
            if self.scheme == "http":
                try:
                    request.settimeout(0.5)
                    request.sendall(_BUSY_ANSWER)
                except OSError:
                    pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a request (TLS handshake, reset): one log line, no traceback."""
        exc = sys.exc_info()[1]
        log.info("%s: connection failed (%s)", client_address[0], printable(f"{type(exc).__name__}: {exc}"))

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    server_version = "birdlab-receiver/1"
    default_request_version = "HTTP/1.0"  # error answers carry a status line even for a garbled request

    def setup(self) -> None:
        settings = self.server.settings
        self._deadline = time.monotonic() + settings.request_timeout_s
        self.connection = self.request
        self.connection.settimeout(settings.request_timeout_s)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()  # in this thread, bounded by the timeout (ssl errors end the thread)
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, deadline=self._deadline))
        self.wfile = self.connection.makefile("wb", buffering=0)

    def handle(self) -> None:
        self.close_connection = True  # one request per connection: its deadline is the connection's
        try:
            self.handle_one_request()
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("%s: connection ended (%s)", self.client_address[0], printable(str(exc)))

    def handle_one_request(self) -> None:
        self.command = self.request_version = ""
        self.requestline = ""
        try:
            self.raw_requestline = self.rfile.readline(_MAX_REQUEST_LINE_BYTES + 1)
            if len(self.raw_requestline) > _MAX_REQUEST_LINE_BYTES:
                return self.send_error(414, "request line too long")
            if not self.raw_requestline:
                return None
            if not self.parse_request():
                return None
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                return self.send_error(405, f"method {self.command} not allowed; use GET or POST")
            method()
            self.wfile.flush()
        except TimeoutError:
            log.info("%s: request not complete within %g s; answered 408", self.client_address[0],
                     self.server.settings.request_timeout_s)
            try:
                self._reply(408, {"error": f"the request did not arrive within "
                                           f"{self.server.settings.request_timeout_s:g} s"})
            except OSError:
                pass
        return None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # the request line only, never the headers; a client's bytes are escaped
        log.info("%s %s", self.address_string(), printable(format % args))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error answer is JSON and closes the connection (the base class sends HTML)."""
        self.log_error("code %d, message %s", code, message)
        self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _reply(self, status: int, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.connection.settimeout(self.server.settings.request_timeout_s)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
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

    def _answer(self, work: Any) -> None:
        """Run work() -> (status, body); RequestRefused and storage failures become JSON errors, never a traceback."""
        try:
            status, body = work()
        except RequestRefused as exc:
            status, body = exc.status, {"error": exc.message}
        except StoreGoneError as exc:
            log.error("%s", exc)
            status, body = 503, {"error": str(exc)}
        except sqlite3.Error as exc:
            log.error("storage failed: %s", exc)
            status, body = 503, {"error": f"storage failed ({exc}); retry later"}
        except TimeoutError:
            raise
        except Exception as exc:  # noqa: BLE001 - a receiver bug still gets an answer, and a log line
            log.exception("unexpected error answering %s", printable(self.requestline))
            status, body = 500, {"error": f"internal error ({type(exc).__name__})"}
        if status is not None:
            self._reply(status, body, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(self._get)

    def _get(self) -> tuple[int, dict[str, Any]]:
        url = urllib.parse.urlsplit(self.path)
        if not self._authorised():
            raise RequestRefused(401, "missing or wrong bearer token")
        store = self.server.store
        if url.path == HEALTH_PATH:
            return 200, {"status": "ok", "count": store.count()}
        if url.path != RECEIVER_PATH:
            raise RequestRefused(404, f"no such path {printable(url.path)[:200]}; use {RECEIVER_PATH}")
        query = urllib.parse.parse_qs(url.query)
        page_size = self.server.settings.page_size
        try:
            limit = min(int(query["limit"][0]), page_size) if "limit" in query else page_size
            offset = int(query.get("offset", ["0"])[0])
            if limit < 0 or offset < 0:
                raise ValueError
        except ValueError:
            raise RequestRefused(400, "limit and offset must be non-negative integers") from None
        count = store.count()
        detections = store.detections(limit=limit, offset=offset)
        next_offset = offset + len(detections) if offset + len(detections) < count else None
        return 200, {"count": count, "offset": offset, "limit": limit, "next_offset": next_offset,
                     "detections": detections}

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._answer(self._post)

    def _post(self) -> tuple[int, dict[str, Any]]:
        settings = self.server.settings
        # everything that needs no body is checked before reading any of it
        length = content_length(self.headers.get("Content-Length"), max_bytes=settings.max_body_bytes)
        if urllib.parse.urlsplit(self.path).path != RECEIVER_PATH:
            raise RequestRefused(404, f"no such path {printable(self.path)[:200]}; POST to {RECEIVER_PATH}")
        if not self._authorised():
            raise RequestRefused(401, "missing or wrong bearer token")
        body = self.rfile.read(length)
        if len(body) < length:
            raise RequestRefused(400, f"body ended after {len(body)} of {length} bytes")
        if self.server.next_post_fails():
            return settings.fail_status, {"error": f"injected failure (HTTP {settings.fail_status})"}
        payload = parse_json_body(body)
        try:
            items = validate_batch(payload, max_batch=settings.max_batch)
        except ValueError as exc:
            raise RequestRefused(400, str(exc)) from None
        stored, duplicates = self.server.store.store(items)
        log.info("stored %d, duplicates %d", stored, duplicates)
        if settings.delay_s > 0:
            time.sleep(settings.delay_s)
        return 200, {"stored": stored, "duplicates": duplicates}


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
    parser.add_argument("--request-timeout-s", type=float, default=defaults.request_timeout_s, metavar="S",
                        help="a request must arrive whole within S seconds (default %(default)s)")
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections, metavar="N",
                        help="connections served at once; more are answered 503 (default %(default)s)")
    parser.add_argument("--page-size", type=int, default=defaults.page_size, metavar="N",
                        help="detections per GET /detections page, default and most (default %(default)s)")
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
    if not (args.request_timeout_s > 0 and args.max_connections >= 1 and args.page_size >= 1):
        print("error: --request-timeout-s must be > 0, --max-connections and --page-size >= 1", file=sys.stderr)
        return 2
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            print(f"error: {flag} {path}: no such file", file=sys.stderr)
            return 2
    settings = ReceiverSettings(
        host=args.host, port=args.port, db=args.db, token=token, max_batch=args.max_batch,
        fail_first=args.fail_first, fail_status=args.fail_status, delay_s=args.delay_s,
        tls_cert_file=args.tls_cert, tls_key_file=args.tls_key, request_timeout_s=args.request_timeout_s,
        max_connections=args.max_connections, page_size=args.page_size,
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
