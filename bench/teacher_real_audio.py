"""The teacher alone on real labelled recordings: clip-level macro AP and top-1, with counts, as JSON.

    python bench/teacher_real_audio.py --real-audio ../shared/real-audio --out bench/results/teacher_birdnet.json \
        [--teacher-dir ~/.cache/birdlab/teacher/birdnet-v2.4] [--subset brittany|all] [--workers 2]

Reads species/SOURCES.csv (file, species_scientific, brittany_birdclef2021_code). Each recording is cut into
consecutive 5-s clips at 32 kHz (the student's clips), the teacher labels every clip (birdlab.teacher.targets,
cached), and a recording's score per species is the max over its clips (as issue 11 scores held-out recordings).
`brittany`: the recordings of the 24 BirdCLEF 2021 Brittany species, scored among those 24 species; `all`: every
recording whose species maps to a teacher label by scientific name, scored among those species (unmapped ones are
listed, not scored). Also the teacher's cost on one interpreter thread: ms per 5-s clip and per second of
audio (resampling and every sub-window included, decoding excluded), on seeded noise clips.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from birdlab.data.species import Species, load_species
from birdlab.metrics import average_precision
from birdlab.teacher.birdnet import default_dest
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.cost import teacher_cost
from birdlab.teacher.labels import TeacherLabelError, normalise_name, read_teacher_labels, teacher_indices
from birdlab.teacher.model import TeacherModel
from birdlab.teacher.targets import TeacherJob, TeacherTargets, compute_teacher_targets
from edge_runtime.spec import FeatureSpec


def _recordings(real_audio: Path, *, subset: str) -> tuple[list[tuple[Path, str]], list[Species]]:
    """[(path, species key)] and the species scored; key = eBird code (brittany) or normalised scientific name."""
    rows = list(csv.DictReader((real_audio / "species" / "SOURCES.csv").open(encoding="utf-8")))
    if subset == "brittany":
        species = list(load_species())
        return [(real_audio / "species" / r["file"], r["brittany_birdclef2021_code"]) for r in rows
                if r["brittany_birdclef2021_code"]], species
    names = sorted({r["species_scientific"].strip() for r in rows})
    species = [Species(normalise_name(n), n, n) for n in names]
    return [(real_audio / "species" / r["file"], normalise_name(r["species_scientific"])) for r in rows], species


def run(*, real_audio: Path, teacher_dir: Path, subset: str, workers: int, cache: Path | None = None) -> dict:
    config = TeacherConfig.from_dict(json.loads((teacher_dir / "teacher.json").read_text(encoding="utf-8")))
    labels = read_teacher_labels(config.teacher_labels)
    files, species = _recordings(real_audio, subset=subset)
    unmapped: list[str] = []
    try:
        indices = teacher_indices(species, teacher_labels=labels)
    except TeacherLabelError:
        kept = []
        for sp in species:
            try:
                teacher_indices([sp], teacher_labels=labels)
                kept.append(sp)
            except TeacherLabelError:
                unmapped.append(sp.scientific_name)
        species = kept
        indices = teacher_indices(species, teacher_labels=labels)
    column = {sp.ebird_code: i for i, sp in enumerate(species)}
    files = [(p, key) for p, key in files if key in column]
    spec = FeatureSpec()
    results = compute_teacher_targets([TeacherJob(p) for p, _ in files], config=config,
                                      sample_rate_hz=spec.sample_rate_hz, clip_samples=spec.clip_samples,
                                      species_indices=indices, workers=workers, root=cache)
    usable = [(r, key) for r, (_, key) in zip(results, files, strict=True) if isinstance(r, TeacherTargets)]
    scores = np.stack([r.probabilities.max(axis=0) for r, _ in usable])
    truth = np.zeros_like(scores)
    for row, (_, key) in enumerate(usable):
        truth[row, column[key]] = 1.0
    per_class = {}
    for i, sp in enumerate(species):
        n = int(truth[:, i].sum())
        if n:
            per_class[sp.scientific_name] = {"ap": average_precision(truth[:, i], scores[:, i]), "n_recordings": n}
    audio_s = float(sum(r.duration_s for r, _ in usable))
    return {
        "subset": subset,
        "teacher_sha256": TeacherModel.from_config(config).sha256,
        "n_recordings": len(usable),
        "n_failed": len(results) - len(usable),
        "n_clips": int(sum(r.probabilities.shape[0] for r, _ in usable)),
        "n_species_scored_among": len(species),
        "n_species_with_recordings": len(per_class),
        "unmapped_species": unmapped,
        "teacher": {
            "macro_ap": float(np.mean([c["ap"] for c in per_class.values()])),
            "top1": float(np.mean(np.argmax(scores, axis=1) == np.argmax(truth, axis=1))),
            "per_class": per_class,
        },
        "audio_seconds": audio_s,
        **teacher_cost(config, spec=spec),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-audio", type=Path, required=True, help="../shared/real-audio")
    parser.add_argument("--teacher-dir", type=Path, default=None, help="folder written by `teacher fetch-birdnet`")
    parser.add_argument("--subset", choices=("brittany", "all"), default="brittany")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="teacher target cache root (default: data/interim)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = run(real_audio=args.real_audio, teacher_dir=args.teacher_dir or default_dest(), subset=args.subset,
                 workers=args.workers, cache=args.cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    summary = {k: v for k, v in result.items() if k != "teacher"}
    print(json.dumps({**summary, "macro_ap": result["teacher"]["macro_ap"], "top1": result["teacher"]["top1"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
