"""Sources: parsing, raw PCM (stdin/arecord) decoding and resampling, the arecord subprocess, the dir watcher.

The microphone test runs a real subprocess through the same code path as arecord: a small
program with arecord's command line that writes raw S16_LE PCM of a known tone to stdout
(this machine has no sound card).
"""

from __future__ import annotations

import io
import os
import stat
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from edge_bundle_factory import tone, write_wav

from edge_runtime.sources import (
    DoneFiles,
    SourceError,
    SourceSpec,
    arecord_command,
    mic_item,
    parse_source,
    pcm_chunks,
    watch_directory,
)

RATE = 32000
PCM16_ATOL = 1.0 / 2**15
"""One 16-bit quantisation step."""
RESAMPLED_TONE_ATOL = 0.01
"""A resampled tone matches the tone made at the target rate this closely (away from the edges)."""
POLL_SECONDS = 0.05


@pytest.mark.parametrize(("text", "expected"), [
    ("mic", SourceSpec("mic", "")),
    ("mic:hw:1,0", SourceSpec("mic", "hw:1,0")),
    ("file:/data/a.wav", SourceSpec("file", "/data/a.wav")),
    ("dir:incoming", SourceSpec("dir", "incoming")),
    ("stdin", SourceSpec("stdin", "")),
])
def test_parse_source(text: str, expected: SourceSpec) -> None:
    assert parse_source(text) == expected
    assert parse_source(text).text == text


@pytest.mark.parametrize(("text", "message"), [
    ("http://x", "must start with one of mic, file, dir, stdin"),
    ("file:", "give a path after 'file:'"),
    ("stdin:x", "stdin takes no argument"),
])
def test_parse_source_errors(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_source(text)


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1 - 2**-15) * 2**15).astype("<i2").tobytes()


def test_pcm_chunks_at_the_model_rate_are_exact(rng: np.random.Generator) -> None:
    samples = (0.2 * rng.standard_normal(RATE + 123)).astype(np.float32)
    chunks = list(pcm_chunks(io.BytesIO(_pcm16(samples)), rate_hz=RATE, sample_format="S16_LE", channels=1,
                             out_rate_hz=RATE, stop=threading.Event()))
    assert len(chunks) >= 2, "read in blocks, not all at once"
    np.testing.assert_allclose(np.concatenate(chunks), samples, atol=PCM16_ATOL)


def test_pcm_chunks_stereo_float_and_resampling() -> None:
    left = tone(1000.0, seconds=1.0, sample_rate_hz=16000)
    stereo = np.stack([left, left * 0.5], axis=1).astype("<f4").tobytes()  # interleaved FLOAT_LE
    out = np.concatenate(list(pcm_chunks(io.BytesIO(stereo), rate_hz=16000, sample_format="FLOAT_LE", channels=2,
                                         out_rate_hz=RATE, stop=threading.Event())))
    assert abs(out.size - 2 * left.size) <= 64
    expected = 0.75 * tone(1000.0, seconds=1.0, sample_rate_hz=RATE)
    middle = slice(2000, 30000)
    np.testing.assert_allclose(out[middle], expected[middle], atol=RESAMPLED_TONE_ATOL)


def test_pcm_chunks_stops_on_the_event() -> None:
    stop = threading.Event()
    stop.set()
    assert list(pcm_chunks(io.BytesIO(b"\0" * 64000), rate_hz=RATE, sample_format="S16_LE", channels=1,
                           out_rate_hz=RATE, stop=stop)) == []


