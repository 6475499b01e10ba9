"""Delivery over real HTTP on 127.0.0.1: token handling, TLS verification, the outcome rules (2xx sent; 408/429/5xx,
timeouts, refusals retried with backoff; other 4xx dead-lettered), and the Deliverer (one batch, drain, thread)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import random
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from receiver_process import free_port
from sample_detections import make_detections

from edge_runtime.delivery import (
    Deliverer,
    DeliverySettings,
    HttpSink,
    JsonlSink,
    RejectedBatchError,
    SinkError,
    StdoutSink,
    TransientSendError,
    backoff_delay_s,
    load_token,
    make_sink,
    redact_url,
)
from edge_runtime.outbox import Outbox
from edge_runtime.receiver import DetectionStore, ReceiverSettings, start_receiver

TOKEN = "tok-3f2a9c01-for-tests"
FAST = dataclasses.replace(
    DeliverySettings(), batch_size=10, timeout_s=2.0, backoff_initial_s=0.01, backoff_max_s=0.05, idle_poll_s=0.05
)
SHORT_TIMEOUT_S = 0.3
SLOW_RECEIVER_DELAY_S = 1.0
DRAIN_DEADLINE_S = 20.0
BACKOFF_REL_TOL = 1e-12


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


@pytest.fixture
def receiver(tmp_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite3")) as running:
        yield running


def stored_ids(db) -> list[str]:
    store = DetectionStore(db)
    try:
        return [d["id"] for d in store.detections()]
    finally:
        store.close()


# -- the token ---------------------------------------------------------------------------------------


def test_token_from_environment_or_private_file(tmp_path):
    assert load_token(token_env="MY_TOKEN", environ={"MY_TOKEN": f"  {TOKEN}\n"}) == TOKEN
    assert load_token(token_env="MY_TOKEN", environ={}) is None
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    # an explicit file wins over the environment
    assert load_token(token_env="MY_TOKEN", token_file=token_file, environ={"MY_TOKEN": "other"}) == TOKEN
    token_file.chmod(0o400)
    assert load_token(token_file=token_file, environ={}) == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_readable_token_file_is_refused(tmp_path, mode):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(mode)
    with pytest.raises(SinkError) as excinfo:
        load_token(token_file=token_file, environ={})
    assert str(excinfo.value) == (
        f"token file {token_file}: readable by group or others (mode {mode:04o}); run `chmod 600 {token_file}`"
    )
    assert TOKEN not in str(excinfo.value)


def test_bad_token_files_and_values(tmp_path):
    with pytest.raises(SinkError, match="cannot read it .*check --token-file"):
        load_token(token_file=tmp_path / "missing", environ={})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(SinkError, match="empty; write the receiver's token"):
        load_token(token_file=empty, environ={})
    with pytest.raises(SinkError, match=r"\$T: the token holds spaces"):
        load_token(token_env="T", environ={"T": "two words"})


# -- sinks and settings ------------------------------------------------------------------------------


def test_make_sink_parses_every_form(tmp_path):
    assert isinstance(make_sink("stdout"), StdoutSink)
    jsonl = make_sink(f"jsonl:{tmp_path}/d.jsonl")
    assert isinstance(jsonl, JsonlSink) and jsonl.path == tmp_path / "d.jsonl"
    http = make_sink("http://127.0.0.1:8750", token=TOKEN)
    assert isinstance(http, HttpSink) and http.url == "http://127.0.0.1:8750/detections"
    assert make_sink("https://example.org/api/v1/detections").url == "https://example.org/api/v1/detections"
    assert TOKEN not in repr(http) and TOKEN not in http.name
    for bad, message in [("ftp://x", "expected an http\\(s\\):// URL, jsonl:PATH or stdout"),
                         ("jsonl:", "give a file path"), ("http://", "expected http\\(s\\)://HOST")]:
        with pytest.raises(SinkError, match=message):
            make_sink(bad)


def test_urls_with_passwords_are_redacted_for_logs():
    assert redact_url("https://user:pw@example.org:8443/detections") == "https://example.org:8443/detections"
    assert redact_url("http://127.0.0.1:1/x") == "http://127.0.0.1:1/x"


def test_settings_are_validated():
    with pytest.raises(SinkError, match="delivery setting batch_size: must be in 1..1000"):
        DeliverySettings(batch_size=0)
    with pytest.raises(SinkError, match="jitter_fraction"):
        DeliverySettings(jitter_fraction=1.5)


def test_backoff_grows_exponentially_is_capped_and_jittered():
    settings = DeliverySettings(backoff_initial_s=1.0, backoff_multiplier=2.0, backoff_max_s=30.0, jitter_fraction=0.5)
    rng = random.Random(5)
    for failures, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (40, 30.0), (100_000, 30.0)]:
        draws = [backoff_delay_s(failures, settings=settings, rng=rng) for _ in range(200)]
        assert min(draws) >= nominal * 0.5 and max(draws) <= nominal
        assert max(draws) - min(draws) > nominal * 0.3  # really jittered
    exact = dataclasses.replace(settings, jitter_fraction=0.0)
    assert backoff_delay_s(3, settings=exact, rng=rng) == pytest.approx(4.0, rel=BACKOFF_REL_TOL)


# -- HttpSink outcome rules --------------------------------------------------------------------------


def test_http_sink_success_reports_stored_and_duplicates(receiver):
    sink = make_sink(receiver.url)
    detections = make_detections(5, seed=101)
    receipt = sink.send(detections)
    assert (receipt.stored, receipt.duplicates) == (5, 0)
    receipt = sink.send(detections)
    assert (receipt.stored, receipt.duplicates) == (0, 5)


def test_http_400_is_rejected_with_the_receivers_reason(tmp_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", max_batch=2)) as running:
        with pytest.raises(RejectedBatchError) as excinfo:
            make_sink(running.url).send(make_detections(3, seed=103))
    assert excinfo.value.status == 400
    assert "HTTP 400" in excinfo.value.reason and "3 in one batch, at most 2" in excinfo.value.reason


def test_wrong_token_is_401_rejected_and_the_token_is_not_in_the_reason(tmp_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", token=TOKEN)) as running:
        with pytest.raises(RejectedBatchError) as excinfo:
            make_sink(running.url, token="not-" + TOKEN).send(make_detections(1, seed=107))
        assert excinfo.value.status == 401
        assert TOKEN not in excinfo.value.reason
        assert make_sink(running.url, token=TOKEN).send(make_detections(1, seed=107)).stored == 1


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_5xx_408_429_are_transient(tmp_path, status):
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", fail_first=1, fail_status=status)
    with start_receiver(settings) as running:
        sink = make_sink(running.url)
        with pytest.raises(TransientSendError, match=f"HTTP {status}"):
            sink.send(make_detections(2, seed=109))
        assert sink.send(make_detections(2, seed=109)).stored == 2


def test_refused_connection_and_timeout_are_transient(tmp_path):
    with pytest.raises(TransientSendError, match="connection refused"):
        make_sink(f"http://127.0.0.1:{free_port()}").send(make_detections(1, seed=113))
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", delay_s=SLOW_RECEIVER_DELAY_S)
    with start_receiver(settings) as running:
        with pytest.raises(TransientSendError, match=f"no answer within {SHORT_TIMEOUT_S:g} s"):
            make_sink(running.url, timeout_s=SHORT_TIMEOUT_S).send(make_detections(1, seed=113))


class _ScriptedHandler(BaseHTTPRequestHandler):
    """Answers every request with the class's (status, headers); records the methods it saw."""

    status = 200
    headers_out: dict[str, str] = {}
    seen: list[str] = []
    echo_headers = False
    """Answer with the request's headers as the body (a careless receiver's error page)."""

    def _answer(self) -> None:
        self.seen.append(self.command)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = str(self.headers).encode() if self.echo_headers else b""
        self.send_response(self.status)
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted_server():
    def serve(status: int, headers: dict[str, str], *, echo_headers: bool = False):
        handler = type("Handler", (_ScriptedHandler,),
                       {"status": status, "headers_out": headers, "seen": [], "echo_headers": echo_headers})
        server = HTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler

    servers: list[HTTPServer] = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_retry_after_is_read(scripted_server):
    url, _ = scripted_server(429, {"Retry-After": "7"})
    with pytest.raises(TransientSendError) as excinfo:
        make_sink(url).send(make_detections(1, seed=127))
    assert excinfo.value.retry_after_s == 7.0


