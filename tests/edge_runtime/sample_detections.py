"""Seeded, valid detections for the delivery tests (outbox, sinks, receiver, reliability)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from edge_runtime.detection import Detection, utc_iso

SPECIES = (
    ("eurrob1", "Erithacus rubecula", "European Robin"),
    ("eurbla", "Turdus merula", "Eurasian Blackbird"),
    ("comcha", "Fringilla coelebs", "Common Chaffinch"),
    ("grtti1", "Parus major", "Great Tit"),
)
WINDOW_SECONDS = 5.0
START = datetime(2026, 5, 1, 5, 30, tzinfo=UTC)


def make_detections(n: int, *, seed: int, device_id: str = "pi-test", first_index: int = 0) -> list[Detection]:
    """n detections with seeded ids and confidences; detection i lies in window i of one file source.

    The same (seed, index) always gives the same detection, so a restarted producer re-creates
    exactly the ids it made before.
    """
    detections = []
    for index in range(first_index, first_index + n):
        rng = random.Random(f"{seed}:{index}")
        code, scientific, common = SPECIES[index % len(SPECIES)]
        offset = index * WINDOW_SECONDS
        detections.append(
            Detection(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                device_id=device_id,
                source="file:/data/soundscape.wav",
                start_utc=utc_iso(START + timedelta(seconds=offset)),
                end_utc=utc_iso(START + timedelta(seconds=offset + WINDOW_SECONDS)),
                offset_start_s=offset,
                offset_end_s=offset + WINDOW_SECONDS,
                ebird_code=code,
                scientific_name=scientific,
                common_name=common,
                confidence=round(rng.uniform(0.5, 1.0), 6),
                model_id="birdlab-test-model",
                model_sha256=f"{rng.getrandbits(256):064x}",
                spec_hash="0123456789abcdef",
            )
        )
    return detections
