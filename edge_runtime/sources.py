"""Audio sources: microphone (arecord), files, a watched directory, raw PCM on stdin.

Every source yields `AudioItem`s: one per file, one for a live stream. An item gives its
audio as chunks of mono float32 at the model's rate, so a microphone and a test WAV take
the same path through the windowing. Source strings (command line, TOML):

    mic[:ALSA_DEVICE]   `arecord -t raw -f S16_LE -c 1 -r RATE [-D DEVICE]`, resampled if RATE differs
    file:PATH           one audio file (wav/flac/ogg/mp3, any rate, any channel count)
    dir:PATH            audio files appearing in PATH (polled; a file is read once its size and
                        mtime held still for 2 polls and, for a WAV, its header declares the size it
                        has; FIFOs, sockets and devices are skipped with a warning; a file is analysed
                        once: one that changes afterwards is reported, not analysed again; done files
                        are remembered in the state db)
    stdin               raw interleaved PCM (--stdin-format, --stdin-rate-hz, --stdin-channels)
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

from edge_runtime.audio import AUDIO_SUFFIXES, AudioError, decode_pcm
from edge_runtime.bundle import sha256_file
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.file_stream import open_audio_stream

log = logging.getLogger("edge_runtime.sources")

SOURCE_KINDS = ("mic", "file", "dir", "stdin")
STREAM_CHUNK_SECONDS = 0.5
"""Live sources are read in blocks of this length."""
REPAIR_LOG_INTERVAL_S = 60.0
"""NaN or infinite samples in raw float PCM are logged at their first occurrence, then at most this often."""
STABLE_POLLS = 2
"""A dir: file is read once its (size, mtime) was the same for this many consecutive polls."""
STABLE_POLLS_INCOMPLETE = 30
"""A WAV whose header does not (yet) declare its size is read anyway once stable for this many polls
(a writer that never patches the header, or a truncated copy: the reader then reports it)."""
_WAV_HEADER_SCAN_BYTES = 4096
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


class SourceError(EdgeRuntimeError, ValueError):
    """A source string is invalid or a source cannot be started; the message says which and why."""


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source string."""

    kind: str
    """'mic', 'file', 'dir' or 'stdin'."""
    target: str
    """ALSA device (may be ''), file path or directory path; '' for stdin."""

    @property
    def text(self) -> str:
        return self.kind if not self.target else f"{self.kind}:{self.target}"

    @property
    def is_finite(self) -> bool:
        """True for file: (the run ends when all finite sources are done and no live source exists)."""
        return self.kind == "file"


def parse_source(text: str) -> SourceSpec:
    """'mic', 'mic:hw:1,0', 'file:PATH', 'dir:PATH', 'stdin' -> SourceSpec; raises SourceError."""
    kind, _, target = text.partition(":")
    if kind not in SOURCE_KINDS:
        raise SourceError(f"source {text!r}: must start with one of {', '.join(SOURCE_KINDS)} (e.g. file:rec.wav)")
    if kind in ("file", "dir") and not target:
        raise SourceError(f"source {text!r}: give a path after '{kind}:'")
    if kind == "stdin" and target:
        raise SourceError(f"source {text!r}: stdin takes no argument; use --stdin-format and --stdin-rate-hz")
    return SourceSpec(kind, target)


@dataclass
class SampleRepairs:
    """Samples of a live stream that could not be used as they came (counted, logged, replaced by 0)."""

    nonfinite: int = 0
    """NaN or infinite float PCM samples."""


@dataclass
class AudioItem:
    """One stream of audio to analyse: a file, or a live stream from start to stop."""

    source: str
    """The detection's `source`: 'file:/abs/x.wav', 'mic:hw:1', 'stdin'."""
    start_utc: datetime
    """Wall-clock time of the first sample."""
    identity: str
    """What makes the item unique for stable detection ids: a file's content hash, a stream's start time."""
    read_chunks: Callable[[], Iterator[np.ndarray]]
    """Returns the audio as mono float32 chunks at the model's rate; raises AudioError for a bad file."""
    path: Path | None = None
    """The file, for file and dir items."""
    on_done: Callable[[bool], None] | None = None
    """Called with ok=True/False once the item's detections are committed (dir: marks the file done)."""
    realtime: bool = False
    """True for a capture that delivers audio as it is recorded (mic): windows are timed by arrival."""
    repairs: SampleRepairs = field(default_factory=SampleRepairs)
    """What the reader had to repair in this item's samples (raw PCM streams)."""

    @property
    def is_file(self) -> bool:
        return self.path is not None


