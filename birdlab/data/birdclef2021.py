"""The BirdCLEF 2021 layout, read into typed records.

    <root>/train_metadata.csv
    <root>/train_short_audio/<primary_label>/<filename>
    <root>/train_soundscapes/<audio_id>_<site>_<date>.ogg
    <root>/train_soundscape_labels.csv

The embedded synthetic dataset (birdlab.data.synth) writes exactly this layout, so the real
data and the default take the same code path. Malformed rows raise DataFormatError,
which names the file and the row (1-based, header = row 1).

A soundscape is identified by its soundscape id '<audio_id>_<site>' (the prefix of its rows'
row_id), never by audio_id alone: two sites may use the same audio_id. A file in
train_soundscapes/ that is not named <audio_id>_<site>_<YYYYMMDD>.ogg is skipped with a
warning; metadata rows whose audio file is missing are counted and named (`missing_audio`).
"""

from __future__ import annotations

import ast
import csv
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from birdlab.errors import DataFormatError, UserError

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
NAMES_SHOWN = 5
"""How many file names a warning or report lists before '... and N more'."""
log = logging.getLogger(__name__)


def soundscape_id(*, audio_id: int, site: str) -> str:
    """'<audio_id>_<site>', e.g. '10534_SSW': what identifies a soundscape (audio ids repeat across sites)."""
    return f"{audio_id}_{site}"


def resolve_soundscape_id(value: int | str, *, known: Iterable[str]) -> str | None:
    """The soundscape id among `known` that `value` names, or None when it names none.

    value: a soundscape id, or (as run files written before soundscape ids hold) a bare audio_id, int or
    digits, which names the known soundscape with that audio_id. Raises ValueError when two sites share it.
    """
    known = set(known)
    if str(value) in known:
        return str(value)
    if isinstance(value, int) or str(value).isdigit():
        matches = sorted(k for k in known if k.split("_", 1)[0] == str(int(value)))
        if len(matches) > 1:
            raise ValueError(f"audio_id {value} names {len(matches)} soundscapes ({', '.join(matches)})")
        return matches[0] if matches else None
    return None


