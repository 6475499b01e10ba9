"""The BirdCLEF 2021 layout, read into typed records.

    <root>/train_metadata.csv
    <root>/train_short_audio/<primary_label>/<filename>
    <root>/train_soundscapes/<audio_id>_<site>_<date>.ogg
    <root>/train_soundscape_labels.csv

The embedded synthetic dataset (birdlab.data.synth) writes exactly this layout, so the real
data and the default take the same code path. Malformed rows raise DataFormatError,
which names the file and the row (1-based, header = row 1).
"""

from __future__ import annotations

import ast
import csv
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from birdlab.errors import DataFormatError

METADATA_CSV = "train_metadata.csv"
SOUNDSCAPE_LABELS_CSV = "train_soundscape_labels.csv"
SHORT_AUDIO_DIR = "train_short_audio"
SOUNDSCAPES_DIR = "train_soundscapes"
NOCALL = "nocall"
WINDOW_SECONDS = 5

METADATA_COLUMNS = (
    "primary_label",
    "secondary_labels",
    "type",
    "latitude",
    "longitude",
    "scientific_name",
    "common_name",
    "author",
    "date",
    "filename",
    "license",
    "rating",
    "time",
    "url",
)
SOUNDSCAPE_LABEL_COLUMNS = ("row_id", "site", "audio_id", "seconds", "birds")

_SOUNDSCAPE_NAME = re.compile(r"^(?P<audio_id>\d+)_(?P<site>[A-Za-z0-9]+)_(?P<date>\d{8})$")


@dataclass(frozen=True)
class Recording:
    """One row of train_metadata.csv; `audio_path` is where its audio lives."""

    primary_label: str
    secondary_labels: tuple[str, ...]
    type: tuple[str, ...]
    latitude: float | None
    longitude: float | None
    scientific_name: str
    common_name: str
    author: str
    date: str
    filename: str
    license: str
    rating: float
    time: str
    url: str
    audio_path: Path

    @property
    def labels(self) -> tuple[str, ...]:
        """Primary label first, then the secondary labels."""
        return (self.primary_label, *self.secondary_labels)


@dataclass(frozen=True)
class SoundscapeRow:
    """One scored 5-s window of a soundscape: `seconds` is the END of the window.

    `birds` is empty when the row is 'nocall'.
    """

    row_id: str
    site: str
    audio_id: int
    seconds: int
    birds: tuple[str, ...]

    @property
    def is_nocall(self) -> bool:
        return not self.birds

    @property
    def start_seconds(self) -> int:
        return self.seconds - WINDOW_SECONDS

    @property
    def birds_text(self) -> str:
        """The CSV form: space-separated codes, or 'nocall'."""
        return " ".join(self.birds) if self.birds else NOCALL


@dataclass(frozen=True)
class Soundscape:
    """One file of train_soundscapes/, named <audio_id>_<site>_<date>.ogg."""

    audio_id: int
    site: str
    date: str
    path: Path


def _parse_list(text: str, *, path: Path, row: int, column: str) -> tuple[str, ...]:
    """"['a', 'b']" (a Python list literal, as Kaggle writes it) -> ('a', 'b')."""
    text = text.strip()
    if not text:
        return ()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise DataFormatError(path, row, f"column '{column}' must be a list like \"['a', 'b']\", got {text!r}") from None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise DataFormatError(path, row, f"column '{column}' must be a list of strings, got {text!r}")
    return tuple(v.strip() for v in value if v.strip())


