"""`birdlab data import`: labelled folders and CSVs -> the BirdCLEF 2021 layout, on files made by code."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.data.importer import (
    IMPORT_SAMPLE_RATE_HZ,
    LabelError,
    SourceRecording,
    SpeciesResolver,
    derived_code,
    import_recordings,
    output_filename,
    species_level_name,
)
from birdlab.data.species import Species, load_species
from edge_runtime.audio import load_audio

REPO_ROOT = Path(__file__).resolve().parents[3]
SOURCE_RATE_HZ = 44100
LONG_SECONDS = 120.0
"""Longer than the ~65 s at 32 kHz that one libvorbis write can take without overflowing an 8 MB stack."""


def _write(path: Path, rng: np.random.Generator, *, seconds: float = 2.0, rate_hz: int = SOURCE_RATE_HZ,
           channels: int = 1) -> Path:
    """A chirp in noise, float32 (n, channels), written by soundfile (the suffix picks the format)."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    mono = 0.3 * np.sin(2 * np.pi * (2000 + 500 * t) * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.repeat(mono[:, None], channels, axis=1).astype(np.float32), rate_hz)
    return path


@pytest.fixture
def labelled_folder(tmp_path: Path, rng: np.random.Generator) -> Path:
    """<label>/<file>: an eBird code, a scientific name (with '_'), an unknown label and one corrupt file."""
    root = tmp_path / "recordings"
    _write(root / "houspa" / "XC100001 house sparrow.wav", rng)
    _write(root / "houspa" / "garden.flac", rng, channels=2)
    _write(root / "Erithacus_rubecula" / "robin1.wav", rng, rate_hz=48000)
    _write(root / "Sturnus vulgaris" / "starling.wav", rng, rate_hz=IMPORT_SAMPLE_RATE_HZ)
    _write(root / "robin" / "r.wav", rng)
    (root / "houspa" / "broken.mp3").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "houspa" / "notes.txt").write_text("not audio\n")
    return root


def test_species_names_and_codes_known_answers() -> None:
    assert species_level_name("Larus smithsonianus (American Herring Gull; ID3 title)") == "Larus smithsonianus"
    assert species_level_name("columba_livia_domestica") == "Columba livia"
    assert derived_code("Cygnus columbianus bewickii") == "cygnus_columbianus"
    for bad in ("robin", "Erithacus 2", ""):
        with pytest.raises(LabelError):
            species_level_name(bad)
    resolver = SpeciesResolver.load()
    assert resolver.resolve(scientific_name="Passer domesticus").ebird_code == "houspa"
    assert resolver.resolve(scientific_name="Columba livia domestica").ebird_code == "rocpig"
    assert resolver.resolve(code="amerob", scientific_name="Turdus migratorius") == Species(
        "amerob", "Turdus migratorius", "")
    assert resolver.resolve_folder("Erithacus_rubecula").ebird_code == "erithacus_rubecula"
    with pytest.raises(LabelError, match="species CSV"):
        resolver.resolve(code="zzzzz1")


def test_output_names_keep_xeno_canto_ids_and_never_collide_otherwise() -> None:
    def name(path: str, url: str = "", sha: str = "ab" * 32) -> str:
        return output_filename(SourceRecording(path=Path(path), species=Species("x", "", ""), url=url), sha256=sha)

    assert name("a/Accipiter_gentilis_call_1.mp3", url="http://www.xeno-canto.org/31651") == "XC31651.ogg"
    assert name("XC482664 - - Branta canadensis.mp3") == "XC482664.ogg"
    assert name("a/loon.mp3") == "loon-abababab.ogg"
    assert name("b/loon.mp3", sha="cd" * 32) != name("a/loon.mp3")


