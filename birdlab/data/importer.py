"""Import labelled recordings into the BirdCLEF 2021 layout (`python -m birdlab data import`).

The source is a folder `<label>/<file>` (the label is an eBird code or a scientific name) or a CSV
with one row per file (`path`, `scientific_name`; optional `code`, `secondary_labels`, `author`,
`licence`, `url`, `type`, `common_name`, `date`, `time`, `latitude`, `longitude`, `rating`,
`sha256`; other column names are mapped by IMPORT_COLUMN_ALIASES or `columns=`). Each file is
decoded with edge_runtime.audio.load_audio at 32 kHz (mono) and written as OGG Vorbis to
`<dest>/train_short_audio/<code>/<filename>`, with a row in `<dest>/train_metadata.csv` in the
real format. Also written: `<dest>/species.csv` (every species of the root, for
`train --species`), `<dest>/import_ledger.csv` (source sha256 -> imported file: a re-run skips
what is already there) and `<dest>/import_report.json` (this run: imported, skipped, failed).

Codes: a species in the species CSV (default data/brittany_species.csv) gets its code there; an
eBird code of the 397 BirdCLEF 2021 codes is kept; any other species gets a code derived from its
scientific name at species level, `genus_epithet` in lower case (`Larus smithsonianus` ->
`larus_smithsonianus`). eBird codes never hold `_`, so a derived code never collides with one.
File names keep the xeno-canto id (`XC123456.ogg`, as in the Kaggle data, so two roots made from
the same recording agree and different recordings never collide); other files are named
`<stem>-<sha256[:8]>.ogg`.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from birdlab.data.birdclef2021 import METADATA_COLUMNS, METADATA_CSV, SHORT_AUDIO_DIR, read_csv_rows
from birdlab.data.ogg import write_ogg_vorbis
from birdlab.data.species import SPECIES_COLUMNS, Species, birdclef2021_codes, load_species
from birdlab.errors import UserError
from edge_runtime.audio import AUDIO_SUFFIXES, AudioError, load_audio

IMPORT_SAMPLE_RATE_HZ = 32000
"""BirdCLEF 2021's rate: every imported file is decoded (and resampled) to it, mono."""
SPECIES_CSV = "species.csv"
LEDGER_CSV = "import_ledger.csv"
REPORT_JSON = "import_report.json"
LEDGER_COLUMNS = ("source_sha256", "primary_label", "filename", "source")
SOURCE_CSV_NAMES = ("SOURCES.csv", "sources.csv", "import.csv")
"""A --from folder holding one of these is read as a CSV source, not as <label>/<file>."""
UNKNOWN_DATE = "0000-00-00"
"""xeno-canto's (and the Kaggle metadata's) date for 'not known'."""
UNKNOWN_TIME = "?"
UNRATED = 0.0
"""BirdCLEF 2021 ratings are 0.5-5; 0.0 means unrated."""

IMPORT_COLUMNS = ("path", "scientific_name", "code", "secondary_labels", "author", "licence", "url", "type",
                  "common_name", "date", "time", "latitude", "longitude", "rating", "sha256")
IMPORT_COLUMN_ALIASES = {
    "path": ("file", "filename"),
    "scientific_name": ("species_scientific", "species"),
    "code": ("ebird_code", "primary_label", "brittany_birdclef2021_code"),
    "author": ("recordist",),
    "licence": ("license",),
    "url": ("source_url",),
    "type": ("kind",),
}
"""Other names a CSV column may have (e.g. ../shared/real-audio/species/SOURCES.csv's)."""

DERIVED_CODE = re.compile(r"^[a-z]+_[a-z-]+$")
_XC_URL = re.compile(r"xeno-canto\.org/(\d+)", re.IGNORECASE)
_XC_NAME = re.compile(r"(?:^|[^A-Za-z0-9])XC(\d+)(?![0-9])", re.IGNORECASE)
_NAME_WORD = re.compile(r"^[A-Za-z][A-Za-z-]*$")


