"""Sinks over real HTTP(S) on 127.0.0.1: the bearer token (environment or 0600 file, never in a message), TLS
verification, and the outcome rules: 2xx acknowledged; 408/429/5xx/3xx, timeouts and refusals transient; other 4xx
rejected."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import pytest
from receiver_process import free_port
from sample_detections import make_detections
from scripted_http import scripted_server

from edge_runtime.receiver import ReceiverSettings, start_receiver
from edge_runtime.sinks import (
    HttpSink,
    JsonlSink,
    RejectedBatchError,
    SinkError,
    StdoutSink,
    TransientSendError,
    load_token,
    make_sink,
    redact_url,
)

TOKEN = "tok-3f2a9c01-for-tests"
SHORT_TIMEOUT_S = 0.3
SLOW_RECEIVER_DELAY_S = 1.0


@pytest.fixture
def receiver(tmp_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite3")) as running:
        yield running


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


# -- sinks ------------------------------------------------------------------------------------------


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


def test_retry_after_is_read():
    with scripted_server(429, {"Retry-After": "7"}) as (url, _), pytest.raises(TransientSendError) as excinfo:
        make_sink(url).send(make_detections(1, seed=127))
    assert excinfo.value.retry_after_s == 7.0


def test_redirects_are_not_followed():
    """urllib would turn the POST into a GET whose 200 looks like an acknowledgement: detections would be lost."""
    with scripted_server(200) as (target, target_handler):
        with scripted_server(302, {"Location": target + "/detections"}) as (url, _):
            with pytest.raises(TransientSendError, match="HTTP 302 redirect to .* not followed"):
                make_sink(url).send(make_detections(1, seed=131))
        assert target_handler.seen == []


def test_a_receiver_echoing_the_token_does_not_put_it_into_the_reason():
    with scripted_server(400, echo_headers=True) as (url, _), pytest.raises(RejectedBatchError) as excinfo:
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