def test_folder_import_writes_the_real_layout_and_reports_bad_files(labelled_folder: Path, tmp_path: Path) -> None:
    dest = tmp_path / "imported"
    report = import_recordings(source=labelled_folder, dest=dest, licence="CC BY 4.0 (test)")
    assert len(report.imported) == 4, report.describe()
    assert {Path(f["source"]).name for f in report.failed} == {"broken.mp3", "r.wav"}
    assert "robin" in next(f["reason"] for f in report.failed if f["source"].endswith("r.wav"))
    assert report.describe().startswith("imported 4, skipped 0, failed 2")
    recordings = {(r.primary_label, r.filename): r for r in BirdCLEF2021(dest).recordings()}
    assert set(recordings) == {("houspa", "XC100001.ogg"), ("houspa", f"garden-{_sha8(labelled_folder, 'garden')}.ogg"),
                               ("erithacus_rubecula", f"robin1-{_sha8(labelled_folder, 'robin1')}.ogg"),
                               ("eursta", f"starling-{_sha8(labelled_folder, 'starling')}.ogg")}
    for r in recordings.values():
        info = soundfile.info(str(r.audio_path))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "VORBIS", 32000, 1)
        assert info.frames == round(2.0 * IMPORT_SAMPLE_RATE_HZ), "duration kept to the sample"
        assert (r.rating, r.time, r.date, r.license) == (0.0, "?", "0000-00-00", "CC BY 4.0 (test)")
    assert recordings[("eursta", f"starling-{_sha8(labelled_folder, 'starling')}.ogg")].scientific_name == (
        "Sturnus vulgaris")
    species = load_species(dest / "species.csv")
    assert [s.ebird_code for s in species] == ["erithacus_rubecula", "eursta", "houspa"]
    written = json.loads((dest / "import_report.json").read_text())
    assert written["counts"] == {"imported": 4, "skipped": 0, "failed": 2}
    assert written["species"] == {"erithacus_rubecula": 1, "eursta": 1, "houspa": 2}


def _sha8(root: Path, stem: str) -> str:
    import hashlib

    path = next(p for p in root.rglob(f"{stem}.*"))
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def test_the_audio_is_the_loaders_audio_through_vorbis(labelled_folder: Path, tmp_path: Path) -> None:
    dest = tmp_path / "imported"
    import_recordings(source=labelled_folder, dest=dest)
    source = load_audio(labelled_folder / "Erithacus_rubecula" / "robin1.wav", sample_rate_hz=IMPORT_SAMPLE_RATE_HZ)
    imported = load_audio(next((dest / "train_short_audio" / "erithacus_rubecula").iterdir()),
                          sample_rate_hz=IMPORT_SAMPLE_RATE_HZ)
    assert imported.shape == source.shape
    snr_db = 10 * np.log10(np.sum(source**2) / np.sum((imported - source) ** 2))
    assert snr_db > 20.0, f"Vorbis round trip at {snr_db:.1f} dB SNR"


def test_a_rerun_is_idempotent_and_a_second_source_adds_to_the_root(labelled_folder: Path, tmp_path: Path,
                                                                    rng: np.random.Generator) -> None:
    dest = tmp_path / "imported"
    import_recordings(source=labelled_folder, dest=dest)
    before = {p.name: p.read_bytes() for p in dest.glob("*.csv")}
    again = import_recordings(source=labelled_folder, dest=dest)
    assert (len(again.imported), len(again.skipped), len(again.failed)) == (0, 4, 2)
    assert all("same sha256" in s["reason"] for s in again.skipped)
    assert {p.name: p.read_bytes() for p in dest.glob("*.csv")} == before
    more = tmp_path / "more"
    _write(more / "houspa" / "XC100002.wav", rng)
    (more / "houspa" / "copy.wav").write_bytes((labelled_folder / "houspa" / "XC100001 house sparrow.wav").read_bytes())
    added = import_recordings(source=more, dest=dest)
    assert [f["filename"] for f in added.imported] == ["XC100002.ogg"]
    assert len(added.skipped) == 1 and "XC100001.ogg" in added.skipped[0]["reason"]
    assert added.species == {"erithacus_rubecula": 1, "eursta": 1, "houspa": 3}