class LabelError(ValueError):
    """A label that names no species; the message says what to do (the file is reported as failed)."""


def species_level_name(text: str) -> str:
    """'Larus smithsonianus (American Herring Gull)' -> 'Larus smithsonianus'; subspecies dropped.

    Raises LabelError when the text is not 'Genus epithet [...]'.
    """
    words = re.sub(r"\(.*?\)", " ", text.replace("_", " ")).split()
    if len(words) < 2 or not all(_NAME_WORD.match(w) for w in words[:2]):
        raise LabelError(f"{text!r} is not a scientific name ('Genus epithet', e.g. 'Erithacus rubecula')")
    return f"{words[0].capitalize()} {words[1].lower()}"


def derived_code(scientific_name: str) -> str:
    """The code of a species outside the species CSV and the 397: 'Genus epithet' -> 'genus_epithet'."""
    return species_level_name(scientific_name).lower().replace(" ", "_")


@dataclass(frozen=True)
class SpeciesResolver:
    """Turns a label (code and/or scientific name) into a Species with its code."""

    listed: tuple[Species, ...]
    """The species CSV: its codes and names win."""
    birdclef_codes: frozenset[str]
    """The 397 codes of BirdCLEF 2021 (accepted as labels even when not listed)."""

    @classmethod
    def load(cls, species_csv: Path | None = None) -> SpeciesResolver:
        return cls(load_species(species_csv), frozenset(birdclef2021_codes()))

    def resolve(self, *, code: str = "", scientific_name: str = "") -> Species:
        by_code = {s.ebird_code: s for s in self.listed}
        code = code.strip()
        if code in by_code:
            return by_code[code]
        if code and code not in self.birdclef_codes and not DERIVED_CODE.match(code):
            raise LabelError(f"unknown code {code!r}: not in the species CSV nor the 397 BirdCLEF 2021 codes; "
                             "list it in a species CSV (--species) or label the file by its scientific name")
        name = species_level_name(scientific_name) if scientific_name.strip() else ""
        if code:
            return Species(code, name, "")
        if not name:
            raise LabelError("no code and no scientific name")
        by_name = {s.scientific_name.lower(): s for s in self.listed if s.scientific_name}
        return by_name.get(name.lower()) or Species(derived_code(name), name, "")

    def resolve_folder(self, label: str) -> Species:
        """A folder label: a code (listed, one of the 397, or derived) or a scientific name."""
        if label in self.birdclef_codes or any(s.ebird_code == label for s in self.listed):
            return self.resolve(code=label)
        if DERIVED_CODE.match(label) or " " in label or "_" in label:
            return self.resolve(scientific_name=label)
        raise LabelError(f"folder {label!r} is neither a known eBird code nor a scientific name; rename it "
                         "'Genus epithet' (or Genus_epithet), or list its code in a species CSV (--species)")


@dataclass(frozen=True)
class SourceRecording:
    """One labelled file to import; the fields become its train_metadata.csv row."""

    path: Path
    species: Species
    secondary_labels: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    author: str = ""
    licence: str = ""
    url: str = ""
    date: str = UNKNOWN_DATE
    time: str = UNKNOWN_TIME
    latitude: str = ""
    longitude: str = ""
    rating: float = UNRATED
    expected_sha256: str = ""
    """From the CSV's sha256 column: a file whose bytes differ is reported, not imported."""


@dataclass
class ImportReport:
    """What one import did: one entry per source file."""

    source: str
    dest: str
    imported: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    species: dict[str, int] = field(default_factory=dict)
    """Files per code in the whole root after the import."""

    def to_dict(self) -> dict[str, object]:
        counts = {"imported": len(self.imported), "skipped": len(self.skipped), "failed": len(self.failed)}
        return {**asdict(self), "counts": counts, "sample_rate_hz": IMPORT_SAMPLE_RATE_HZ,
                "format": "OGG Vorbis, mono", "no_licence": [e["filename"] for e in self.imported if not e["licence"]]}

    def describe(self) -> str:
        """The summary line (plus one line per failed file)."""
        head = (f"imported {len(self.imported)}, skipped {len(self.skipped)}, failed {len(self.failed)} "
                f"-> {self.dest} ({len(self.species)} species; {SPECIES_CSV}, {REPORT_JSON})")
        return "\n".join([head] + [f"  failed {e['source']}: {e['reason']}" for e in self.failed])


