"""The teacher's compute per second of audio, measured the way the edge bench measures the student's.

One interpreter thread, seeded noise clips of the student's length at the lab's rate, resampling to the
teacher's rate and every teacher sub-window included, decoding excluded; the median of a few passes.
"""

from __future__ import annotations

import time

import numpy as np

from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.model import TeacherModel
from edge_runtime.spec import FeatureSpec


def teacher_cost(config: TeacherConfig, *, spec: FeatureSpec, n_clips: int = 8, repeats: int = 3) -> dict:
    """{teacher_ms_per_clip, teacher_ms_per_audio_second, timing}: median ms per spec.clip_seconds clip over
    `repeats` passes on `n_clips` seeded noise clips (one thread), and per second of audio."""
    model = TeacherModel.from_config(config)
    clips = (0.1 * np.random.default_rng(2021).standard_normal((n_clips, spec.clip_samples))).astype(np.float32)
    model.clip_probabilities(clips[0], sample_rate_hz=spec.sample_rate_hz)  # warm-up
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        for clip in clips:
            model.clip_probabilities(clip, sample_rate_hz=spec.sample_rate_hz)
        passes.append((time.perf_counter() - started) / n_clips)
    ms_per_clip = 1000 * float(np.median(passes))
    return {"teacher_ms_per_clip": ms_per_clip, "teacher_ms_per_audio_second": ms_per_clip / spec.clip_seconds,
            "timing": f"one interpreter thread, median of {repeats} passes over {n_clips} clips"}
