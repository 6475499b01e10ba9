"""The detection threshold: its default and its valid range, checked in one place.

Read by the runtime's settings, the bundle's manifest reader and writer, and the lab's run directory, so a
threshold that one of them accepts, every other accepts too.
"""

from __future__ import annotations

import math

DEFAULT_THRESHOLD = 0.5
"""Used when training chose none (no validation data)."""


def check_threshold(value: object, *, where: str) -> float:
    """`value` as a float in the open interval (0, 1); ValueError naming `where` otherwise.

    where: what the value is, e.g. "manifest.json: 'threshold'" or "setting threshold".
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{where} must be a number in (0, 1), got {value!r}")
    return float(value)
