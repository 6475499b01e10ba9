"""Import real species recordings (../shared/real-audio/species, its SOURCES.csv) and train on them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from birdlab.data.birdclef2021 import BirdCLEF2021
from birdlab.data.species import load_species

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 2021
FILES_PER_SPECIES = 3
CODED_SPECIES = 2
"""Species picked among the BirdCLEF 2021 Brittany species (code from the species CSV) ..."""
DERIVED_SPECIES = 2
"""... and among the others (code derived from the scientific name)."""


def pick_subset(rows: list[dict[str, str]], *, seed: int = SEED) -> list[dict[str, str]]:
    """Seeded: CODED_SPECIES + DERIVED_SPECIES species with >= 3 files, FILES_PER_SPECIES files each."""
    by_species: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_species.setdefault(row["species_scientific"], []).append(row)
    eligible = {s: r for s, r in sorted(by_species.items()) if len(r) >= FILES_PER_SPECIES}
    coded = [s for s, r in eligible.items() if r[0]["brittany_birdclef2021_code"]]
    other = [s for s, r in eligible.items() if not r[0]["brittany_birdclef2021_code"]]
    rng = np.random.default_rng(seed)
    chosen = [*rng.choice(coded, CODED_SPECIES, replace=False), *rng.choice(other, DERIVED_SPECIES, replace=False)]
    return [row for s in sorted(chosen) for row in eligible[s][:FILES_PER_SPECIES]]


@pytest.fixture(scope="module")
def imported(real_audio: Path, species_sources: list[dict[str, str]], tmp_path_factory: pytest.TempPathFactory,
             ) -> tuple[Path, list[dict[str, str]]]:
    """The subset as a CSV in SOURCES.csv's own columns (absolute paths), imported by the CLI: (root, rows)."""
    rows = [{**r, "file": str(real_audio / "species" / r["file"])} for r in pick_subset(species_sources)]
    work = tmp_path_factory.mktemp("real_import")
    with (work / "SOURCES.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(species_sources[0]))
        writer.writeheader()
        writer.writerows(rows)
    proc = subprocess.run([sys.executable, "-m", "birdlab", "data", "import", "--from", str(work / "SOURCES.csv"),
                           "--dest", str(work / "data")], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proc.stdout.startswith(f"imported {len(rows)}, skipped 0, failed 0"), proc.stdout
    return work / "data", rows


@pytest.mark.slow
def test_the_import_keeps_species_licences_and_recordists(imported: tuple[Path, list[dict[str, str]]]) -> None:
    root, rows = imported
    recordings = BirdCLEF2021(root).recordings()
    assert len(recordings) == len(rows) == (CODED_SPECIES + DERIVED_SPECIES) * FILES_PER_SPECIES
    by_url = {r.url: r for r in recordings}
    for row in rows:
        r = by_url[row["source_url"]]
        assert (r.license, r.author) == (row["licence"], row["recordist"])
        assert r.primary_label == (row["brittany_birdclef2021_code"] or
                                   row["species_scientific"].lower().replace(" ", "_"))
        assert r.audio_path.is_file()
    species = load_species(root / "species.csv")
    assert len(species) == CODED_SPECIES + DERIVED_SPECIES
    assert sum("_" in s.ebird_code for s in species) == DERIVED_SPECIES


@pytest.mark.slow
def test_train_runs_on_the_imported_species(imported: tuple[Path, list[dict[str, str]]], tmp_path: Path) -> None:
    """The tiny preset, 2 epochs, with the import's species.csv as the label list (`train --species`)."""
    root, _ = imported
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "birdlab", "train", "--config", "tiny", "--data", str(root),
                           "--species", str(root / "species.csv"), "--out", str(run), "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("model.keras", "labels.csv", "split.json", "metrics.json", "history.csv", "config.json"):
        assert (run / name).is_file(), name
    with (run / "labels.csv").open(newline="") as f:
        labels = [r["ebird_code"] for r in csv.DictReader(f)]
    assert labels == [s.ebird_code for s in load_species(root / "species.csv")]
    assert json.loads((run / "config.json").read_text())["species_csv"] == str((root / "species.csv").resolve())
    with (run / "history.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 2


@pytest.mark.slow
def test_train_merges_two_dataset_roots(imported: tuple[Path, list[dict[str, str]]], tmp_path: Path) -> None:
    """`train --data A --data B`: the import split into two roots (one species in B) trains as one dataset."""
    root, rows = imported
    with (root / "train_metadata.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns, metadata = list(reader.fieldnames or []), list(reader)
    moved = sorted({r["primary_label"] for r in metadata})[0]
    for name, keep in (("a", lambda r: r["primary_label"] != moved), ("b", lambda r: r["primary_label"] == moved)):
        part = tmp_path / name
        for r in filter(keep, metadata):
            target = part / "train_short_audio" / r["primary_label"] / r["filename"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((root / "train_short_audio" / r["primary_label"] / r["filename"]).read_bytes())
        with (part / "train_metadata.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(filter(keep, metadata))
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "birdlab", "train", "--config", "tiny", "--data", str(tmp_path / "a"),
                           "--data", str(tmp_path / "b"), "--species", str(root / "species.csv"), "--out", str(run),
                           "--cache", str(tmp_path / "cache")], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((run / "run_info.json").read_text())
    assert info["data_dirs"] == [str((tmp_path / "a").resolve()), str((tmp_path / "b").resolve())]
    split = json.loads((run / "split.json").read_text())
    used = split["train_recordings"] + split["validation_recordings"] + split.get("test_recordings", [])
    assert any(key.startswith(f"{moved}/") for key in used), "the species of root B is trained on"
    assert len(used) == len(rows)
