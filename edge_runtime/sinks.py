"""Sinks: where a batch of detections goes, and how each outcome of sending it is classified.

- `http://...` / `https://...` (`HttpSink`): POST `{"detections": [...]}` as JSON with `Authorization:
  Bearer <token>`, TLS verification on (system CAs, or `ca_file` for a private CA), redirects not
  followed. A URL with no path posts to `/detections` (the reference receiver's endpoint). One request,
  connection to last byte, takes at most `timeout_s` (or the `timeout_s` given to `send`, when shorter):
  a watchdog cuts the connection of a receiver that trickles its answer.
- `jsonl:PATH` (`JsonlSink`): append one JSON object per line, fsynced.
- `stdout` (`StdoutSink`): one JSON object per line on standard output.

`Sink.send` returns a `SendReceipt` when the batch is acknowledged: for HTTP, a 2xx whose body is the
receiver protocol's answer `{"stored": n, "duplicates": m}` with n + m = the batch size (any other 2xx,
e.g. a captive portal's HTML page or another service's JSON, is not an acknowledgement); it raises
`TransientSendError` for what may succeed later (those 2xx, 408, 429, 5xx, 3xx, timeouts, refused
connections, DNS and TLS failures; a `Retry-After` header is passed on), and `RejectedBatchError` for
any other 4xx. The bearer token
comes from `load_token` (an environment variable or a file of mode 0600) and never appears in a
log line, a repr or an error reason.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import stat
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Protocol

from edge_runtime.detection import Detection
from edge_runtime.errors import EdgeRuntimeError

log = logging.getLogger(__name__)

DEFAULT_TOKEN_ENV = "EDGE_RUNTIME_TOKEN"
DEFAULT_TIMEOUT_S = 10.0
RECEIVER_PATH = "/detections"
RETRYABLE_4XX = (408, 429)
_MAX_RESPONSE_BYTES = 64 * 1024
_REASON_BODY_CHARS = 300
_USER_AGENT = "birdlab-edge-runtime"


class SinkError(EdgeRuntimeError):
    """A sink or token setting is unusable (bad URL, unsafe token file); the message says what to do."""


class TransientSendError(EdgeRuntimeError):
    """The batch was not delivered but may be later (network, 5xx, 408, 429): keep it and retry."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class RejectedBatchError(EdgeRuntimeError):
    """The sink refused the batch for good (4xx other than 408/429): dead-letter it."""

    def __init__(self, reason: str, *, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# -- the token -----------------------------------------------------------------------------------


def load_token(
    *, token_env: str | None = DEFAULT_TOKEN_ENV, token_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The bearer token from token_file (if given) or else the environment variable token_env; None if neither.

    The file must be a regular file not readable or writable by group or others (mode 0600 or 0400);
    otherwise SinkError says how to fix it. Surrounding whitespace is stripped. The token is never logged.
    """
    if token_file is not None:
        path = Path(token_file)
        try:
            info = path.stat()
        except OSError as exc:
            raise SinkError(f"token file {path}: cannot read it ({exc.strerror}); check --token-file") from None
        if not stat.S_ISREG(info.st_mode):
            raise SinkError(f"token file {path}: not a regular file")
        if info.st_mode & 0o077:
            raise SinkError(
                f"token file {path}: readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {path}`"
            )
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SinkError(f"token file {path}: cannot read it ({exc})") from None
        if not token:
            raise SinkError(f"token file {path}: empty; write the receiver's token into it")
        _check_token_chars(token, origin=f"token file {path}")
        return token
    if token_env:
        env = os.environ if environ is None else environ
        token = env.get(token_env, "").strip()
        if token:
            _check_token_chars(token, origin=f"${token_env}")
            return token
    return None


def _check_token_chars(token: str, *, origin: str) -> None:
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise SinkError(f"{origin}: the token holds spaces or non-ASCII characters; a bearer token cannot")


# -- sinks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendReceipt:
    """What a sink reported for an accepted batch (None where it does not say)."""

    stored: int | None = None
    duplicates: int | None = None


class Sink(Protocol):
    """Where batches go. `send` returns on acknowledgement, or raises TransientSendError / RejectedBatchError.

    timeout_s, when given, bounds this send (e.g. the time left before a flush's deadline).
    """

    name: str
    """Safe to log: no token, no password."""

    def send(self, detections: Sequence[Detection], *, timeout_s: float | None = None) -> SendReceipt: ...

    def close(self) -> None: ...


def batch_json(detections: Sequence[Detection]) -> bytes:
    """The request body for a batch: UTF-8 JSON {"detections": [detection JSON objects]}."""
    return json.dumps({"detections": [d.to_json_dict() for d in detections]}, ensure_ascii=False).encode("utf-8")


CREDENTIALS_REFUSED = ("the URL holds a user name or password, which would be logged and sent to name servers; "
                       "remove it and give the bearer token by --token-file or $EDGE_RUNTIME_TOKEN")


def url_has_credentials(url: str) -> bool:
    """True when an http(s) URL carries user:password@ (or user@) before its host."""
    if not url.startswith(("http://", "https://")):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "@" in url.split("/", 3)[2] if url.count("/") >= 2 else False
    return parts.username is not None or parts.password is not None or "@" in parts.netloc


def redact_url(url: str) -> str:
    """The URL without user:password@ (for logs)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected POST into a GET whose 200 would look like an acknowledgement: never follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Watchdog:
    """Shuts down the sockets of one request once its time is up, whatever stage it is in."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(budget_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _watched(connection_class: type, sink: HttpSink) -> Callable[..., http.client.HTTPConnection]:
    """A factory of connection_class whose sockets are handed to the sink's current watchdog."""

    def make(*args: object, **kwargs: object) -> http.client.HTTPConnection:
        conn = connection_class(*args, **kwargs)
        create = conn._create_connection

        def create_watched(*a: object, **kw: object) -> socket.socket:
            sock = create(*a, **kw)
            if sink._watchdog is not None:
                sink._watchdog.track(sock)
            return sock

        conn._create_connection = create_watched
        return conn

    return make


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, sink: HttpSink) -> None:
        super().__init__()
        self._sink = sink

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self._sink), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, sink: HttpSink, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._sink = sink
        self._ssl_context = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPSConnection, self._sink), req, context=self._ssl_context)