def _write_sources_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """A CSV in ../shared/real-audio/species/SOURCES.csv's columns."""
    columns = ("file", "species_scientific", "kind", "repo", "path_in_repo", "commit", "source_url", "recordist",
               "licence", "bytes", "sha256", "brittany_birdclef2021_code")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in columns} for row in rows)
    return path


def test_a_sources_csv_is_read_through_its_column_aliases(tmp_path: Path, rng: np.random.Generator) -> None:
    import hashlib

    folder = tmp_path / "species"
    a = _write(folder / "audio" / "Larus_gull.wav", rng)
    b = _write(folder / "audio" / "Passer_1.wav", rng)
    c = _write(folder / "audio" / "changed.wav", rng)
    _write_sources_csv(folder / "SOURCES.csv", [
        {"file": "audio/Larus_gull.wav", "species_scientific": "Larus smithsonianus (American Herring Gull)",
         "kind": "call", "source_url": "https://xeno-canto.org/636548", "recordist": "T. R. Payne",
         "licence": "CC BY-NC-SA 4.0", "sha256": hashlib.sha256(a.read_bytes()).hexdigest()},
        {"file": "audio/Passer_1.wav", "species_scientific": "Passer domesticus", "kind": "song",
         "source_url": "https://xeno-canto.org/5954", "recordist": "M. Grosselet",
         "licence": "http://creativecommons.org/licenses/by-nc-nd/2.5/", "brittany_birdclef2021_code": "houspa",
         "sha256": hashlib.sha256(b.read_bytes()).hexdigest()},
        {"file": "audio/changed.wav", "species_scientific": "Passer domesticus", "sha256": "0" * 64},
        {"file": "audio/missing.wav", "species_scientific": "Passer domesticus"},
        {"file": "audio/Passer_1.wav", "species_scientific": "robin"},
    ])
    assert c.exists()
    report = import_recordings(source=folder, dest=tmp_path / "imported")
    assert sorted(f["filename"] for f in report.imported) == ["XC5954.ogg", "XC636548.ogg"]
    reasons = " | ".join(f["reason"] for f in report.failed)
    assert len(report.failed) == 3 and "differs" in reasons and "no such file" in reasons and "robin" in reasons
    rows = {r.filename: r for r in BirdCLEF2021(tmp_path / "imported").recordings()}
    gull = rows["XC636548.ogg"]
    assert (gull.primary_label, gull.scientific_name, gull.author, gull.license, gull.type, gull.url) == (
        "larus_smithsonianus", "Larus smithsonianus", "T. R. Payne", "CC BY-NC-SA 4.0", ("call",),
        "https://xeno-canto.org/636548")
    assert rows["XC5954.ogg"].license == "http://creativecommons.org/licenses/by-nc-nd/2.5/"
    assert rows["XC5954.ogg"].common_name == "House Sparrow"
    with (tmp_path / "imported" / "species.csv").open(newline="") as f:
        sources = {r["ebird_code"]: r["source"] for r in csv.DictReader(f)}
    assert sources == {"houspa": "species CSV", "larus_smithsonianus": "derived from the scientific name "
                                                                     "(birdlab data import)"}