def _column_names(fieldnames: list[str], columns: dict[str, str]) -> dict[str, str]:
    """canonical column -> the CSV's column name, for the columns this CSV has."""
    found = {}
    for name in IMPORT_COLUMNS:
        for candidate in (columns.get(name), name, *IMPORT_COLUMN_ALIASES.get(name, ())):
            if candidate and candidate in fieldnames:
                found[name] = candidate
                break
    return found


def _list_field(text: str) -> list[str]:
    """"['a', 'b']" (Kaggle's form) or 'a; b' -> ['a', 'b']."""
    text = text.strip()
    if text.startswith("["):
        value = ast.literal_eval(text)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{text!r} is not a list of strings")
        return [v.strip() for v in value if v.strip()]
    return [v.strip() for v in text.split(";") if v.strip()]


def _csv_recording(raw: dict[str, str], *, base: Path, resolver: SpeciesResolver) -> SourceRecording:
    """One CSV row (canonical names) -> SourceRecording; raises LabelError/ValueError with the reason."""
    get = {k: (v or "").strip() for k, v in raw.items()}.get
    species = resolver.resolve(code=get("code", ""), scientific_name=get("scientific_name", ""))
    if get("common_name", "") and not species.common_name:
        species = replace(species, common_name=get("common_name", ""))
    secondary = tuple(resolver.resolve(**({"code": s} if " " not in s else {"scientific_name": s})).ebird_code
                      for s in _list_field(get("secondary_labels", "")))
    for column in ("latitude", "longitude"):
        if get(column, ""):
            float(get(column, ""))
    rating = float(get("rating", "") or UNRATED)
    path = Path(get("path", ""))
    return SourceRecording(path=path if path.is_absolute() else base / path, species=species,
                           secondary_labels=secondary, type=tuple(_list_field(get("type", ""))),
                           author=get("author", ""), licence=get("licence", ""), url=get("url", ""),
                           date=get("date", "") or UNKNOWN_DATE, time=get("time", "") or UNKNOWN_TIME,
                           latitude=get("latitude", ""), longitude=get("longitude", ""), rating=rating,
                           expected_sha256=get("sha256", "").lower())


def read_source_csv(csv_path: Path, *, resolver: SpeciesResolver, columns: dict[str, str] | None = None,
                    ) -> tuple[list[SourceRecording], list[dict[str, str]]]:
    """(recordings, failed rows) of a labelled CSV; paths are relative to the CSV's folder.

    A CSV without a path column, or without both a scientific-name and a code column, is a UserError.
    """
    with csv_path.open(newline="", encoding="utf-8") as f:
        fieldnames = list(csv.DictReader(f).fieldnames or [])
    names = _column_names(fieldnames, columns or {})
    if "path" not in names or not ({"scientific_name", "code"} & set(names)):
        raise UserError(f"{csv_path}: needs a 'path' column and a 'scientific_name' or 'code' column "
                        f"(has {fieldnames}); map other names with --column path=THEIRS")
    recordings, failed = [], []
    for row, raw in read_csv_rows(csv_path, tuple(names.values())):
        canonical = {name: raw[theirs] for name, theirs in names.items()}
        try:
            recordings.append(_csv_recording(canonical, base=csv_path.parent, resolver=resolver))
        except (LabelError, ValueError, SyntaxError) as exc:
            failed.append({"source": f"{csv_path}, row {row}", "reason": str(exc)})
    return recordings, failed


