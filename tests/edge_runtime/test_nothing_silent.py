"""Nothing silent: every input that cannot be analysed properly says so (a failed window or file, a counted and
logged repair), JSON logs are only JSON, a status file that cannot be written does not stop the run, and a sink URL
with credentials never reaches a log. Real `python -m edge_runtime` processes on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from edge_bundle_factory import session_bundle, tone_sequence, write_wav

from edge_runtime.audio import AudioError
from edge_runtime.bundle import open_bundle
from edge_runtime.file_stream import open_audio_stream

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 180
HUGE_SAMPLE = 1e30
NAN_SAMPLES = 1000
PASSWORD = "hunter2-secret"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_bundle(tmp_path_factory)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}
    return {**clean, "EDGE_RUNTIME_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def edge(*args: str, env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *args], input=stdin, capture_output=True,
                          env=env, cwd=REPO_ROOT, timeout=PROCESS_TIMEOUT_S)


def run_files(bundle_dir: Path, tmp_path: Path, env: dict[str, str], *files: Path,
              extra: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, dict]:
    sources = [a for f in files for a in ("--source", f"file:{f}")]
    result = edge("run", "--bundle", str(bundle_dir), *sources, "--sink", f"jsonl:{tmp_path / 'out.jsonl'}",
                  "--outbox", str(tmp_path / "outbox.sqlite"), "--status", str(tmp_path / "status.json"), *extra,
                  env=env)
    status = json.loads((tmp_path / "status.json").read_text()) if (tmp_path / "status.json").exists() else {}
    return result, status


def test_a_float_wav_at_1e30_fails_its_windows_with_a_reason(bundle_dir, tmp_path, env):
    spec = open_bundle(bundle_dir).spec
    loud = write_wav(tmp_path / "loud.wav", tone_sequence([0, 1], spec=spec) / 0.3 * HUGE_SAMPLE,
                     sample_rate_hz=spec.sample_rate_hz, subtype="FLOAT")
    result, status = run_files(bundle_dir, tmp_path, env, loud)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert (status["files_done"], status["files_failed"]) == (0, 1)
    assert "non-finite" in status["last_error"] and "loud.wav" in status["last_error"]


@pytest.mark.parametrize(("suffix", "fmt"), [(".ogg", "OGG"), (".mp3", "MP3")])
def test_a_truncated_ogg_or_mp3_is_reported_not_passed_as_complete(tmp_path, suffix, fmt, rng):
    rate = 32000
    samples = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(20 * rate) / rate)).astype(np.float32)
    whole = tmp_path / f"whole{suffix}"
    soundfile.write(str(whole), samples, rate, format=fmt)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert sum(b.size for b in open_audio_stream(whole, sample_rate_hz=rate).blocks) == samples.size
    with pytest.raises(AudioError, match="truncated"):
        for _ in open_audio_stream(cut, sample_rate_hz=rate).blocks:
            pass


def test_nan_in_stdin_float_pcm_is_counted_and_logged(bundle_dir, tmp_path, env):
    spec = open_bundle(bundle_dir).spec
    samples = tone_sequence([0, 1], spec=spec)
    samples[1000 : 1000 + NAN_SAMPLES] = np.nan
    result = edge("run", "--bundle", str(bundle_dir), "--source", "stdin", "--stdin-format", "FLOAT_LE",
                  "--sink", f"jsonl:{tmp_path / 'out.jsonl'}", "--outbox", str(tmp_path / "outbox.sqlite"),
                  "--status", str(tmp_path / "status.json"), env=env, stdin=samples.astype("<f4").tobytes())
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert f"{NAN_SAMPLES} NaN or infinite" in result.stderr.decode()
    assert json.loads((tmp_path / "status.json").read_text())["nonfinite_samples"] == NAN_SAMPLES


def test_json_logs_are_only_json_lines(bundle_dir, tmp_path, env):
    spec = open_bundle(bundle_dir).spec
    rate = spec.sample_rate_hz
    mp3 = tmp_path / "cut.mp3"
    soundfile.write(str(tmp_path / "whole.mp3"), tone_sequence([0, 1, 2], spec=spec), rate, format="MP3")
    mp3.write_bytes((tmp_path / "whole.mp3").read_bytes()[:-3000])  # mpg123 writes warnings for this to stderr
    wav = write_wav(tmp_path / "a.wav", tone_sequence([3], spec=spec), sample_rate_hz=rate)
    result, _ = run_files(bundle_dir, tmp_path, env, wav, mp3, extra=("--log-format", "json"))
    lines = result.stderr.decode().splitlines()
    assert lines
    for line in lines:
        record = json.loads(line)  # every line, the native libraries' included
        assert {"ts", "level", "logger", "message"} <= set(record)


def test_a_status_file_that_cannot_be_written_is_logged_and_the_run_goes_on(bundle_dir, tmp_path, env):
    spec = open_bundle(bundle_dir).spec
    wav = write_wav(tmp_path / "a.wav", tone_sequence([0, 1], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    (tmp_path / "blocker").write_text("a file where the status directory should be")
    result = edge("run", "--bundle", str(bundle_dir), "--source", f"file:{wav}",
                  "--sink", f"jsonl:{tmp_path / 'out.jsonl'}", "--outbox", str(tmp_path / "outbox.sqlite"),
                  "--status", str(tmp_path / "blocker" / "status.json"), env=env)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "cannot write the status file" in result.stderr.decode()
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("command", ["run", "flush"])
def test_a_sink_url_with_credentials_is_refused_and_never_logged(bundle_dir, tmp_path, env, command):
    spec = open_bundle(bundle_dir).spec
    wav = write_wav(tmp_path / "a.wav", tone_sequence([0], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    url = f"http://birder:{PASSWORD}@127.0.0.1:9/detections"
    outbox = tmp_path / "outbox.sqlite"
    if command == "run":
        result = edge("run", "--bundle", str(bundle_dir), "--source", f"file:{wav}", "--sink", url,
                      "--outbox", str(outbox), env=env)
    else:
        edge("run", "--bundle", str(bundle_dir), "--source", f"file:{wav}", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}",
             "--outbox", str(outbox), env=env)
        result = edge("flush", "--outbox", str(outbox), "--sink", url, "--deadline-s", "1", env=env)
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 2, output[-2000:]
    assert "user name or password" in output
    assert PASSWORD not in output