def test_the_deliverer_waits_at_least_retry_after_within_the_backoff_cap(scripted_server, outbox):
    url, _ = scripted_server(503, {"Retry-After": "7"})
    outbox.add(make_detections(2, seed=129))
    patient = dataclasses.replace(FAST, backoff_max_s=10.0)
    assert Deliverer(outbox, make_sink(url), settings=patient).deliver_once().retry_in_s == 7.0
    assert Deliverer(outbox, make_sink(url), settings=FAST).deliver_once().retry_in_s == FAST.backoff_max_s


def test_redirects_are_not_followed(scripted_server):
    """urllib would turn the POST into a GET whose 200 looks like an acknowledgement: detections would be lost."""
    target, target_handler = scripted_server(200, {})
    url, _ = scripted_server(302, {"Location": target + "/detections"})
    with pytest.raises(TransientSendError, match="HTTP 302 redirect to .* not followed"):
        make_sink(url).send(make_detections(1, seed=131))
    assert target_handler.seen == []


def test_a_receiver_echoing_the_token_does_not_put_it_into_the_reason(scripted_server):
    url, _ = scripted_server(400, {}, echo_headers=True)
    with pytest.raises(RejectedBatchError) as excinfo:
        make_sink(url, token=TOKEN).send(make_detections(1, seed=133))
    assert "Authorization: Bearer <token>" in excinfo.value.reason and TOKEN not in excinfo.value.reason


