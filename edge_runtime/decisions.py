"""Decisions: which model outputs become detections, and the Detection objects they give.

Shared by the edge runtime and the lab (birdlab.agreement.lab_vs_edge), so both decide the same way:
a species is detected in a window when its confidence reaches its threshold (global or per
species), it passes the include/exclude lists, and it is among the window's top N.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from edge_runtime.bundle import Bundle, Label
from edge_runtime.detection import Detection, stable_detection_id, utc_iso
from edge_runtime.settings import EdgeSettings
from edge_runtime.sources import AudioItem
from edge_runtime.windows import Window


@dataclass(frozen=True)
class DetectionPolicy:
    """Which model outputs become detections."""

    threshold: float
    """Global confidence threshold: a species is reported when confidence >= its threshold."""
    species_thresholds: Mapping[str, float] = field(default_factory=dict)
    """Per-species thresholds (eBird code -> threshold) overriding the global one."""
    top_n: int = 0
    """Report at most this many species per window, highest confidence first (0 = no limit)."""
    include: frozenset[str] = frozenset()
    """When non-empty, only these eBird codes are reported."""
    exclude: frozenset[str] = frozenset()
    """These eBird codes are never reported."""

    @classmethod
    def from_settings(cls, settings: EdgeSettings, *, bundle: Bundle) -> DetectionPolicy:
        """The policy of `settings`; unknown eBird codes in any list are a SettingsError-style ValueError."""
        known = {label.ebird_code for label in bundle.labels}
        for name, codes in (("species_thresholds", [c for c, _ in settings.species_thresholds]),
                            ("include_species", settings.include_species),
                            ("exclude_species", settings.exclude_species)):
            unknown = sorted(set(codes) - known)
            if unknown:
                raise ValueError(f"setting {name}: {unknown} are not labels of the bundle (known: {sorted(known)})")
        return cls(
            threshold=settings.threshold if settings.threshold is not None else bundle.threshold,
            species_thresholds=settings.species_threshold_map(),
            top_n=settings.top_n,
            include=frozenset(settings.include_species),
            exclude=frozenset(settings.exclude_species),
        )

    def thresholds(self, labels: Sequence[Label]) -> np.ndarray:
        """float64 (n_labels,): the threshold of each output."""
        return np.array([self.species_thresholds.get(lb.ebird_code, self.threshold) for lb in labels], dtype=np.float64)

    def select(self, probabilities: np.ndarray, labels: Sequence[Label]) -> list[tuple[Label, float]]:
        """probabilities: (n_labels,) of one window. Returns [(label, confidence)], highest first."""
        probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if probabilities.size != len(labels):
            raise ValueError(f"model gave {probabilities.size} outputs for {len(labels)} labels")
        hits = np.flatnonzero(probabilities >= self.thresholds(labels))
        picks = [
            (labels[i], float(probabilities[i]))
            for i in map(int, hits)
            if (not self.include or labels[i].ebird_code in self.include) and labels[i].ebird_code not in self.exclude
        ]
        picks.sort(key=lambda pick: (-pick[1], pick[0].index))
        return picks[: self.top_n] if self.top_n else picks


def make_detections(picks: Iterable[tuple[Label, float]], *, item: AudioItem, window: Window, bundle: Bundle,
                    device_id: str, start_utc: datetime | None = None) -> list[Detection]:
    """Detection objects for the picks of one window (stable ids: a re-processed window gives the same ids).

    start_utc: the window's wall-clock start when measured (live capture); default item.start_utc + offset.
    """
    rate = bundle.spec.sample_rate_hz
    offset_start = window.start_sample / rate
    offset_end = (window.start_sample + window.valid_samples) / rate
    start = start_utc if start_utc is not None else item.start_utc + timedelta(seconds=offset_start)
    end = start + timedelta(seconds=offset_end - offset_start)
    window_key = f"{item.identity}@{window.start_sample}"
    return [
        Detection(
            id=stable_detection_id(device_id=device_id, source=item.source, window_key=window_key,
                                   ebird_code=label.ebird_code, model_sha256=bundle.model_sha256),
            device_id=device_id,
            source=item.source,
            start_utc=utc_iso(start),
            end_utc=utc_iso(end),
            offset_start_s=round(offset_start, 6),
            offset_end_s=round(offset_end, 6),
            ebird_code=label.ebird_code,
            scientific_name=label.scientific_name,
            common_name=label.common_name,
            confidence=round(confidence, 6),
            model_id=bundle.model_id,
            model_sha256=bundle.model_sha256,
            spec_hash=bundle.spec.spec_hash,
        )
        for label, confidence in picks
    ]