def file_identity(path: Path) -> str:
    """First 16 hex characters of the file's sha256: stable ids survive a restart mid-file."""
    try:
        return sha256_file(path)[:16]
    except OSError as exc:
        raise AudioError(path, f"cannot read ({exc.strerror})") from None


def file_item(path: Path, *, source: str, sample_rate_hz: int, on_done: Callable[[bool], None] | None = None) -> AudioItem:
    """An AudioItem for one file; decoding (and AudioError) happens when read_chunks() is called.

    Files at the model's rate are decoded in blocks (bounded memory; a fault found mid-file fails
    the file after its earlier windows were analysed); others are loaded and resampled whole.

    start_utc is the file's modification time minus its duration once decoded; until then
    the modification time (recorders write the file as they record, so mtime marks the end).
    """
    path = Path(path).absolute()
    try:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        mtime = datetime.now(UTC)
    item = AudioItem(source=source, start_utc=mtime, identity="", read_chunks=lambda: iter(()), path=path,
                     on_done=on_done)

    def read() -> Iterator[np.ndarray]:
        item.identity = file_identity(path)
        stream = open_audio_stream(path, sample_rate_hz=sample_rate_hz)
        item.start_utc = mtime - timedelta(seconds=stream.n_samples / sample_rate_hz)
        yield from stream.blocks

    item.read_chunks = read
    return item


