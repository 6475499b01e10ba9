"""The reference receiver over real HTTP on 127.0.0.1: validation, token, deduplication by id, fault injection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from receiver_process import REPO_ROOT, ReceiverProcess, python_env
from sample_detections import make_detections

from edge_runtime.receiver import DetectionStore, ReceiverSettings, start_receiver
from edge_runtime.sinks import batch_json

TOKEN = "s3cret-token-for-tests"
DELAY_S = 1.0
CLIENT_TIMEOUT_S = 0.3
STORE_WAIT_S = 10.0


def post(url: str, body: bytes, *, token: str | None = None, timeout_s: float = 10.0) -> tuple[int, dict]:
    """POST body to url + /detections; returns (status, parsed JSON answer)."""
    request = urllib.request.Request(url + "/detections", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def get(url: str, path: str = "/detections", *, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


@pytest.fixture
def receiver(tmp_path):
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite3", max_batch=50)) as running:
        yield running


def test_stores_each_id_once_and_lists_in_arrival_order(receiver):
    detections = make_detections(30, seed=41)
    assert post(receiver.url, batch_json(detections[:20])) == (200, {"stored": 20, "duplicates": 0})
    assert post(receiver.url, batch_json(detections[10:])) == (200, {"stored": 10, "duplicates": 10})
    status, listing = get(receiver.url)
    assert status == 200 and listing["count"] == 30
    assert listing["detections"] == [d.to_json_dict() for d in detections]
    assert get(receiver.url, "/detections?limit=5&offset=28")[1]["detections"] == [
        d.to_json_dict() for d in detections[28:]
    ]
    assert get(receiver.url, "/health") == (200, {"status": "ok", "count": 30})


def test_duplicates_inside_one_batch_are_stored_once(receiver):
    detection = make_detections(1, seed=43)[0]
    assert post(receiver.url, batch_json([detection, detection, detection])) == (200, {"stored": 1, "duplicates": 2})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", 'expected a JSON object {"detections": [...]}'),
        (b'{"detections": []}', "detections: empty list"),
        (batch_json(make_detections(51, seed=47)), "detections: 51 in one batch, at most 50"),
        (
            json.dumps({"detections": [d.to_json_dict() for d in make_detections(2, seed=53)]
                        + [make_detections(1, seed=59)[0].to_json_dict() | {"confidence": 7}]}).encode(),
            "detections[2]: confidence: 7.0 is outside [0, 1]",
        ),
    ],
)
def test_invalid_batches_are_refused_with_400_naming_the_problem_and_nothing_is_stored(receiver, body, message):
    status, answer = post(receiver.url, body)
    assert status == 400
    assert message in answer["error"]
    assert get(receiver.url)[1]["count"] == 0


def test_unknown_path_is_404(receiver):
    assert post(receiver.url.replace("/detections", "") + "/nope", b"{}")[0] == 404
    assert get(receiver.url, "/nope")[0] == 404


def test_token_is_required_when_set(tmp_path):
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", token=TOKEN)
    body = batch_json(make_detections(3, seed=61))
    with start_receiver(settings) as running:
        assert post(running.url, body)[0] == 401
        assert post(running.url, body, token="wrong")[0] == 401
        assert get(running.url)[0] == 401
        assert post(running.url, body, token=TOKEN) == (200, {"stored": 3, "duplicates": 0})
        assert get(running.url, token=TOKEN)[1]["count"] == 3


def test_fail_first_answers_the_injected_status_without_storing(tmp_path):
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", fail_first=2, fail_status=503)
    body = batch_json(make_detections(4, seed=67))
    with start_receiver(settings) as running:
        assert post(running.url, body)[0] == 503
        assert post(running.url, body)[0] == 503
        assert get(running.url)[1]["count"] == 0
        assert post(running.url, body) == (200, {"stored": 4, "duplicates": 0})


def test_a_slow_answer_comes_after_the_batch_is_stored(tmp_path):
    """The sender times out, but the batch is stored: its re-send is then a duplicate, not a second copy."""
    settings = ReceiverSettings(port=0, db=tmp_path / "r.sqlite3", delay_s=DELAY_S)
    body = batch_json(make_detections(5, seed=71))
    with start_receiver(settings) as running:
        started = time.monotonic()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            post(running.url, body, timeout_s=CLIENT_TIMEOUT_S)
        assert time.monotonic() - started < DELAY_S
        deadline = time.monotonic() + STORE_WAIT_S  # stored although the sender gave up waiting for the answer
        while get(running.url)[1]["count"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert get(running.url)[1]["count"] == 5
        started = time.monotonic()
        assert post(running.url, body) == (200, {"stored": 0, "duplicates": 5})
        assert time.monotonic() - started >= DELAY_S


def test_concurrent_senders_with_overlapping_batches_store_each_id_once(receiver):
    detections = make_detections(200, seed=73)
    errors: list[object] = []

    def send(offset: int) -> None:
        for start in range(offset, 200, 40):
            status, _ = post(receiver.url, batch_json(detections[start : start + 50]))
            if status != 200:
                errors.append(status)

    threads = [threading.Thread(target=send, args=(k * 10,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    listing = get(receiver.url)[1]
    assert listing["count"] == 200
    assert sorted(d["id"] for d in listing["detections"]) == sorted(d.id for d in detections)


def test_the_store_survives_a_restart(tmp_path):
    db = tmp_path / "r.sqlite3"
    detections = make_detections(6, seed=79)
    with start_receiver(ReceiverSettings(port=0, db=db)) as running:
        post(running.url, batch_json(detections[:4]))
    with start_receiver(ReceiverSettings(port=0, db=db)) as running:
        assert post(running.url, batch_json(detections)) == (200, {"stored": 2, "duplicates": 4})
    store = DetectionStore(db)
    assert store.count() == 6
    store.close()


def test_command_line_receiver_serves_and_stops_on_sigterm(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    receiver = ReceiverProcess(tmp_path / "r.sqlite3", args=("--token-file", str(token_file))).start()
    try:
        assert post(receiver.url, batch_json(make_detections(3, seed=83)), token=TOKEN)[0] == 200
        assert receiver.detections(token=TOKEN)["count"] == 3
    finally:
        assert receiver.stop() == 0
    assert TOKEN not in receiver.log_path.read_text()


def test_command_line_receiver_refuses_a_readable_token_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    os.chmod(token_file, 0o644)
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime.receiver", "--port", "0", "--db", str(tmp_path / "r.sqlite3"),
         "--token-file", str(token_file)],
        capture_output=True, text=True, env=python_env(), cwd=REPO_ROOT, timeout=60,
    )
    assert result.returncode == 2
    assert f"token file {token_file}: readable by group or others (mode 0644); run `chmod 600 {token_file}`" in result.stderr
