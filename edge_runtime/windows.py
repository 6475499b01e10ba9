"""Sliding windows over a sample stream: fixed length, configurable overlap, last one zero-padded.

Window k covers samples [k * step, k * step + clip) of its source. The stream may arrive
in chunks of any size (a microphone) or all at once (a file); both give the same windows.
A trailing partial window is emitted, zero-padded, when it holds samples that no earlier
window covered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """One model input window of a source."""

    index: int
    """0-based window number within the source."""
    start_sample: int
    """Offset of the first sample within the source, in samples at the spec's rate."""
    valid_samples: int
    """Samples that came from the source; the rest (clip - valid) are zero padding."""
    samples: np.ndarray
    """float32, shape (clip_samples,)."""


def step_samples_for(*, clip_samples: int, overlap_seconds: float, sample_rate_hz: int) -> int:
    """Hop between window starts: clip minus overlap, in samples; raises ValueError when not positive."""
    overlap = int(round(overlap_seconds * sample_rate_hz))
    if overlap < 0 or overlap >= clip_samples:
        raise ValueError(
            f"overlap_seconds={overlap_seconds} must be >= 0 and shorter than the clip "
            f"({clip_samples / sample_rate_hz:g} s)"
        )
    return clip_samples - overlap


class SlidingWindows:
    """Incremental windowing: push() chunks as they arrive, finish() at end of stream.

    clip_samples: window length; step_samples: hop between window starts (<= clip_samples).
    """

    def __init__(self, *, clip_samples: int, step_samples: int) -> None:
        if clip_samples <= 0 or not 0 < step_samples <= clip_samples:
            raise ValueError(f"need clip_samples > 0 and 0 < step_samples <= clip_samples, got {clip_samples}, {step_samples}")
        self.clip_samples = clip_samples
        self.step_samples = step_samples
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # source offset of _buffer[0]
        self._next_index = 0
        self._covered_until = 0  # source offset just after the last emitted window's valid samples

    def push(self, chunk: np.ndarray) -> list[Window]:
        """Add float32 samples, shape (n,); return the windows that became complete."""
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, chunk]) if self._buffer.size else chunk
        out = []
        while True:
            start = self._next_index * self.step_samples
            begin = start - self._buffer_start
            if begin + self.clip_samples > self._buffer.size:
                break
            out.append(self._emit(start, self._buffer[begin : begin + self.clip_samples], self.clip_samples))
            self._next_index += 1
        drop = self._next_index * self.step_samples - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[min(drop, self._buffer.size) :]
            self._buffer_start += drop
        return out

    def finish(self) -> list[Window]:
        """End of stream: return the last, zero-padded window if it holds uncovered samples."""
        end = self._buffer_start + self._buffer.size
        start = self._next_index * self.step_samples
        if end <= self._covered_until or end <= start:
            return []
        begin = start - self._buffer_start
        valid = self._buffer[begin:]
        padded = np.zeros(self.clip_samples, dtype=np.float32)
        padded[: valid.size] = valid
        window = self._emit(start, padded, valid.size)
        self._next_index += 1
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = end
        return [window]

    def _emit(self, start: int, samples: np.ndarray, valid: int) -> Window:
        self._covered_until = start + valid
        return Window(index=self._next_index, start_sample=start, valid_samples=valid,
                      samples=np.array(samples, dtype=np.float32, copy=True))


def sliding_windows(chunks: Iterable[np.ndarray], *, clip_samples: int, step_samples: int) -> Iterator[Window]:
    """All windows of a chunked stream (a single array is one chunk); see SlidingWindows."""
    windower = SlidingWindows(clip_samples=clip_samples, step_samples=step_samples)
    for chunk in chunks:
        yield from windower.push(chunk)
    yield from windower.finish()


def window_count(n_samples: int, *, clip_samples: int, step_samples: int) -> int:
    """Number of windows sliding_windows yields for n_samples samples."""
    if n_samples <= 0:
        return 0
    if n_samples <= clip_samples:
        return 1
    full = 1 + (n_samples - clip_samples) // step_samples
    covered = (full - 1) * step_samples + clip_samples
    return full + (1 if covered < n_samples else 0)