class StreamResampler:
    """Chunked resampling for live streams (soxr.ResampleStream); identity when rates match."""

    def __init__(self, *, in_rate_hz: int, out_rate_hz: int) -> None:
        self._stream = None
        if in_rate_hz != out_rate_hz:
            try:
                import soxr
            except ImportError:
                raise SourceError(
                    f"audio arrives at {in_rate_hz} Hz and the model needs {out_rate_hz} Hz: install 'soxr' "
                    f"to resample, or capture at {out_rate_hz} Hz"
                ) from None
            self._stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality="HQ")

    def __call__(self, chunk: np.ndarray, *, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return chunk
        return self._stream.resample_chunk(chunk, last=last)


def _repair_nonfinite(chunk: np.ndarray, *, repairs: SampleRepairs, name: str, clock: list[float]) -> np.ndarray:
    """Replace NaN/inf samples by 0, count them, log the first occurrence and then at most every interval."""
    bad = int(np.count_nonzero(~np.isfinite(chunk)))
    if not bad:
        return chunk
    repairs.nonfinite += bad
    now = time.monotonic()
    if now - clock[0] >= REPAIR_LOG_INTERVAL_S:
        clock[0] = now
        log.warning("%s: %d NaN or infinite samples in this block replaced by 0 (%d so far); check the producer "
                    "of the PCM", name, bad, repairs.nonfinite)
    return np.nan_to_num(chunk, nan=0.0, posinf=0.0, neginf=0.0)


def pcm_chunks(stream: IO[bytes], *, rate_hz: int, sample_format: str, channels: int, out_rate_hz: int,
               stop: threading.Event, repairs: SampleRepairs | None = None,
               name: str = "stdin") -> Iterator[np.ndarray]:
    """Raw PCM from a byte stream -> mono float32 chunks at out_rate_hz, until EOF or `stop`.

    NaN or infinite float samples are replaced by 0, counted in `repairs` and logged (see _repair_nonfinite).
    """
    width = {"S16_LE": 2, "S32_LE": 4, "FLOAT_LE": 4}[sample_format] * channels
    block = width * max(1, int(rate_hz * STREAM_CHUNK_SECONDS))
    resample = StreamResampler(in_rate_hz=rate_hz, out_rate_hz=out_rate_hz)
    repairs = repairs if repairs is not None else SampleRepairs()
    clock = [float("-inf")]
    pending = b""
    while not stop.is_set():
        data = stream.read(block - len(pending))
        if not data:
            break
        pending += data
        if len(pending) < block:
            continue
        chunk = decode_pcm(pending, sample_format=sample_format, channels=channels)
        pending = b""
        if sample_format == "FLOAT_LE":
            chunk = _repair_nonfinite(chunk, repairs=repairs, name=name, clock=clock)
        yield resample(chunk)
    tail = decode_pcm(pending, sample_format=sample_format, channels=channels) if pending else np.zeros(0, np.float32)
    if sample_format == "FLOAT_LE":
        tail = _repair_nonfinite(tail, repairs=repairs, name=name, clock=clock)
    out = resample(tail, last=True)
    if out.size:
        yield out
    if repairs.nonfinite:
        log.warning("%s: %d NaN or infinite samples replaced by 0 in total", name, repairs.nonfinite)


def stdin_item(*, rate_hz: int, sample_format: str, channels: int, out_rate_hz: int, stop: threading.Event,
               stream: BinaryIO | None = None) -> AudioItem:
    """Raw PCM on stdin (or `stream`) as one live item."""
    start = datetime.now(UTC)
    source = stream if stream is not None else sys.stdin.buffer
    repairs = SampleRepairs()
    return AudioItem(
        source="stdin", start_utc=start, identity=start.isoformat(),
        read_chunks=lambda: pcm_chunks(source, rate_hz=rate_hz, sample_format=sample_format, channels=channels,
                                       out_rate_hz=out_rate_hz, stop=stop, repairs=repairs),
        repairs=repairs,
    )


def arecord_command(*, program: str, device: str, rate_hz: int) -> list[str]:
    """The capture command: `arecord -q -t raw -f S16_LE -c 1 -r RATE [-D DEVICE]`."""
    command = [program, "-q", "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", str(rate_hz)]
    if device:
        command += ["-D", device]
    return command


def mic_item(*, device: str, program: str, rate_hz: int, out_rate_hz: int, stop: threading.Event) -> AudioItem:
    """The microphone through arecord (a subprocess), as one live item; ends when arecord exits or on stop."""
    start = datetime.now(UTC)
    command = arecord_command(program=program, device=device, rate_hz=rate_hz)

    def read() -> Iterator[np.ndarray]:
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise SourceError(
                f"mic: cannot start {command[0]!r} ({exc.strerror}); install alsa-utils or set mic_command"
            ) from None
        assert process.stdout is not None  # stdout=PIPE
        try:
            yield from pcm_chunks(process.stdout, rate_hz=rate_hz, sample_format="S16_LE", channels=1,
                                  out_rate_hz=out_rate_hz, stop=stop)
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                _, err = process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                _, err = process.communicate()
            if process.returncode not in (0, -15) and not stop.is_set():
                message = err.decode("utf-8", "replace").strip().splitlines()
                raise SourceError(f"mic: {' '.join(command)} exited with {process.returncode}: "
                                  f"{message[-1] if message else 'no message'}")

    return AudioItem(source="mic" + (f":{device}" if device else ""), start_utc=start, identity=start.isoformat(),
                     read_chunks=read, realtime=True)


class DoneFiles:
    """SQLite record of dir: files already analysed, keyed by (path, size, mtime_ns).

    Used from one thread at a time (the dir watcher's), opened in that thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS done_files (path TEXT, size INTEGER, mtime_ns INTEGER, ok INTEGER, "
            "done_utc TEXT, PRIMARY KEY (path, size, mtime_ns))"
        )
        self._db.commit()
        self._lock = threading.Lock()

    def is_done(self, path: Path, size: int, mtime_ns: int) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM done_files WHERE path=? AND size=? AND mtime_ns=?",
                                   (str(path), size, mtime_ns)).fetchone()
        return row is not None

    def mark(self, path: Path, size: int, mtime_ns: int, *, ok: bool) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO done_files VALUES (?, ?, ?, ?, ?)",
                             (str(path), size, mtime_ns, int(ok), datetime.now(UTC).isoformat()))
            self._db.commit()

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM done_files").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def wav_declares_its_size(path: Path, size: int) -> bool:
    """False while a WAV file's header leaves its data size unknown (0 or 0xFFFFFFFF, as streaming writers
    leave it until they finish) or declares more data than the file holds; True otherwise (and for a file
    that is not a RIFF/WAVE file at all: the reader reports that)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_WAV_HEADER_SCAN_BYTES)
    except OSError:
        return True
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return True
    pos = 12
    while pos + 8 <= len(head):
        chunk_id = head[pos : pos + 4]
        (chunk_size,) = struct.unpack("<I", head[pos + 4 : pos + 8])
        if chunk_id == b"data":
            if head[:4] == b"RF64":
                return True  # sizes live in the ds64 chunk; stability decides
            return chunk_size not in _WAV_UNKNOWN_SIZES and pos + 8 + chunk_size <= size
        pos += 8 + chunk_size + (chunk_size & 1)
    return False  # no data chunk yet: the header is still being written