@pytest.fixture(scope="module")
def self_signed_cert(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return folder / "cert.pem", folder / "key.pem"


def test_tls_is_verified(tmp_path, self_signed_cert):
    cert, key = self_signed_cert
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", tls_cert_file=cert, tls_key_file=key)
    with start_receiver(settings) as running:
        assert running.url.startswith("https://")
        with pytest.raises(TransientSendError, match="TLS certificate verification failed"):
            make_sink(running.url).send(make_detections(1, seed=137))
        assert make_sink(running.url, ca_file=cert).send(make_detections(1, seed=137)).stored == 1
    with pytest.raises(SinkError, match="ca_file .*cannot load it"):
        make_sink("https://127.0.0.1:1", ca_file=key.with_name("missing.pem"))


def test_jsonl_and_stdout_sinks_write_one_object_per_line(tmp_path):
    detections = make_detections(4, seed=139)
    sink = make_sink(f"jsonl:{tmp_path}/out/d.jsonl")
    sink.send(detections[:2])
    sink.send(detections[2:])
    lines = (tmp_path / "out" / "d.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [d.to_json_dict() for d in detections]
    stream = io.StringIO()
    assert StdoutSink(stream).send(detections).stored == 4
    assert [json.loads(line) for line in stream.getvalue().splitlines()] == [d.to_json_dict() for d in detections]


# -- the Deliverer -----------------------------------------------------------------------------------


def test_deliver_once_sends_the_oldest_batch_and_removes_it(outbox, receiver):
    detections = make_detections(25, seed=149)
    outbox.add(detections)
    deliverer = Deliverer(outbox, make_sink(receiver.url), settings=FAST)
    result = deliverer.deliver_once()
    assert (result.attempted, result.sent, result.stored, result.retry) == (10, 10, 10, False)
    assert stored_ids(receiver.server.store.path) == [d.id for d in detections[:10]]
    report = deliverer.drain(deadline_s=DRAIN_DEADLINE_S)
    assert (report.sent, report.remaining, report.complete) == (15, 0, True)
    assert deliverer.deliver_once().attempted == 0
    assert deliverer.stats().sent_total == 25


def test_server_errors_are_retried_with_backoff_until_delivered(outbox, tmp_path):
    detections = make_detections(12, seed=151)
    outbox.add(detections)
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", fail_first=3, fail_status=500)
    with start_receiver(settings) as running:
        deliverer = Deliverer(outbox, make_sink(running.url), settings=FAST, rng=random.Random(1))
        first = deliverer.deliver_once()
        assert first.retry and "HTTP 500" in first.reason and 0 < first.retry_in_s <= FAST.backoff_initial_s
        assert outbox.depth() == 12
        report = deliverer.drain(deadline_s=DRAIN_DEADLINE_S)
    assert report.complete and report.failed_attempts == 2 and report.sent == 12
    assert deliverer.stats().failed_attempts == 3 and deliverer.stats().consecutive_failures == 0
    assert sorted(stored_ids(settings.db)) == sorted(d.id for d in detections)


def test_a_refused_batch_goes_to_the_dead_letters_with_its_reason_and_the_rest_flows(outbox, tmp_path):
    outbox.add(make_detections(3, seed=157))
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", fail_first=1, fail_status=422)
    with start_receiver(settings) as running:
        deliverer = Deliverer(outbox, make_sink(running.url), settings=dataclasses.replace(FAST, batch_size=2))
        report = deliverer.drain(deadline_s=DRAIN_DEADLINE_S)
    assert (report.dead_lettered, report.sent, report.remaining, report.failed_attempts) == (2, 1, 0, 0)
    assert outbox.dead_letter_count() == 2
    assert "HTTP 422" in outbox.dead_letters()[0].reason and "injected failure" in outbox.dead_letters()[0].reason


def test_a_slow_receiver_times_out_then_nothing_is_stored_twice(outbox, tmp_path):
    """Timeouts after the receiver stored the batch: the outbox keeps it, the re-send is a duplicate."""
    detections = make_detections(6, seed=163)
    outbox.add(detections)
    db = tmp_path / "r.sqlite3"
    slow = dataclasses.replace(FAST, timeout_s=SHORT_TIMEOUT_S)
    with start_receiver(ReceiverSettings(port=0, db=db, delay_s=SLOW_RECEIVER_DELAY_S)) as running:
        result = Deliverer(outbox, make_sink(running.url, timeout_s=SHORT_TIMEOUT_S), settings=slow).deliver_once()
        assert result.retry and "no answer within" in result.reason
    assert outbox.depth() == 6
    with start_receiver(ReceiverSettings(port=0, db=db)) as running:
        deliverer = Deliverer(outbox, make_sink(running.url), settings=FAST)
        first = deliverer.deliver_once()
        assert (first.stored, first.duplicates) == (0, 6)
    assert outbox.depth() == 0
    assert sorted(stored_ids(db)) == sorted(d.id for d in detections)


def test_background_thread_delivers_as_detections_arrive_and_flushes_on_stop(outbox, receiver):
    detections = make_detections(40, seed=167)
    deliverer = Deliverer(outbox, make_sink(receiver.url), settings=FAST)
    deliverer.start()
    for start in range(0, 40, 8):
        outbox.add(detections[start : start + 8])
        deliverer.notify()
    report = deliverer.stop(flush_timeout_s=DRAIN_DEADLINE_S)
    assert report.complete and outbox.depth() == 0
    assert sorted(stored_ids(receiver.server.store.path)) == sorted(d.id for d in detections)


def test_background_thread_stops_in_time_when_the_receiver_is_down(outbox, caplog):
    outbox.add(make_detections(5, seed=173))
    deliverer = Deliverer(outbox, make_sink(f"http://127.0.0.1:{free_port()}", token=TOKEN), settings=FAST)
    with caplog.at_level(logging.DEBUG):
        deliverer.start()
        deliverer.notify()
        report = deliverer.stop(flush_timeout_s=0.3)
    assert report.remaining == 5 and not report.complete and "connection refused" in report.last_error
    assert outbox.depth() == 5 and deliverer.stats().failed_attempts >= 1
    assert "connection refused" in caplog.text and TOKEN not in caplog.text


def test_jsonl_delivery_through_the_outbox(outbox, tmp_path):
    detections = make_detections(13, seed=179)
    outbox.add(detections)
    report = Deliverer(outbox, make_sink(f"jsonl:{tmp_path}/d.jsonl"), settings=FAST).drain(deadline_s=5)
    assert report.complete
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [d.id for d in detections]