def read_source_folder(folder: Path, *, resolver: SpeciesResolver) -> tuple[list[SourceRecording], list[dict[str, str]]]:
    """(recordings, failed files) of `<folder>/<label>/<file>` (audio files only, sorted)."""
    recordings: list[SourceRecording] = []
    failed: list[dict[str, str]] = []
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in label_dir.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        try:
            species = resolver.resolve_folder(label_dir.name)
        except LabelError as exc:
            failed.extend({"source": str(p), "reason": str(exc)} for p in files)
            continue
        recordings.extend(SourceRecording(path=p, species=species) for p in files)
    return recordings, failed


def output_filename(recording: SourceRecording, *, sha256: str) -> str:
    """'XC<id>.ogg' when the url or the file name carries a xeno-canto id, else '<stem>-<sha256[:8]>.ogg'."""
    match = _XC_URL.search(recording.url) or _XC_NAME.search(recording.path.stem)
    if match:
        return f"XC{match.group(1)}.ogg"
    stem = re.sub(r"[^A-Za-z0-9]+", "-", recording.path.stem).strip("-")[:40] or "recording"
    return f"{stem}-{sha256[:8]}.ogg"


def metadata_row(recording: SourceRecording, *, filename: str) -> dict[str, str]:
    """The train_metadata.csv row, in the Kaggle file's conventions (lists as Python literals)."""
    s = recording.species
    return {"primary_label": s.ebird_code, "secondary_labels": repr(list(recording.secondary_labels)),
            "type": repr(list(recording.type)), "latitude": recording.latitude, "longitude": recording.longitude,
            "scientific_name": s.scientific_name, "common_name": s.common_name, "author": recording.author,
            "date": recording.date, "filename": filename, "license": recording.licence,
            "rating": f"{recording.rating:.1f}", "time": recording.time, "url": recording.url}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_csv(path: Path, columns: Iterable[str], rows: Iterable[dict[str, str]]) -> None:
    """Written to a temporary file and renamed: a crash never leaves half a CSV. Columns of an existing
    file that are not in `columns` are kept (after them); rows without them get ''."""
    columns = list(columns)
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as f:
            columns += [c for c in next(csv.reader(f), []) if c not in columns]
    part = path.with_name(path.name + ".part")
    with part.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(part, path)


def _write_ogg(path: Path, recording: SourceRecording) -> float:
    """Decode at 32 kHz mono and write OGG Vorbis (via <name>.part); returns the duration in seconds."""
    samples = load_audio(recording.path, sample_rate_hz=IMPORT_SAMPLE_RATE_HZ)
    write_ogg_vorbis(path, samples, sample_rate_hz=IMPORT_SAMPLE_RATE_HZ)
    return samples.size / IMPORT_SAMPLE_RATE_HZ