@dataclass
class _Candidate:
    """What the watcher knows of one file: its (size, mtime_ns), for how many polls, and its inode."""

    key: tuple[int, int]
    polls: int
    inode: int


def _scan(directory: Path, *, skipped: set[Path]) -> dict[Path, os.stat_result]:
    """Audio files (regular files only) in directory; others are logged once and skipped."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in AUDIO_SUFFIXES or path.name.startswith("."):
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            if path not in skipped:
                log.warning("%s: not a regular file (a FIFO, socket or device); skipped", path)
                skipped.add(path)
            continue
        found[path] = st
    return found


def watch_directory(directory: Path, *, done: DoneFiles, sample_rate_hz: int, poll_seconds: float,
                    stop: threading.Event) -> Iterator[AudioItem]:
    """Yield an item per new audio file in `directory` (not recursive), oldest first, until `stop`.

    A file is yielded once its (size, mtime) held still for STABLE_POLLS polls, it is a regular file,
    a WAV declares the size it has (or held still for STABLE_POLLS_INCOMPLETE polls), and it is not
    in `done`; the item's on_done marks it there once its detections are committed. A file that
    changes after it was yielded (same inode) is not yielded again: the change is logged once.
    """
    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise SourceError(f"dir:{directory}: not a directory; create it or fix the path")
    seen: dict[Path, _Candidate] = {}
    yielded: dict[Path, tuple[int, int, int]] = {}  # path -> (inode, size, mtime_ns) analysed in this run
    skipped: set[Path] = set()
    while not stop.is_set():
        current = _scan(directory, skipped=skipped)
        ready = []
        for path, st in current.items():
            key = (st.st_size, st.st_mtime_ns)
            previous = seen.get(path)
            polls = previous.polls + 1 if previous and previous.key == key and previous.inode == st.st_ino else 1
            seen[path] = _Candidate(key, polls, st.st_ino)
            if polls < STABLE_POLLS or done.is_done(path, *key):
                continue
            earlier = yielded.get(path)
            if earlier is not None and earlier[0] == st.st_ino:
                if earlier[1:] != key and path not in skipped:
                    log.warning("%s: changed after it was analysed; not analysed again (let writers write "
                                "elsewhere and move finished files in)", path)
                    skipped.add(path)
                continue
            if polls < STABLE_POLLS_INCOMPLETE and not wav_declares_its_size(path, st.st_size):
                continue  # still being written
            ready.append((key[1], path, key, st.st_ino))
        for path in set(seen) - set(current):
            del seen[path]
        for _, path, key, inode in sorted(ready):
            yielded[path] = (inode, *key)
            skipped.discard(path)

            def mark(ok: bool, path: Path = path, key: tuple[int, int] = key) -> None:
                done.mark(path, *key, ok=ok)

            log.info("new file %s", path)
            yield file_item(path, source=f"dir:{path}", sample_rate_hz=sample_rate_hz, on_done=mark)
            if stop.is_set():
                return
        stop.wait(poll_seconds)


def items_of(spec: SourceSpec, *, sample_rate_hz: int, stop: threading.Event, done: DoneFiles | None,
             poll_seconds: float = 2.0, stdin_rate_hz: int | None = None, stdin_format: str = "S16_LE",
             stdin_channels: int = 1, mic_rate_hz: int | None = None, mic_command: str = "arecord",
             stdin_stream: BinaryIO | None = None) -> Iterator[AudioItem]:
    """The AudioItems of one source (sample_rate_hz = the model's rate)."""
    if spec.kind == "file":
        yield file_item(Path(spec.target), source=f"file:{Path(spec.target).absolute()}", sample_rate_hz=sample_rate_hz)
    elif spec.kind == "dir":
        if done is None:
            raise SourceError("dir: sources need a state database")
        yield from watch_directory(Path(spec.target), done=done, sample_rate_hz=sample_rate_hz,
                                   poll_seconds=poll_seconds, stop=stop)
    elif spec.kind == "stdin":
        yield stdin_item(rate_hz=stdin_rate_hz or sample_rate_hz, sample_format=stdin_format, channels=stdin_channels,
                         out_rate_hz=sample_rate_hz, stop=stop, stream=stdin_stream)
    else:
        yield mic_item(device=spec.target, program=mic_command, rate_hz=mic_rate_hz or sample_rate_hz,
                       out_rate_hz=sample_rate_hz, stop=stop)