class HttpSink:
    """POST batches as JSON to an HTTP(S) receiver (see the module docstring for the outcome rules)."""

    def __init__(
        self, url: str, *, token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
        ca_file: Path | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SinkError(f"sink {redact_url(url)!r}: expected http(s)://HOST[:PORT][/PATH]")
        if parts.path in ("", "/"):
            parts = parts._replace(path=RECEIVER_PATH)
        self.url = urllib.parse.urlunsplit(parts)
        self.name = redact_url(self.url)
        self.timeout_s = timeout_s
        self._token = token
        self._watchdog: _Watchdog | None = None
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"ca_file {ca_file}: cannot load it ({exc}); give a PEM file of CA certificates") from None
        self._opener = urllib.request.build_opener(
            _WatchedHTTPHandler(self), _WatchedHTTPSHandler(self, context), _NoRedirect()
        )
        if token and parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            log.warning("sink %s: the bearer token travels unencrypted over plain HTTP; use https://", self.name)

    def __repr__(self) -> str:
        return f"HttpSink({self.name!r}, token={'set' if self._token else 'none'})"

    def send(self, detections: Sequence[Detection], *, timeout_s: float | None = None) -> SendReceipt:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=batch_json(detections), headers=headers, method="POST")
        budget_s = self.timeout_s if timeout_s is None else max(0.01, min(self.timeout_s, timeout_s))
        watchdog = self._watchdog = _Watchdog(budget_s)
        try:
            with self._opener.open(request, timeout=budget_s) as response:
                status = response.status
                content_type = response.headers.get("Content-Type", "")
                body = response.read(_MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            try:
                text = _read_snippet(exc)
            finally:
                exc.close()
            self._check_watchdog(watchdog)
            self._raise_for_status(exc.code, text, exc.headers)
            raise TransientSendError(f"{self.name}: unexpected HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            self._check_watchdog(watchdog)
            raise TransientSendError(f"{self.name}: {_describe_network_error(exc.reason, budget_s)}") from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts while reading, resets, bad status lines
            self._check_watchdog(watchdog)
            raise TransientSendError(f"{self.name}: {_describe_network_error(exc, budget_s)}") from None
        finally:
            watchdog.cancel()
            self._watchdog = None
        self._check_watchdog(watchdog)
        if not 200 <= status < 300:
            self._raise_for_status(status, body.decode("utf-8", "replace")[:_REASON_BODY_CHARS], {})
        return self._receipt(status, content_type, body, batch_size=len(detections))

    def _receipt(self, status: int, content_type: str, body: bytes, *, batch_size: int) -> SendReceipt:
        """The acknowledgement in a 2xx body; TransientSendError when the body is not the protocol's answer."""
        expected = '{"stored": n, "duplicates": m}'
        if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
            raise TransientSendError(
                f"{self.name}: HTTP {status} with an HTML page ({content_type or 'no Content-Type'}), not the "
                f"receiver's answer {expected}: a captive portal or a login page? Check the device's network "
                "and the sink URL")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        stored = data.get("stored") if isinstance(data, dict) else None
        duplicates = data.get("duplicates") if isinstance(data, dict) else None
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (stored, duplicates)):
            text = body[:_REASON_BODY_CHARS].decode("utf-8", "replace").strip()
            if self._token:
                text = text.replace(self._token, "<token>")
            raise TransientSendError(
                f"{self.name}: HTTP {status} but not the receiver's answer {expected} (got {text or 'no body'!r}); "
                "is the sink URL the receiver's (wrong service?)")
        assert isinstance(stored, int) and isinstance(duplicates, int)  # checked just above
        if stored + duplicates != batch_size:
            raise TransientSendError(
                f"{self.name}: HTTP {status} answered for {stored + duplicates} of {batch_size} detections "
                f"(stored {stored}, duplicates {duplicates}); the batch is sent again")
        return SendReceipt(stored=stored, duplicates=duplicates)

    def _check_watchdog(self, watchdog: _Watchdog) -> None:
        if watchdog.fired:
            raise TransientSendError(f"{self.name}: no answer within {watchdog.budget_s:g} s "
                                     "(timeout: a slow or trickling receiver is cut off)")

    def _raise_for_status(self, status: int, text: str, headers: Mapping[str, str] | Message) -> None:
        if self._token:  # a receiver that echoes the request must not put the token into logs and dead letters
            text = text.replace(self._token, "<token>")
        detail = f" ({text.strip()})" if text.strip() else ""
        if 200 <= status < 300:
            return
        if status in RETRYABLE_4XX or status >= 500:
            raise TransientSendError(
                f"{self.name}: HTTP {status}{detail}", retry_after_s=_retry_after_s(headers.get("Retry-After"))
            )
        if 300 <= status < 400:
            target = headers.get("Location", "?")
            raise TransientSendError(
                f"{self.name}: HTTP {status} redirect to {redact_url(target)}, not followed; set the sink to the final URL"
            )
        raise RejectedBatchError(f"{self.name}: HTTP {status}{detail}", status=status)

    def close(self) -> None:
        self._opener.close()


def _read_snippet(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(_MAX_RESPONSE_BYTES).decode("utf-8", "replace")[:_REASON_BODY_CHARS]
    except (OSError, ValueError):
        return ""


def _describe_network_error(reason: object, timeout_s: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout_s:g} s (timeout)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the receiver running?)"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({reason.verify_message}); fix the certificate or set ca_file"
    if isinstance(reason, socket.gaierror):
        return f"host name not resolved ({reason.strerror})"
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


class JsonlSink:
    """Append each detection as one JSON line to a file, flushed and fsynced before acknowledging.

    A crash after the write and before the outbox is updated writes those lines again on restart
    (at-least-once): readers should deduplicate by id.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{self.path}"

    def send(self, detections: Sequence[Detection], *, timeout_s: float | None = None) -> SendReceipt:
        lines = "".join(json.dumps(d.to_json_dict(), ensure_ascii=False) + "\n" for d in detections)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise TransientSendError(f"{self.name}: cannot append ({exc.strerror or exc})") from None
        return SendReceipt(stored=len(detections))

    def close(self) -> None:
        pass


class StdoutSink:
    """Write each detection as one JSON line to standard output (or the given stream)."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def send(self, detections: Sequence[Detection], *, timeout_s: float | None = None) -> SendReceipt:
        stream = self._stream or sys.stdout
        try:
            for detection in detections:
                stream.write(json.dumps(detection.to_json_dict(), ensure_ascii=False) + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            raise TransientSendError(f"stdout: cannot write ({exc})") from None
        return SendReceipt(stored=len(detections))

    def close(self) -> None:
        pass


def make_sink(
    spec: str, *, token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, ca_file: Path | None = None
) -> Sink:
    """A sink from its command-line form: 'http(s)://...', 'jsonl:PATH' or 'stdout'. Raises SinkError."""
    if spec == "stdout":
        return StdoutSink()
    if spec.startswith("jsonl:"):
        path = spec[len("jsonl:") :]
        if not path:
            raise SinkError("sink 'jsonl:': give a file path, e.g. jsonl:/var/lib/birdlab/detections.jsonl")
        return JsonlSink(Path(path).expanduser())
    if spec.startswith(("http://", "https://")):
        if url_has_credentials(spec):
            raise SinkError(f"sink {redact_url(spec)!r}: {CREDENTIALS_REFUSED}")
        return HttpSink(spec, token=token, timeout_s=timeout_s, ca_file=ca_file)
    raise SinkError(f"sink {redact_url(spec)!r}: expected an http(s):// URL, jsonl:PATH or stdout")