def _names_text(names: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" ... and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


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
    def soundscape_id(self) -> str:
        """'<audio_id>_<site>': the soundscape this row belongs to."""
        return soundscape_id(audio_id=self.audio_id, site=self.site)

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

    @property
    def soundscape_id(self) -> str:
        """'<audio_id>_<site>', as its label rows name it."""
        return soundscape_id(audio_id=self.audio_id, site=self.site)


@dataclass(frozen=True)
class MissingAudio:
    """Metadata rows whose audio file is absent: counted and named, never dropped silently."""

    listed: int
    """Recordings looked at (metadata rows)."""
    missing: tuple[str, ...]
    """'<primary_label>/<filename>' of each recording without its file, in metadata order."""

    @property
    def count(self) -> int:
        return len(self.missing)

    def describe(self) -> str:
        """One line for a run summary: the count and the first NAMES_SHOWN names ('' when none is missing)."""
        if not self.missing:
            return ""
        return (f"{self.count} of {self.listed} recording(s) listed in {METADATA_CSV} have no audio file under "
                f"{SHORT_AUDIO_DIR}/ and were left out: {_names_text(self.missing)}")

    def to_dict(self) -> dict[str, object]:
        """{'listed', 'missing' (the count), 'first_missing' (up to NAMES_SHOWN names)} for a JSON summary."""
        return {"listed": self.listed, "missing": self.count, "first_missing": list(self.missing[:NAMES_SHOWN])}


def find_missing_audio(recordings: Iterable[Recording]) -> MissingAudio:
    """MissingAudio of these recordings (e.g. those of a species subset): which audio_path is not a file."""
    recordings = list(recordings)
    return MissingAudio(listed=len(recordings), missing=tuple(f"{r.primary_label}/{r.filename}" for r in recordings
                                                            if not r.audio_path.is_file()))


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

    @property
    def missing_audio(self) -> MissingAudio:
        """Rows of train_metadata.csv whose audio file is absent (over all rows; for a species subset use
        find_missing_audio(subset.recordings(dataset.recordings())))."""
        return find_missing_audio(self._recordings)

    @property
    def stray_soundscape_files(self) -> tuple[Path, ...]:
        """Files in train_soundscapes/ that are not named <audio_id>_<site>_<YYYYMMDD>.ogg (skipped)."""
        return self._soundscape_files[1]

    def soundscapes(self) -> dict[str, Soundscape]:
        """Soundscape files by soundscape id ('<audio_id>_<site>'); {} when train_soundscapes/ is absent.

        Stray files (stray_soundscape_files) are skipped with a logged warning; of two files with the same
        audio_id and site (different dates) the first by name is kept and the other reported.
        """
        found, stray = self._soundscape_files
        if stray:
            log.warning("%s: skipped %d file(s) not named <audio_id>_<site>_<YYYYMMDD>.ogg: %s",
                        self.root / SOUNDSCAPES_DIR, len(stray), _names_text([p.name for p in stray]))
        by_id: dict[str, Soundscape] = {}
        for scape in found:
            kept = by_id.setdefault(scape.soundscape_id, scape)
            if kept is not scape:
                log.warning("%s: %s is skipped, %s already holds soundscape %s", self.root / SOUNDSCAPES_DIR,
                            scape.path.name, kept.path.name, scape.soundscape_id)
        return by_id

    @property
    def _soundscape_files(self) -> tuple[tuple[Soundscape, ...], tuple[Path, ...]]:
        """(well-named soundscapes, stray files) of train_soundscapes/, sorted by name."""
        folder = self.root / SOUNDSCAPES_DIR
        if not folder.is_dir():
            return (), ()
        found, stray = [], []
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            match = _SOUNDSCAPE_NAME.match(path.stem)
            if match and path.suffix.lower() == ".ogg":
                found.append(parse_soundscape_name(path))
            else:
                stray.append(path)
        return tuple(found), tuple(stray)


class DatasetError(UserError):
    """Dataset roots that cannot be read together; the message names both places and what to do."""


class MergedDatasets:
    """Several BirdCLEF 2021 roots read as one (`train --data A --data B`), the way BirdCLEF winners added external
    xeno-canto data to the competition's: recordings and soundscapes of every root, in root order.

    A recording ('<primary_label>/<filename>') or a soundscape id present in two roots is an error naming both:
    the run's split names them by those keys, so they must be unique.
    """

    def __init__(self, roots: Sequence[str | Path]) -> None:
        if not roots:
            raise DatasetError("no dataset root given")
        self.parts = tuple(BirdCLEF2021(r) for r in roots)

    @property
    def root(self) -> Path:
        """The first root (for messages); `roots` lists them all."""
        return self.parts[0].root

    @property
    def roots(self) -> tuple[Path, ...]:
        return tuple(part.root for part in self.parts)

    def recordings(self) -> list[Recording]:
        seen: dict[str, Path] = {}
        out = []
        for part in self.parts:
            for rec in part.recordings():
                key = f"{rec.primary_label}/{rec.filename}"
                if key in seen:
                    raise DatasetError(f"{key} is in both {seen[key]} and {part.root}; keep it in one root "
                                       "(data import names files by their xeno-canto id, so this is the same recording)")
                seen[key] = part.root
                out.append(rec)
        return out

    def soundscape_rows(self) -> list[SoundscapeRow]:
        return [row for part in self.parts for row in part.soundscape_rows()]

    def soundscapes(self) -> dict[str, Soundscape]:
        merged: dict[str, Soundscape] = {}
        for part in self.parts:
            for scape_id, scape in part.soundscapes().items():
                if scape_id in merged:
                    raise DatasetError(f"soundscape {scape_id} is in both {merged[scape_id].path.parent} and "
                                       f"{scape.path.parent}; rename one (<audio_id>_<site>_<date>.ogg) or drop a root")
                merged[scape_id] = scape
        return merged

    @property
    def missing_audio(self) -> MissingAudio:
        return find_missing_audio(self.recordings())


def open_dataset(roots: str | Path | Sequence[str | Path]) -> BirdCLEF2021 | MergedDatasets:
    """One root as BirdCLEF2021, several as MergedDatasets."""
    paths = (Path(roots),) if isinstance(roots, (str, Path)) else tuple(Path(r) for r in roots)
    return BirdCLEF2021(paths[0]) if len(paths) == 1 else MergedDatasets(paths)


Dataset = BirdCLEF2021 | MergedDatasets
"""What the training and evaluation stages read: one root or several."""
DataDirs = str | Path | Sequence[str | Path]
"""One dataset root or several (`train --data A --data B`)."""


def as_roots(data_dirs: DataDirs) -> tuple[Path, ...]:
    """`data_dirs` as a tuple of paths (a single root is a tuple of one)."""
    return (Path(data_dirs),) if isinstance(data_dirs, (str, Path)) else tuple(Path(d) for d in data_dirs)
