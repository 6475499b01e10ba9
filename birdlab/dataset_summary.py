"""A per-species summary of a BirdCLEF 2021 directory: the table the demo prints."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from birdlab.data import BirdCLEF2021


@dataclass(frozen=True)
class SpeciesRow:
    ebird_code: str
    common_name: str
    recordings: int
    seconds: float
    soundscape_rows: int


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    species: tuple[SpeciesRow, ...]
    soundscapes: int
    soundscape_rows: int
    nocall_rows: int
    missing_audio: int

    @property
    def recordings(self) -> int:
        return sum(s.recordings for s in self.species)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.species)

    def to_text(self) -> str:
        """A fixed-width table: species, recordings, seconds, soundscape rows; then totals."""
        lines = [f"dataset: {self.root}",
                 f"{'species':<10} {'common name':<26} {'recordings':>10} {'seconds':>9} {'soundscape rows':>15}"]
        for s in self.species:
            lines.append(f"{s.ebird_code:<10} {s.common_name[:26]:<26} {s.recordings:>10} {s.seconds:>9.1f} "
                         f"{s.soundscape_rows:>15}")
        lines.append(f"{'total':<10} {len(self.species):<26} {self.recordings:>10} {self.seconds:>9.1f} "
                     f"{self.soundscape_rows:>15}")
        lines.append(f"soundscapes: {self.soundscapes} files, {self.soundscape_rows} scored rows, "
                     f"{self.nocall_rows} nocall")
        if self.missing_audio:
            lines.append(f"warning: {self.missing_audio} recording(s) listed in the metadata have no audio file")
        return "\n".join(lines)


def _duration_s(path: Path) -> float | None:
    try:
        import soundfile

        return float(soundfile.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - a summary never fails on one unreadable file
        return None


def summarize_dataset(root: str | Path) -> DatasetSummary:
    """Count recordings, audio seconds and soundscape rows per primary label."""
    dataset = BirdCLEF2021(root)
    recordings = dataset.recordings()
    rows = dataset.soundscape_rows()
    per_rows = Counter(code for row in rows for code in row.birds)
    counts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    names: dict[str, str] = {}
    missing = 0
    for rec in recordings:
        counts[rec.primary_label] += 1
        names.setdefault(rec.primary_label, rec.common_name)
        duration = _duration_s(rec.audio_path) if rec.audio_path.exists() else None
        if duration is None:
            missing += 1
        else:
            seconds[rec.primary_label] += duration
    species = tuple(SpeciesRow(code, names[code], counts[code], seconds[code], per_rows.get(code, 0))
                    for code in sorted(counts))
    return DatasetSummary(root=Path(root), species=species, soundscapes=len(dataset.soundscapes()),
                          soundscape_rows=len(rows), nocall_rows=sum(1 for r in rows if r.is_nocall),
                          missing_audio=missing)