def test_a_csv_without_the_needed_columns_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("name,bird\nx.wav,Passer domesticus\n")
    proc = subprocess.run([sys.executable, "-m", "birdlab", "data", "import", "--from", str(tmp_path / "labels.csv"),
                           "--dest", str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 2 and "needs a 'path' column" in proc.stderr and "Traceback" not in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "birdlab", "data", "import", "--from", str(tmp_path / "labels.csv"),
                         "--dest", str(tmp_path / "out"), "--column", "path=name", "--column", "scientific_name=bird"],
                        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert ok.returncode == 1 and "no such file" in ok.stdout, ok.stdout + ok.stderr


@pytest.mark.slow
def test_a_long_recording_imports_through_the_cli(tmp_path: Path, rng: np.random.Generator) -> None:
    """One Vorbis write of more than ~65 s crashes libvorbis (segfault): the importer writes block by block."""
    _write(tmp_path / "in" / "Turdus merula" / "XC999.wav", rng, seconds=LONG_SECONDS, rate_hz=IMPORT_SAMPLE_RATE_HZ)
    proc = subprocess.run([sys.executable, "-m", "birdlab", "data", "import", "--from", str(tmp_path / "in"),
                           "--dest", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.startswith("imported 1, skipped 0, failed 0")
    info = soundfile.info(str(tmp_path / "out" / "train_short_audio" / "turdus_merula" / "XC999.ogg"))
    assert info.frames == round(LONG_SECONDS * IMPORT_SAMPLE_RATE_HZ)


def test_a_species_csv_may_list_species_outside_the_397(tmp_path: Path, rng: np.random.Generator) -> None:
    """A researcher's own codes (here a robin, which BirdCLEF 2021 lacks) label folders and scientific names."""
    species_csv = tmp_path / "garden.csv"
    species_csv.write_text("ebird_code,scientific_name,common_name,source\n"
                           "eurrob1,Erithacus rubecula,European Robin,eBird 2021\n"
                           "houspa,Passer domesticus,House Sparrow,BirdCLEF 2021\n", encoding="utf-8")
    _write(tmp_path / "in" / "eurrob1" / "a.wav", rng)
    _write(tmp_path / "in" / "Erithacus rubecula" / "b.wav", rng)
    _write(tmp_path / "in" / "eurbla" / "c.wav", rng)
    report = import_recordings(source=tmp_path / "in", dest=tmp_path / "out", species_csv=species_csv)
    assert {f["primary_label"] for f in report.imported} == {"eurrob1"} and len(report.imported) == 2
    assert len(report.failed) == 1 and "'eurbla'" in report.failed[0]["reason"]
    assert [(s.ebird_code, s.common_name) for s in load_species(tmp_path / "out" / "species.csv")] == [
        ("eurrob1", "European Robin")]


def test_an_existing_metadata_file_keeps_its_rows_and_extra_columns(labelled_folder: Path, tmp_path: Path) -> None:
    dest = tmp_path / "imported"
    dest.mkdir()
    header = "primary_label,secondary_labels,type,latitude,longitude,scientific_name,common_name,author,date," \
             "filename,license,rating,time,url,extra\n"
    kaggle_row = "houspa,[],['call'],48.1,-1.6,Passer domesticus,House Sparrow,A. B.,2019-05-01,XC1.ogg," \
                 "CC BY-NC-SA 4.0,4.5,08:00,https://www.xeno-canto.org/1,kept\n"
    (dest / "train_metadata.csv").write_text(header + kaggle_row, encoding="utf-8")
    import_recordings(source=labelled_folder, dest=dest)
    with (dest / "train_metadata.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]["extra"] == "kept" and rows[0]["rating"] == "4.5"
    assert {r["extra"] for r in rows[1:]} == {""}


def test_two_recordings_with_one_xeno_canto_id_both_arrive(tmp_path: Path, rng: np.random.Generator) -> None:
    """Two cuts of one xeno-canto recording: the second keeps the id and gets its sha256 as well."""
    _write(tmp_path / "in" / "houspa" / "XC5 part a.wav", rng)
    _write(tmp_path / "in" / "houspa" / "XC5 part b.wav", rng)
    report = import_recordings(source=tmp_path / "in", dest=tmp_path / "out")
    names = [f["filename"] for f in report.imported]
    assert names[0] == "XC5.ogg" and names[1].startswith("XC5-") and len(names[1]) == len("XC5-12345678.ogg")
    assert len(BirdCLEF2021(tmp_path / "out").recordings()) == 2
