"""A scripted HTTP server on 127.0.0.1 that answers every request with a fixed status and headers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers every request with the class's (status, headers); records the methods it saw."""

    status = 200
    headers_out: dict[str, str] = {}
    seen: list[str] = []
    echo_headers = False
    """Answer with the request's headers as the body (a careless receiver's error page)."""
    body_out = b""
    """The body of every answer (unless echo_headers)."""

    def _answer(self) -> None:
        self.seen.append(self.command)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = str(self.headers).encode() if self.echo_headers else self.body_out
        self.send_response(self.status)
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def scripted_server(
    status: int, headers: dict[str, str] | None = None, *, echo_headers: bool = False, body: bytes = b""
) -> Iterator[tuple[str, type[ScriptedHandler]]]:
    """Serve in a thread; yields (base URL, handler class whose .seen lists the request methods)."""
    handler = type("Handler", (ScriptedHandler,),
                   {"status": status, "headers_out": headers or {}, "seen": [], "echo_headers": echo_headers,
                    "body_out": body})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
