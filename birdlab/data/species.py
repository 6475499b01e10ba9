"""The species subset: the 24 BirdCLEF 2021 species that occur in Brittany.

`data/brittany_species.csv` (ebird_code, scientific_name, common_name, source) and
`data/birdclef2021_codes.txt` (the competition's 397 codes) carry their provenance in
data/README.md. The filter keeps recordings whose primary label is in the subset, drops
secondary labels outside it, and can require a minimum rating and a lat/lon box; in
soundscape rows, birds outside the subset count as 'nocall'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from birdlab import paths
from birdlab.data.birdclef2021 import Recording, SoundscapeRow, read_csv_rows
from birdlab.errors import DataFormatError

SPECIES_COLUMNS = ("ebird_code", "scientific_name", "common_name")


@dataclass(frozen=True)
class Species:
    ebird_code: str
    scientific_name: str
    common_name: str


@dataclass(frozen=True)
class LatLonBox:
    """A latitude/longitude box in degrees (inclusive)."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def contains(self, latitude: float | None, longitude: float | None) -> bool:
        if latitude is None or longitude is None:
            return False
        return self.lat_min <= latitude <= self.lat_max and self.lon_min <= longitude <= self.lon_max


BRITTANY_BOX = LatLonBox(lat_min=47.2, lat_max=48.95, lon_min=-5.2, lon_max=-1.0)
"""Brittany's four departments, roughly (for a --bbox default; not applied unless asked)."""


def birdclef2021_codes(path: Path | None = None) -> tuple[str, ...]:
    """The 397 eBird codes of BirdCLEF 2021, in the competition's order."""
    path = path or paths.BIRDCLEF2021_CODES_TXT
    return tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def load_species(path: str | Path | None = None) -> tuple[Species, ...]:
    """Read a species CSV (default: data/brittany_species.csv); order is the model's label order."""
    path = Path(path) if path else paths.BRITTANY_SPECIES_CSV
    species = []
    seen: set[str] = set()
    for row, raw in read_csv_rows(path, SPECIES_COLUMNS, not_found="species file not found"):
        code = raw["ebird_code"].strip()
        if not code:
            raise DataFormatError(path, row, "empty 'ebird_code'")
        if code in seen:
            raise DataFormatError(path, row, f"duplicate ebird_code {code!r}")
        seen.add(code)
        species.append(Species(code, raw["scientific_name"].strip(), raw["common_name"].strip()))
    if not species:
        raise DataFormatError(path, None, "no species listed")
    return tuple(species)


@dataclass(frozen=True)
class SpeciesFilter:
    """Restrict BirdCLEF 2021 records to a species subset."""

    codes: frozenset[str]
    min_rating: float | None = None
    """Keep recordings with rating >= this (BirdCLEF ratings are 0-5; 0 means unrated)."""
    bbox: LatLonBox | None = None
    """Keep recordings whose coordinates fall in this box."""

    @classmethod
    def for_species(cls, species: Iterable[Species], **kwargs: object) -> SpeciesFilter:
        return cls(codes=frozenset(s.ebird_code for s in species), **kwargs)  # type: ignore[arg-type]

    def keep(self, recording: Recording) -> bool:
        if recording.primary_label not in self.codes:
            return False
        if self.min_rating is not None and recording.rating < self.min_rating:
            return False
        return self.bbox is None or self.bbox.contains(recording.latitude, recording.longitude)

    def recordings(self, recordings: Iterable[Recording]) -> list[Recording]:
        """Kept recordings, with secondary labels outside the subset dropped."""
        return [
            dataclasses.replace(r, secondary_labels=tuple(c for c in r.secondary_labels if c in self.codes))
            for r in recordings
            if self.keep(r)
        ]

    def soundscape_row(self, row: SoundscapeRow) -> SoundscapeRow:
        """The row with birds outside the subset removed (all removed -> nocall)."""
        return dataclasses.replace(row, birds=tuple(c for c in row.birds if c in self.codes))

    def soundscape_rows(self, rows: Iterable[SoundscapeRow]) -> list[SoundscapeRow]:
        return [self.soundscape_row(r) for r in rows]
