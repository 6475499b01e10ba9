"""A synthetic task where a teacher knows what the hard labels miss: few labels, some wrong, unlabelled audio.

From one synthetic dataset (birdlab.data.synth), each species' recordings are dealt, in order, to

    <dest>/labelled/    BirdCLEF 2021 layout: `labelled_per_species` recordings per species, of which
                        round(mislabelled_fraction * labelled_per_species) carry the NEXT species' label
                        (file moved to that species' folder, metadata row rewritten), and the soundscapes;
    <dest>/unlabelled/  `unlabelled_per_species` recordings per species, audio only (unlabeled_dirs);
    <dest>/heldout/     the rest, BirdCLEF 2021 layout with their true labels: what students and teacher are
                        scored on, never seen in training.

A hard-label student learns the wrong labels and never hears the unlabelled audio; a student distilled
from a teacher that knows the voices (birdlab.teacher.tiny.synth_teacher) gets both right.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import birdlab.data.birdclef2021 as bc
from birdlab.data.species import load_species
from birdlab.data.synth import SynthConfig, synthesize


def default_synth() -> SynthConfig:
    """6 species x 12 recordings of 5-8 s, one 30-s soundscape."""
    return SynthConfig(n_species=6, recordings_per_species=12, recording_seconds=(5.0, 8.0), recording_median_seconds=6.5, n_soundscapes=1,
                       soundscape_seconds=30)


@dataclass(frozen=True)
class DistillationTaskConfig:
    """How the synthetic recordings are dealt out."""

    synth: SynthConfig = field(default_factory=default_synth)
    """The synthetic dataset (its seed fixes the voices: the teacher must be built with the same seed)."""
    labelled_per_species: int = 4
    """Recordings per species with a label (train + validation of the run)."""
    mislabelled_fraction: float = 0.5
    """Share of each species' labelled recordings that carry the next species' label."""
    unlabelled_per_species: int = 4
    """Recordings per species given as unlabelled audio."""

    def __post_init__(self) -> None:
        if self.labelled_per_species < 1 or self.unlabelled_per_species < 0:
            raise ValueError("labelled_per_species must be >= 1 and unlabelled_per_species >= 0")
        if self.labelled_per_species + self.unlabelled_per_species >= self.synth.recordings_per_species:
            raise ValueError("labelled + unlabelled recordings per species must leave held-out recordings")
        if not 0.0 <= self.mislabelled_fraction <= 1.0:
            raise ValueError(f"mislabelled_fraction must be in [0, 1], got {self.mislabelled_fraction}")


@dataclass(frozen=True)
class DistillationTask:
    """Where the task's parts are, and how many of each."""

    labelled_dir: Path
    """BirdCLEF 2021 layout: train with `train --data` on it."""
    unlabelled_dir: Path
    """Audio without labels: a run's unlabeled_dirs."""
    heldout_dir: Path
    """BirdCLEF 2021 layout of the held-out recordings, true labels."""
    n_labelled: int
    n_mislabelled: int
    n_unlabelled: int
    n_heldout: int

    def heldout_recordings(self) -> list[bc.Recording]:
        return bc.BirdCLEF2021(self.heldout_dir).recordings()


def _write_metadata(root: Path, rows: list[dict[str, str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with (root / bc.METADATA_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=bc.METADATA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def make_distillation_task(dest: str | Path, *, config: DistillationTaskConfig = DistillationTaskConfig()
                           ) -> DistillationTask:
    """Write the task under `dest` (its labelled/, unlabelled/, heldout/ and source/ are replaced)."""
    dest = Path(dest)
    source = dest / "source"
    for part in ("source", "labelled", "unlabelled", "heldout"):
        shutil.rmtree(dest / part, ignore_errors=True)
    synthesize(dest=source, config=config.synth)
    species = {s.ebird_code: s for s in load_species()[: config.synth.n_species]}
    codes = list(species)
    with (source / bc.METADATA_CSV).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labelled, heldout = [], []
    n_wrong = round(config.mislabelled_fraction * config.labelled_per_species)
    counts = {"labelled": 0, "mislabelled": 0, "unlabelled": 0, "heldout": 0}
    for code in codes:
        own = [r for r in rows if r["primary_label"] == code]
        for i, row in enumerate(own):
            audio = source / bc.SHORT_AUDIO_DIR / code / row["filename"]
            if i < config.labelled_per_species:
                row = dict(row)
                if i < n_wrong:
                    wrong = species[codes[(codes.index(code) + 1) % len(codes)]]
                    row.update(primary_label=wrong.ebird_code, scientific_name=wrong.scientific_name,
                               common_name=wrong.common_name)
                    counts["mislabelled"] += 1
                target = dest / "labelled" / bc.SHORT_AUDIO_DIR / row["primary_label"] / row["filename"]
                labelled.append(row)
                counts["labelled"] += 1
            elif i < config.labelled_per_species + config.unlabelled_per_species:
                target = dest / "unlabelled" / row["filename"]
                counts["unlabelled"] += 1
            else:
                target = dest / "heldout" / bc.SHORT_AUDIO_DIR / code / row["filename"]
                heldout.append(row)
                counts["heldout"] += 1
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(audio, target)
    _write_metadata(dest / "labelled", labelled)
    _write_metadata(dest / "heldout", heldout)
    shutil.copytree(source / bc.SOUNDSCAPES_DIR, dest / "labelled" / bc.SOUNDSCAPES_DIR)
    shutil.copyfile(source / bc.SOUNDSCAPE_LABELS_CSV, dest / "labelled" / bc.SOUNDSCAPE_LABELS_CSV)
    (dest / "unlabelled").mkdir(parents=True, exist_ok=True)
    return DistillationTask(labelled_dir=dest / "labelled", unlabelled_dir=dest / "unlabelled",
                            heldout_dir=dest / "heldout", n_labelled=counts["labelled"],
                            n_mislabelled=counts["mislabelled"], n_unlabelled=counts["unlabelled"],
                            n_heldout=counts["heldout"])
