"""`python -m edge_runtime` as a process: settings from TOML/env/flags, run over files and stdin into the
reference receiver (real HTTP on 127.0.0.1), SIGTERM mid-stream, check and flush exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from edge_bundle_factory import session_bundle, tone_sequence, write_wav

from edge_runtime.bundle import open_bundle
from edge_runtime.outbox import Outbox
from edge_runtime.receiver import ReceiverSettings, start_receiver
from edge_runtime.settings import EdgeSettings, SettingsError, load_settings, setting_fields

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 60
SIGTERM_EXIT_WITHIN_S = 10.0
"""After SIGTERM the runtime finishes its window, flushes (flush_deadline_s=2) and exits within this."""


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_bundle(tmp_path_factory)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of the runtime process: its caches under tmp_path, no stray EDGE_RUNTIME_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}
    return {**clean, "EDGE_RUNTIME_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}


def _edge(*args: str, env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], input=stdin, capture_output=True,
                          env=env, cwd=REPO_ROOT, timeout=PROCESS_TIMEOUT_S)


def _received(url: str, *, token: str | None = None) -> list[dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/detections", headers=headers), timeout=10) as response:
        return json.load(response)["detections"]


def _expected(bundle_dir: Path, plan: list[int | None], *, name: str) -> list[tuple[str, float, str]]:
    bundle = open_bundle(bundle_dir)
    return sorted((name, w * bundle.spec.clip_seconds, bundle.labels[k].ebird_code)
                  for w, k in enumerate(plan) if k is not None)


# -- settings -------------------------------------------------------------------------------------------


def test_settings_precedence_toml_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('[edge_runtime]\nthreshold = 0.3\ntop_n = 2\nsources = ["mic"]\n'
                      'species_thresholds = { eurrob1 = 0.8 }\ndevice_id = "from-toml"\n')
    settings = load_settings(config_path=config, environ={"EDGE_RUNTIME_TOP_N": "4", "EDGE_RUNTIME_DEVICE_ID": "env"},
                             flags={"device_id": "flag", "threshold": None})
    assert settings.threshold == 0.3, "TOML over the default"
    assert settings.top_n == 4, "environment over TOML"
    assert settings.device_id == "flag", "flags over the environment"
    assert settings.sources == ("mic",) and settings.species_thresholds == (("eurrob1", 0.8),)
    assert load_settings(environ={"EDGE_RUNTIME_INCLUDE_SPECIES": "a, b"}).include_species == ("a", "b")
    assert load_settings(flags={"species_thresholds": ["a=0.2", "b=0.9"]}).species_thresholds == (("a", 0.2), ("b", 0.9))


def test_settings_errors_name_the_field_and_origin(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"setting top_n from \$EDGE_RUNTIME_TOP_N: not a valid int"):
        load_settings(environ={"EDGE_RUNTIME_TOP_N": "many"})
    with pytest.raises(SettingsError, match=r"setting threshold: must be a number in \(0, 1\), got 1.5"):
        load_settings(flags={"threshold": "1.5"})
    config = tmp_path / "bad.toml"
    config.write_text("thresold = 0.3\n")
    with pytest.raises(SettingsError, match=r"bad.toml: unknown setting\(s\) \['thresold'\]"):
        load_settings(config_path=config)
    with pytest.raises(SettingsError, match="species both included and excluded"):
        EdgeSettings(include_species=("a",), exclude_species=("a",))


def test_help_documents_every_setting(env: dict[str, str]) -> None:
    result = _edge("run", "--help", env=env)
    assert result.returncode == 0
    text = " ".join(result.stdout.decode().split())
    for f in setting_fields():
        assert f"$EDGE_RUNTIME_{f.name.upper()}" in text, f"--help does not explain {f.name}"
    for command in ("check", "bench", "flush"):
        assert _edge(command, "--help", env=env).returncode == 0


# -- run --------------------------------------------------------------------------------------------------


def test_run_files_into_the_receiver_with_a_token(bundle_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
    spec = open_bundle(bundle_dir).spec
    plan = [2, None, 0, 1]
    write_wav(tmp_path / "rec.wav", tone_sequence(plan, spec=spec), sample_rate_hz=spec.sample_rate_hz)
    token = "s3cret-token-value"
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite", token=token)) as receiver:
        result = _edge("run", "--bundle", str(bundle_dir), "--source", f"file:{tmp_path / 'rec.wav'}",
                       "--sink", receiver.url, "--outbox", str(tmp_path / "outbox.sqlite"),
                       "--status", str(tmp_path / "status.json"), "--log-format", "json",
                       env={**env, "EDGE_RUNTIME_TOKEN": token, "EDGE_RUNTIME_DEVICE_ID": "pi-garden"})
        received = _received(receiver.url, token=token)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert token not in stderr, "the token must never be logged"
    assert all(json.loads(line) for line in stderr.splitlines() if line.startswith("{")), "json logs"
    assert sorted((Path(d["source"]).name, d["offset_start_s"], d["ebird_code"]) for d in received) == _expected(
        bundle_dir, plan, name="rec.wav")
    assert {d["device_id"] for d in received} == {"pi-garden"}
    status = json.loads((tmp_path / "status.json").read_text())
    for key in ("files_done", "files_failed", "windows_processed", "detections_total", "outbox_depth",
                "dead_letters", "realtime_factor", "last_error"):
        assert key in status
    assert (status["files_done"], status["windows_processed"], status["outbox_depth"]) == (1, 4, 0)


def test_run_from_a_toml_config_with_stdin_pcm(bundle_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
    spec = open_bundle(bundle_dir).spec
    plan = [1, 1, None]  # 2.5 kHz: below the 8 kHz Nyquist limit of 16 kHz audio
    pcm16k = (np.clip(tone_sequence(plan, spec=spec)[::2], -1, 1) * 32767).astype("<i2").tobytes()  # 16 kHz
    out = tmp_path / "out.jsonl"
    config = tmp_path / "edge.toml"
    config.write_text(f'bundle = "{bundle_dir}"\nsources = ["stdin"]\nsink = "jsonl:{out}"\n'
                      f'outbox = "{tmp_path / "outbox.sqlite"}"\nstdin_rate_hz = 16000\n')
    result = _edge("run", "--config", str(config), env=env, stdin=pcm16k)
    assert result.returncode == 0, result.stderr.decode()
    delivered = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(("stdin", d["offset_start_s"], d["ebird_code"]) for d in delivered) == _expected(
        bundle_dir, plan, name="stdin")


def test_sigterm_mid_stream_finishes_flushes_and_exits_0(bundle_dir: Path, tmp_path: Path,
                                                         env: dict[str, str]) -> None:
    spec = open_bundle(bundle_dir).spec
    out, status_path = tmp_path / "out.jsonl", tmp_path / "status.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_runtime", "run", "--bundle", str(bundle_dir), "--source", "stdin",
         "--sink", f"jsonl:{out}", "--outbox", str(tmp_path / "outbox.sqlite"), "--status", str(status_path),
         "--status-interval-seconds", "0.2", "--shutdown-flush-seconds", "2"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT)
    try:
        pcm = (tone_sequence([1, 1], spec=spec) * 32767).astype("<i2").tobytes()
        process.stdin.write(pcm)  # two windows, and the stream stays open
        process.stdin.flush()
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while time.monotonic() < deadline:
            if status_path.exists() and json.loads(status_path.read_text())["windows_processed"] >= 2:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()
    assert elapsed < SIGTERM_EXIT_WITHIN_S
    assert "SIGTERM received" in stderr.decode()
    status = json.loads(status_path.read_text())
    assert status["state"] == "stopped" and status["windows_processed"] == 2 and status["outbox_depth"] == 0
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.parametrize(("args", "message"), [
    ((), "no bundle"),
    (("--bundle", "BUNDLE"), "no source"),
    (("--bundle", "BUNDLE", "--source", "tape:x"), "must start with one of"),
    (("--bundle", "BUNDLE", "--source", "mic", "--threshold", "2"), "setting threshold: must be a number in (0, 1)"),
    (("--bundle", "BUNDLE", "--source", "mic", "--sink", "ftp://x"), "setting sink: must be one of"),
    (("--bundle", "BUNDLE", "--source", "stdin", "--include", "nosuch"), "are not labels of the bundle"),
    (("--bundle", "BUNDLE", "--source", "mic", "--mic-command", "no-such-recorder"), "is not installed"),
])
def test_run_usage_errors_exit_2(bundle_dir: Path, env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    result = _edge("run", *[str(bundle_dir) if a == "BUNDLE" else a for a in args], env=env)
    assert result.returncode == 2
    assert message in result.stderr.decode()


# -- check and flush --------------------------------------------------------------------------------------


def test_check_command(bundle_dir: Path, env: dict[str, str]) -> None:
    result = _edge("check", "--bundle", str(bundle_dir), env=env)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip().splitlines()[-1].startswith("OK:")
    report = json.loads(_edge("check", "--bundle", str(bundle_dir), "--json", env=env).stdout)
    assert report["ok"] and {c["name"] for c in report["checks"]} >= {"checksums", "wasm ABI", "labels vs outputs"}


def test_pending_detections_are_delivered_by_flush(bundle_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
    spec = open_bundle(bundle_dir).spec
    plan = [0, 1]
    write_wav(tmp_path / "rec.wav", tone_sequence(plan, spec=spec), sample_rate_hz=spec.sample_rate_hz)
    outbox = tmp_path / "outbox.sqlite"
    # nothing listens on the sink: the run ends with its detections pending in the outbox
    result = _edge("run", "--bundle", str(bundle_dir), "--source", f"file:{tmp_path / 'rec.wav'}",
                   "--sink", "http://127.0.0.1:9/detections", "--outbox", str(outbox),
                   "--shutdown-flush-seconds", "0.5", "--retry-initial-seconds", "0.1", env=env)
    assert result.returncode == 0, result.stderr.decode()
    with Outbox(outbox) as box:
        assert box.depth() == 2
    assert _edge("flush", "--outbox", str(outbox), "--sink", "http://127.0.0.1:9/detections", "--deadline-s", "0.5",
                 env=env).returncode == 1
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "receiver.sqlite")) as receiver:
        flushed = _edge("flush", "--outbox", str(outbox), "--sink", receiver.url, env=env)
        received = _received(receiver.url)
    assert flushed.returncode == 0, flushed.stderr.decode()
    assert sorted((Path(d["source"]).name, d["offset_start_s"], d["ebird_code"]) for d in received) == _expected(
        bundle_dir, plan, name="rec.wav")


def test_systemd_unit_restarts_always_and_its_command_line_parses() -> None:
    import shlex

    from edge_runtime.cli import build_parser

    unit = (REPO_ROOT / "edge_runtime" / "birdlab-edge.service").read_text()
    lines = unit.replace("\\\n", " ").splitlines()
    entries = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    assert entries["Restart"] == "always" and entries["KillSignal"] == "SIGTERM"
    argv = shlex.split(entries["ExecStart"])
    assert argv[1:4] == ["-m", "edge_runtime", "run"]
    args = build_parser().parse_args(argv[3:])
    assert args.config == Path("/etc/birdlab-edge/edge.toml") and args.token_file == "/etc/birdlab-edge/token"


def test_dir_source_end_to_end_and_no_redo_after_restart(bundle_dir: Path, tmp_path: Path,
                                                         env: dict[str, str]) -> None:
    spec = open_bundle(bundle_dir).spec
    incoming, out, status_path = tmp_path / "incoming", tmp_path / "out.jsonl", tmp_path / "status.json"
    incoming.mkdir()
    command = [sys.executable, "-m", "edge_runtime", "run", "--bundle", str(bundle_dir), "--source", f"dir:{incoming}",
               "--sink", f"jsonl:{out}", "--outbox", str(tmp_path / "outbox.sqlite"), "--status", str(status_path),
               "--status-interval-seconds", "0.1", "--dir-poll-seconds", "0.1", "--shutdown-flush-seconds", "2"]

    def run_until(files_done: int) -> dict:
        process = subprocess.Popen(command, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT)
        try:
            deadline = time.monotonic() + PROCESS_TIMEOUT_S
            while time.monotonic() < deadline:
                if status_path.exists():
                    status = json.loads(status_path.read_text())
                    if status["state"] == "running" and status["files_done"] >= files_done:
                        break
                time.sleep(0.1)
            time.sleep(1.0)  # several more polls: a done file must not come back
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=PROCESS_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, stderr.decode()
        return json.loads(status_path.read_text())

    write_wav(incoming / "one.wav", tone_sequence([0], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    write_wav(incoming / "two.wav", tone_sequence([None, 2], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    first = run_until(2)
    assert (first["files_done"], first["windows_processed"], first["detections_total"]) == (2, 3, 2)
    second = run_until(0)  # restarted: the two files are remembered as done
    assert (second["files_done"], second["windows_processed"]) == (0, 0)
    delivered = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((Path(d["source"]).name, d["offset_start_s"]) for d in delivered) == [("one.wav", 0.0),
                                                                                        ("two.wav", 5.0)]
    assert all(d["source"].startswith("dir:") for d in delivered)


def test_bench_writes_the_figures(bundle_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "bench.json"
    result = _edge("bench", "--bundle", str(bundle_dir), "--out", str(out), "--windows", "3", env=env)
    assert result.returncode == 0, result.stderr.decode()
    figures = json.loads(out.read_text())
    assert figures == json.loads(result.stdout)
    for key in ("frontend_ms_per_window", "model_ms_per_window", "realtime_factor", "peak_rss_mb", "load_cold_ms",
                "load_cached_ms"):
        assert figures[key] > 0, key
    assert figures["window_seconds"] == 5.0
    expected_rtf = 5000.0 / (figures["frontend_ms_per_window"] + figures["model_ms_per_window"])
    assert abs(figures["realtime_factor"] - expected_rtf) <= 0.01 * expected_rtf
    assert figures["load_cached_ms"] < figures["load_cold_ms"], "the compiled wasm is cached"


def test_mic_source_through_the_capture_program(bundle_dir: Path, tmp_path: Path, env: dict[str, str]) -> None:
    """A stand-in for arecord (this machine has no sound card) with arecord's command line: it checks the
    arguments and plays raw S16_LE PCM from a file at the rate asked for, then exits like a lost device."""
    spec = open_bundle(bundle_dir).spec
    plan = [None, 1, 0]
    pcm = tmp_path / "capture.raw"
    pcm.write_bytes((tone_sequence(plan, spec=spec)[::3] * 32767).astype("<i2").tobytes())  # 32 kHz / 3
    recorder = tmp_path / "fake-arecord"
    recorder.write_text(f"#!{sys.executable}\nimport sys\n"
                        "assert sys.argv[1:] == ['-q', '-t', 'raw', '-f', 'S16_LE', '-c', '1', '-r', '10667',"
                        " '-D', 'plughw:1,0'], sys.argv\n"
                        f"sys.stdout.buffer.write(open({str(pcm)!r}, 'rb').read())\n")
    recorder.chmod(0o755)
    out = tmp_path / "out.jsonl"
    result = _edge("run", "--bundle", str(bundle_dir), "--source", "mic:plughw:1,0", "--mic-command", str(recorder),
                   "--mic-rate-hz", "10667", "--sink", f"jsonl:{out}", "--outbox", str(tmp_path / "outbox.sqlite"),
                   env=env)
    assert result.returncode == 0, result.stderr.decode()
    delivered = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((d["source"], d["offset_start_s"], d["ebird_code"]) for d in delivered) == _expected(
        bundle_dir, plan, name="mic:plughw:1,0")
