"""The tests' tiny teacher: birdlab.teacher.tiny (moved into the library for notebook 06)."""

from birdlab.teacher.tiny import (  # noqa: F401
    DISTRACTOR_LABELS,
    TEACHER_SAMPLE_RATE_HZ,
    TEACHER_WINDOW_SAMPLES,
    TONE_LABELS,
    TONES_HZ,
    TinyTeacher,
    build_tiny_teacher,
    reference_kernel,
    synth_teacher,
    tone_teacher,
)