def _parse_float(text: str, *, path: Path, row: int, column: str, optional: bool = False) -> float | None:
    text = text.strip()
    if not text and optional:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(path, row, f"column '{column}' must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise DataFormatError(path, row, f"column '{column}' must be finite, got {text!r}")
    return value


_NOT_A_DATASET = ("file not found; is this a BirdCLEF 2021 directory? "
                  "(run `python -m birdlab data synth` or `python -m birdlab data download`)")


def read_csv_rows(path: Path, columns: tuple[str, ...], *,
                  not_found: str = _NOT_A_DATASET) -> list[tuple[int, dict[str, str]]]:
    """Rows as dicts with their 1-based row number (header = row 1); checks that every column is
    present and every row has every field, raising DataFormatError naming file and row."""
    if not path.is_file():
        raise DataFormatError(path, None, not_found)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFormatError(path, 1, f"missing column(s) {missing}; expected {list(columns)}")
        rows = []
        for i, raw in enumerate(reader, start=2):
            if None in raw or any(raw[c] is None for c in columns):
                raise DataFormatError(path, i, f"wrong number of fields (expected {len(reader.fieldnames or [])})")
            rows.append((i, raw))
        return rows


def read_metadata(path: Path, *, audio_root: Path) -> list[Recording]:
    """Parse train_metadata.csv; audio paths are audio_root/<primary_label>/<filename>."""
    recordings = []
    for row, raw in read_csv_rows(path, METADATA_COLUMNS):
        label = raw["primary_label"].strip()
        filename = raw["filename"].strip()
        if not label:
            raise DataFormatError(path, row, "empty 'primary_label'")
        if not filename:
            raise DataFormatError(path, row, "empty 'filename'")
        latitude = _parse_float(raw["latitude"], path=path, row=row, column="latitude", optional=True)
        longitude = _parse_float(raw["longitude"], path=path, row=row, column="longitude", optional=True)
        if latitude is not None and not -90 <= latitude <= 90:
            raise DataFormatError(path, row, f"latitude {latitude} is outside [-90, 90]")
        if longitude is not None and not -180 <= longitude <= 180:
            raise DataFormatError(path, row, f"longitude {longitude} is outside [-180, 180]")
        rating = _parse_float(raw["rating"], path=path, row=row, column="rating")
        recordings.append(
            Recording(
                primary_label=label,
                secondary_labels=_parse_list(raw["secondary_labels"], path=path, row=row, column="secondary_labels"),
                type=_parse_list(raw["type"], path=path, row=row, column="type"),
                latitude=latitude,
                longitude=longitude,
                scientific_name=raw["scientific_name"].strip(),
                common_name=raw["common_name"].strip(),
                author=raw["author"].strip(),
                date=raw["date"].strip(),
                filename=filename,
                license=raw["license"].strip(),
                rating=float(rating),  # type: ignore[arg-type]
                time=raw["time"].strip(),
                url=raw["url"].strip(),
                audio_path=audio_root / label / filename,
            )
        )
    return recordings


def read_soundscape_labels(path: Path) -> list[SoundscapeRow]:
    """Parse train_soundscape_labels.csv (birds: space-separated codes or 'nocall')."""
    rows = []
    for row, raw in read_csv_rows(path, SOUNDSCAPE_LABEL_COLUMNS):
        try:
            audio_id = int(raw["audio_id"])
            seconds = int(raw["seconds"])
        except ValueError:
            raise DataFormatError(path, row, f"audio_id and seconds must be integers, got "
                                             f"{raw['audio_id']!r}, {raw['seconds']!r}") from None
        if seconds < WINDOW_SECONDS or seconds % WINDOW_SECONDS:
            raise DataFormatError(path, row, f"seconds must be a positive multiple of {WINDOW_SECONDS} "
                                             f"(the end of a 5-s window), got {seconds}")
        birds_text = raw["birds"].strip()
        if not birds_text:
            raise DataFormatError(path, row, "empty 'birds' (use 'nocall' for a window without birds)")
        codes = tuple(birds_text.split())
        if NOCALL in codes and len(codes) > 1:
            raise DataFormatError(path, row, f"'nocall' together with species codes: {birds_text!r}")
        birds = () if codes == (NOCALL,) else codes
        rows.append(SoundscapeRow(row_id=raw["row_id"].strip(), site=raw["site"].strip(), audio_id=audio_id,
                                  seconds=seconds, birds=birds))
    return rows


def parse_soundscape_name(path: Path) -> Soundscape:
    """'<audio_id>_<site>_<date>.ogg' -> Soundscape; raises DataFormatError otherwise."""
    match = _SOUNDSCAPE_NAME.match(path.stem)
    if not match:
        raise DataFormatError(path, None, "soundscape file name must be <audio_id>_<site>_<YYYYMMDD>.ogg")
    return Soundscape(audio_id=int(match["audio_id"]), site=match["site"], date=match["date"], path=path)


class BirdCLEF2021:
    """A BirdCLEF 2021 directory (real, partial download, or synthetic)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def metadata_csv(self) -> Path:
        return self.root / METADATA_CSV

    @property
    def soundscape_labels_csv(self) -> Path:
        return self.root / SOUNDSCAPE_LABELS_CSV

    @cached_property
    def _recordings(self) -> tuple[Recording, ...]:
        return tuple(read_metadata(self.metadata_csv, audio_root=self.root / SHORT_AUDIO_DIR))

    def recordings(self) -> list[Recording]:
        """Every row of train_metadata.csv (whether or not its audio is present)."""
        return list(self._recordings)

    def soundscape_rows(self) -> list[SoundscapeRow]:
        """Every row of train_soundscape_labels.csv; [] when the file is absent."""
        if not self.soundscape_labels_csv.exists():
            return []
        return read_soundscape_labels(self.soundscape_labels_csv)

    def soundscapes(self) -> dict[int, Soundscape]:
        """Soundscape files by audio_id; {} when train_soundscapes/ is absent."""
        folder = self.root / SOUNDSCAPES_DIR
        if not folder.is_dir():
            return {}
        found = (parse_soundscape_name(p) for p in sorted(folder.iterdir()) if p.suffix.lower() == ".ogg")
        return {s.audio_id: s for s in found}