def _read_existing(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    return [raw for _, raw in read_csv_rows(path, columns)] if path.is_file() else []


def species_table(metadata: list[dict[str, str]], *, resolver: SpeciesResolver) -> list[dict[str, str]]:
    """Rows of species.csv: every primary label of the root, sorted by code, with where the code comes from."""
    listed = {s.ebird_code for s in resolver.listed}
    first: dict[str, dict[str, str]] = {}
    for row in metadata:
        first.setdefault(row["primary_label"], row)
    out = []
    for code in sorted(first):
        source = ("species CSV" if code in listed else "BirdCLEF 2021 code" if code in resolver.birdclef_codes
                  else "derived from the scientific name (birdlab data import)" if DERIVED_CODE.match(code)
                  else "label of the imported data")
        out.append({"ebird_code": code, "scientific_name": first[code]["scientific_name"],
                    "common_name": first[code]["common_name"], "source": source})
    return out


def import_recordings(*, source: Path, dest: Path, species_csv: Path | None = None,
                      columns: dict[str, str] | None = None, licence: str = "") -> ImportReport:
    """Import `source` (a labelled folder, a folder with SOURCES.csv, or a CSV) into `dest`.

    One bad file is reported in the result and never stops the others; files whose sha256 is in
    the ledger and whose output exists are skipped. Metadata, species.csv and the ledger are
    written even when the run is interrupted.
    """
    source, dest = Path(source), Path(dest)
    if not source.exists():
        raise UserError(f"{source}: not found; give a folder of <label>/<file> or a CSV of labelled files")
    resolver = SpeciesResolver.load(species_csv)
    csv_path = source if source.is_file() else next((source / n for n in SOURCE_CSV_NAMES if (source / n).is_file()),
                                                    None)
    if csv_path is not None:
        recordings, failed = read_source_csv(csv_path, resolver=resolver, columns=columns)
    else:
        recordings, failed = read_source_folder(source, resolver=resolver)
    if licence:
        recordings = [r if r.licence else replace(r, licence=licence) for r in recordings]
    report = ImportReport(source=str(csv_path or source), dest=str(dest), failed=failed)
    dest.mkdir(parents=True, exist_ok=True)
    metadata = _read_existing(dest / METADATA_CSV, METADATA_COLUMNS)
    ledger = {row["source_sha256"]: row for row in _read_existing(dest / LEDGER_CSV, LEDGER_COLUMNS)}
    present = {(row["primary_label"], row["filename"]) for row in metadata}
    try:
        for recording in recordings:
            _import_one(recording, dest=dest, metadata=metadata, ledger=ledger, present=present, report=report)
    finally:
        _write_csv(dest / METADATA_CSV, METADATA_COLUMNS, metadata)
        _write_csv(dest / LEDGER_CSV, LEDGER_COLUMNS, ledger.values())
        _write_csv(dest / SPECIES_CSV, (*SPECIES_COLUMNS, "source"), species_table(metadata, resolver=resolver))
        for row in metadata:
            report.species[row["primary_label"]] = report.species.get(row["primary_label"], 0) + 1
        (dest / REPORT_JSON).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def _import_one(recording: SourceRecording, *, dest: Path, metadata: list[dict[str, str]],
                ledger: dict[str, dict[str, str]], present: set[tuple[str, str]], report: ImportReport) -> None:
    """Import one file, or add it to report.skipped / report.failed with the reason."""
    name = str(recording.path)
    if not recording.path.is_file():
        report.failed.append({"source": name, "reason": "no such file"})
        return
    sha256 = _sha256(recording.path)
    if recording.expected_sha256 and sha256 != recording.expected_sha256:
        report.failed.append({"source": name, "reason": f"sha256 {sha256[:12]}... differs from the CSV's "
                                                        f"{recording.expected_sha256[:12]}...; the file changed"})
        return
    done = ledger.get(sha256)
    if done:
        code, filename = done["primary_label"], done["filename"]
        if (dest / SHORT_AUDIO_DIR / code / filename).is_file():
            report.skipped.append({"source": name, "reason": f"already imported as {code}/{filename} (same sha256)"})
            return
    else:
        code, filename = recording.species.ebird_code, output_filename(recording, sha256=sha256)
        if (code, filename) in present:
            if not any((r["primary_label"], r["filename"]) == (code, filename) for r in ledger.values()):
                report.skipped.append({"source": name, "reason": f"{code}/{filename} is already in {METADATA_CSV}"})
                return
            filename = f"{Path(filename).stem}-{sha256[:8]}.ogg"  # another file with the same xeno-canto id
    try:
        seconds = _write_ogg(dest / SHORT_AUDIO_DIR / code / filename, recording)
    except (AudioError, OSError, RuntimeError, ValueError) as exc:
        report.failed.append({"source": name, "reason": getattr(exc, "reason", str(exc))})
        return
    if (code, filename) not in present:
        metadata.append(metadata_row(recording, filename=filename))
        present.add((code, filename))
    ledger[sha256] = {"source_sha256": sha256, "primary_label": code, "filename": filename, "source": name}
    report.imported.append({"source": name, "primary_label": code, "filename": filename,
                            "seconds": f"{seconds:.2f}", "licence": recording.licence})