def _fake_arecord(path: Path, *, exit_code: int = 0) -> Path:
    """A program with arecord's interface writing 1 s of a 2 kHz tone as raw S16_LE at the requested rate."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys, numpy as np\n"
        "args = sys.argv[1:]\n"
        "assert args[:8] == ['-q', '-t', 'raw', '-f', 'S16_LE', '-c', '1', '-r'], args\n"
        "rate = int(args[8])\n"
        "t = np.arange(rate) / rate\n"
        "sys.stdout.buffer.write((0.25 * np.sin(2 * np.pi * 2000 * t) * 32768).astype('<i2').tobytes())\n"
        f"sys.stderr.write('arecord: main:830: audio open error: No such device\\n' if {exit_code} else '')\n"
        f"sys.exit({exit_code})\n",
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_arecord_command_line() -> None:
    assert arecord_command(program="arecord", device="", rate_hz=32000) == [
        "arecord", "-q", "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", "32000"]
    assert arecord_command(program="arecord", device="plughw:1,0", rate_hz=48000)[-2:] == ["-D", "plughw:1,0"]


@pytest.mark.parametrize("capture_rate_hz", [RATE, 48000])
def test_mic_reads_the_capture_process(tmp_path: Path, capture_rate_hz: int) -> None:
    program = _fake_arecord(tmp_path / "arecord")
    item = mic_item(device="hw:1", program=str(program), rate_hz=capture_rate_hz, out_rate_hz=RATE,
                    stop=threading.Event())
    assert item.source == "mic:hw:1" and not item.is_file
    audio = np.concatenate(list(item.read_chunks()))
    assert abs(audio.size - RATE) <= 64
    expected = tone(2000.0, seconds=1.0, sample_rate_hz=RATE, amplitude=0.25)
    middle = slice(2000, 30000)
    np.testing.assert_allclose(audio[middle], expected[middle], atol=RESAMPLED_TONE_ATOL)


def test_mic_errors_are_clear(tmp_path: Path) -> None:
    item = mic_item(device="", program=str(tmp_path / "no-arecord"), rate_hz=RATE, out_rate_hz=RATE,
                    stop=threading.Event())
    with pytest.raises(SourceError, match="cannot start .*install alsa-utils"):
        list(item.read_chunks())
    failing = mic_item(device="", program=str(_fake_arecord(tmp_path / "arecord", exit_code=1)), rate_hz=RATE,
                       out_rate_hz=RATE, stop=threading.Event())
    with pytest.raises(SourceError, match="exited with 1: arecord: main:830: audio open error: No such device"):
        list(failing.read_chunks())


class _Watcher:
    """watch_directory running in a thread, collecting what it yields."""

    def __init__(self, directory: Path, done: DoneFiles) -> None:
        self.stop = threading.Event()
        self.items: list = []
        self._thread = threading.Thread(target=self._run, args=(directory, done), daemon=True)
        self._thread.start()

    def _run(self, directory: Path, done: DoneFiles) -> None:
        for item in watch_directory(directory, done=done, sample_rate_hz=RATE, poll_seconds=POLL_SECONDS,
                                    stop=self.stop):
            self.items.append(item)

    def names(self) -> list[str]:
        return [item.path.name for item in self.items]

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(POLL_SECONDS / 2)
    return predicate()


def test_dir_watcher_waits_for_stable_files_and_remembers_done_ones(tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    write_wav(incoming / "a.wav", tone(1000.0, seconds=0.5, sample_rate_hz=RATE), sample_rate_hz=RATE)
    (incoming / "notes.txt").write_text("not audio")
    done = DoneFiles(tmp_path / "state.sqlite")
    watcher = _Watcher(incoming, done)
    try:
        assert _wait_for(lambda: watcher.names() == ["a.wav"])
        # a file still being written (growing at every poll) is not taken
        growing = incoming / "b.wav"
        with open(growing, "wb") as f:
            for _ in range(8):
                f.write(os.urandom(1000))
                f.flush()
                time.sleep(POLL_SECONDS)
                assert "b.wav" not in watcher.names()
        assert _wait_for(lambda: "b.wav" in watcher.names())
        assert watcher.names().count("a.wav") == 1
        watcher.items[0].on_done(True)  # the pipeline calls this once a.wav's detections are committed
        assert watcher.items[0].source == f"dir:{incoming / 'a.wav'}"
    finally:
        watcher.close()
        done.close()
    # a restart: a.wav is remembered as done, b.wav (never marked) is offered again
    done = DoneFiles(tmp_path / "state.sqlite")
    watcher = _Watcher(incoming, done)
    try:
        assert _wait_for(lambda: "b.wav" in watcher.names())
        time.sleep(4 * POLL_SECONDS)
        assert "a.wav" not in watcher.names()
        assert done.count() == 1
    finally:
        watcher.close()
        done.close()


def test_dir_watcher_refuses_a_missing_directory(tmp_path: Path) -> None:
    done = DoneFiles(tmp_path / "state.sqlite")
    try:
        with pytest.raises(SourceError, match="not a directory"):
            next(watch_directory(tmp_path / "nope", done=done, sample_rate_hz=RATE, poll_seconds=POLL_SECONDS,
                                 stop=threading.Event()))
    finally:
        done.close()
