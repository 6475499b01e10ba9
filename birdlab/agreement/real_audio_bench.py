"""The real-audio benchmark (`python -m birdlab bench real-audio`): train on real recordings, score held-out ones
through the device path.

Steps, all seeded by the training config's seed:

1. The dataset root (BirdCLEF 2021 layout; a folder holding SOURCES.csv, or such a CSV, is imported first into a
   cache folder with `birdlab.data.importer`) is restricted to the species with >= `min_recordings` recordings.
2. Per species, round(n * test_fraction) recordings (>= 1) are held out; the rest form a train root: a
   BirdCLEF 2021 layout of symbolic links plus the train rows of train_metadata.csv and a species.csv of the
   benchmark's species (the model's label order). Training never sees a held-out recording (it splits its train
   root again into train and validation for early stopping).
3. `birdlab.training.train` on the train root, `birdlab.export.export_run` into a bundle.
4. `python -m edge_runtime run` on the bundle over the held-out files (one `file:` source each) with a jsonl sink,
   every species of every window reported: `--top-n 0` and `--threshold` EDGE_THRESHOLD (the runtime refuses a
   threshold of 0; a float32 sigmoid is below 1e-30 only for logits under about -69, and a species missing from
   a window counts as confidence 0 there).
5. A recording's score per species is the max over its 5-s windows (`birdlab.metrics.clip_scores`); macro AP,
   padded cmAP and top-1 of the primary label (`birdlab.metrics`), beside chance top-1 (1 / n_species) and the
   prevalence AP (what a random ranking scores: the mean over the scored species of positives / recordings).
6. With a teacher (TeacherConfig, e.g. BirdNET v2.4), the teacher scores the same held-out recordings, each cut
   into consecutive 5-s clips at the lab's rate (`birdlab.teacher.targets`, cached) and max-pooled the same way;
   species the teacher has no output for are listed and scored as 0 by the teacher.

The JSON: n_species, n_train, n_test, student = {top1, macro_ap, padded_cmap, n_species_scored}, baselines,
counts, the split, the config, the git commit and timings (see `run_real_audio_bench`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdlab import paths
from birdlab.data.birdclef2021 import METADATA_COLUMNS, METADATA_CSV, SHORT_AUDIO_DIR, BirdCLEF2021, Recording
from birdlab.data.importer import SOURCE_CSV_NAMES, import_recordings
from birdlab.data.species import SPECIES_COLUMNS, Species, load_species
from birdlab.errors import UserError
from birdlab.export.bundle_writer import export_run
from birdlab.metrics import clip_scores, macro_average_precision, padded_cmap, top1_accuracy
from birdlab.provenance import git_state
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.cost import teacher_cost
from birdlab.teacher.labels import TeacherLabelError, read_teacher_labels, teacher_indices
from birdlab.teacher.targets import TeacherJob, TeacherTargets, compute_teacher_targets
from birdlab.training.config import TrainConfig
from birdlab.training.train import train
from edge_runtime.cli import run_argv
from edge_runtime.spec import SPEC_FILENAME, FeatureSpec

MIN_RECORDINGS = 3
"""Species with fewer recordings are left out of the benchmark (one held out, two to train on)."""
TEST_FRACTION = 1 / 3
"""Share of each species' recordings held out (rounded, at least one)."""
EDGE_THRESHOLD = 1e-30
"""`--threshold` of the edge run: as close to 0 as the runtime allows (it must be in (0, 1))."""
EDGE_RUN_TIMEOUT_S = 3600.0
"""Longest the edge runtime may take over the held-out files."""
SPLIT_SALT = 47
"""Mixed into the seed of the held-out split (so it differs from the training split's stream)."""


class RealAudioBenchError(UserError):
    """The benchmark cannot run (too few species, the edge run failed, ...); the message says what to do."""


@dataclass(frozen=True)
class HeldOutSplit:
    """The benchmark's species and which of their recordings are trained on and held out."""

    species: tuple[Species, ...]
    """Species with >= min_recordings recordings, in the order of the dataset's species list (the model's labels)."""
    train: tuple[Recording, ...]
    """Recordings the student is trained on (its own validation split is taken from these)."""
    test: tuple[Recording, ...]
    """Held-out recordings, scored through the device path."""
    species_left_out: int
    """Species of the dataset with fewer than min_recordings recordings that are neither scored nor trained on."""
    extra_species: tuple[Species, ...] = ()
    """Species with fewer than min_recordings recordings that are trained on (all their recordings are in `train`)
    but never scored: extra classes after `species` in the model's labels (train_rare_species)."""

    @property
    def model_species(self) -> tuple[Species, ...]:
        """The model's labels: the scored species, then the extra ones."""
        return self.species + self.extra_species

    @property
    def train_of_scored_species(self) -> tuple[Recording, ...]:
        """The training recordings of the scored species (all of `train` unless extra species are trained)."""
        scored = {s.ebird_code for s in self.species}
        return tuple(r for r in self.train if r.primary_label in scored)

    def to_dict(self) -> dict[str, Any]:
        """{train, test}: '<primary_label>/<filename>' lists, sorted; plus species_left_out."""
        return {"train": sorted(f"{r.primary_label}/{r.filename}" for r in self.train),
                "test": sorted(f"{r.primary_label}/{r.filename}" for r in self.test),
                "species_left_out": self.species_left_out,
                "extra_species": [s.ebird_code for s in self.extra_species]}


def held_out_split(recordings: Sequence[Recording], species: Sequence[Species], *, min_recordings: int = MIN_RECORDINGS,
                   test_fraction: float = TEST_FRACTION, seed: int, train_rare_species: bool = False) -> HeldOutSplit:
    """Stratified, seeded: per species with >= min_recordings recordings (sorted by file name, then shuffled),
    max(1, round(n * test_fraction)) are held out, the rest trained on. Species keep the order of `species`.
    train_rare_species: every recording of the species with fewer recordings joins the training set under its own
    label (extra classes, never scored), as external data of other species widens what the network learns."""
    if min_recordings < 2:
        raise RealAudioBenchError(f"min_recordings must be >= 2 (one to train on, one to hold out), got {min_recordings}")
    if not 0.0 < test_fraction < 1.0:
        raise RealAudioBenchError(f"test_fraction must be in (0, 1), got {test_fraction}")
    by_code: dict[str, list[Recording]] = {}
    for r in recordings:
        by_code.setdefault(r.primary_label, []).append(r)
    kept = tuple(s for s in species if len(by_code.get(s.ebird_code, ())) >= min_recordings)
    rng = np.random.default_rng([seed, SPLIT_SALT])
    train: list[Recording] = []
    test: list[Recording] = []
    for s in sorted(kept, key=lambda s: s.ebird_code):
        recs = sorted(by_code[s.ebird_code], key=lambda r: r.filename)
        order = rng.permutation(len(recs))
        n_test = min(len(recs) - 1, max(1, round(len(recs) * test_fraction)))
        test += [recs[i] for i in order[:n_test]]
        train += [recs[i] for i in order[n_test:]]
    kept_codes = {s.ebird_code for s in kept}
    rare = tuple(s for s in species if s.ebird_code in by_code and s.ebird_code not in kept_codes)
    if train_rare_species:
        train += [r for s in rare for r in sorted(by_code[s.ebird_code], key=lambda r: r.filename)]
    return HeldOutSplit(species=kept, train=tuple(train), test=tuple(test),
                        species_left_out=0 if train_rare_species else len(rare),
                        extra_species=rare if train_rare_species else ())


def resolve_dataset(data: Path, *, import_root: Path) -> Path:
    """`data` when it is a BirdCLEF 2021 root; a folder holding SOURCES.csv (or a CSV) is imported first into
    import_root/<hash of its path> (a re-run reuses what is already imported) and that root is returned."""
    data = Path(data)
    if (data / METADATA_CSV).is_file():
        return data
    is_source = data.is_file() or any((data / name).is_file() for name in SOURCE_CSV_NAMES)
    if not is_source:
        raise RealAudioBenchError(f"{data}: neither a dataset root (no {METADATA_CSV}) nor a folder with "
                                  f"{' / '.join(SOURCE_CSV_NAMES)}; make one with `python -m birdlab data import`")
    dest = import_root / hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:16]
    report = import_recordings(source=data, dest=dest)
    if report.failed:
        print(f"warning: {report.describe()}", file=sys.stderr)
    return dest


def write_train_root(split: HeldOutSplit, *, dataset_root: Path, dest: Path) -> Path:
    """A BirdCLEF 2021 root at `dest` holding only split.train: train_metadata.csv (the dataset's own rows),
    train_short_audio/<code>/<file> as symbolic links, and species.csv (split.species). Returns dest."""
    if dest.exists():
        for path in sorted(dest.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    keys = {(r.primary_label, r.filename) for r in split.train}
    with (dataset_root / METADATA_CSV).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or METADATA_COLUMNS)
        rows = [row for row in reader if (row["primary_label"], row["filename"]) in keys]
    with (dest / METADATA_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    for r in split.train:
        link = dest / SHORT_AUDIO_DIR / r.primary_label / r.filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(r.audio_path.resolve())
    write_species_csv(split.model_species, dest / "species.csv")
    return dest


def write_species_csv(species: Sequence[Species], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(SPECIES_COLUMNS)
        writer.writerows((s.ebird_code, s.scientific_name, s.common_name) for s in species)
    return path


@dataclass(frozen=True)
class EdgeScores:
    """What the edge runtime reported over the held-out files."""

    scores: np.ndarray
    """float64 (n_files, n_codes): per file and species, the max confidence over the file's windows (0 where the
    species was never reported)."""
    n_windows: int
    """Windows processed (the runtime's status)."""
    n_detections: int
    """Detections written to the jsonl sink (deduplicated by id)."""
    files_failed: int
    """Files the runtime could not read."""
    wall_seconds: float


def _edge_env() -> dict[str, str]:
    """This process's environment without EDGE_RUNTIME_* (a user's device settings must not change the bench)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}


def _edge_command(bundle_dir: Path, files: Sequence[Path], *, work_dir: Path) -> list[str]:
    return run_argv(bundle=bundle_dir, sources=[f"file:{f}" for f in files], sink=f"jsonl:{work_dir / 'detections.jsonl'}",
                    outbox=work_dir / "outbox.sqlite", status=work_dir / "status.json", device_id="real-audio-bench",
                    threshold=EDGE_THRESHOLD, top_n=0, log_format="text")


def edge_scores(bundle_dir: Path, files: Sequence[Path], *, codes: Sequence[str], work_dir: Path,
                timeout_s: float = EDGE_RUN_TIMEOUT_S) -> EdgeScores:
    """Run `python -m edge_runtime run` on the bundle over `files`; clip scores (n_files, len(codes))."""
    files = [Path(f).resolve() for f in files]
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in ("detections.jsonl", "outbox.sqlite", "outbox.sqlite.state", "status.json"):
        for path in work_dir.glob(f"{name}*"):
            path.unlink()
    env = _edge_env()
    start = time.perf_counter()
    try:
        done = subprocess.run(_edge_command(bundle_dir, files, work_dir=work_dir), capture_output=True, text=True,
                              env=env, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise RealAudioBenchError(f"edge runtime over {len(files)} files ran longer than {timeout_s:.0f} s") from None
    wall = time.perf_counter() - start
    (work_dir / "edge_runtime.log").write_text(done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise RealAudioBenchError(f"python -m edge_runtime run exited with {done.returncode}: "
                                  f"{done.stderr.strip()[-800:]}")
    status = json.loads((work_dir / "status.json").read_text(encoding="utf-8"))
    column = {code: j for j, code in enumerate(codes)}
    row = {f"file:{f}": i for i, f in enumerate(files)}
    windows: dict[tuple[int, float], np.ndarray] = {(i, -1.0): np.zeros(len(codes)) for i in range(len(files))}
    seen: set[str] = set()
    detections = work_dir / "detections.jsonl"
    lines = detections.read_text(encoding="utf-8").splitlines() if detections.is_file() else []
    for line in lines:
        d = json.loads(line)
        if d["id"] in seen or d["source"] not in row or d["ebird_code"] not in column:
            continue
        seen.add(d["id"])
        key = (row[d["source"]], float(d["offset_start_s"]))
        vector = windows.setdefault(key, np.zeros(len(codes)))
        vector[column[d["ebird_code"]]] = max(vector[column[d["ebird_code"]]], float(d["confidence"]))
    keys = sorted(windows)
    ids, scores = clip_scores(np.stack([windows[k] for k in keys]), [k[0] for k in keys])
    ordered = np.zeros((len(files), len(codes)))
    ordered[np.asarray(ids, dtype=np.int64)] = scores
    return EdgeScores(scores=ordered, n_windows=int(status.get("windows_processed", 0)), n_detections=len(seen),
                      files_failed=int(status.get("files_failed", 0)), wall_seconds=wall)


def clip_figures(scores: np.ndarray, primary_index: np.ndarray, *, n_scored: int | None = None) -> dict[str, Any]:
    """{top1, macro_ap, padded_cmap, n_species_scored, n_recordings} of recordings with one primary label each.

    scores: (n_recordings, n_species). primary_index: int (n_recordings,). n_scored: only the first n_scored
    columns enter macro AP and padded cmAP (the benchmark's species; extra trained-only classes follow them);
    top-1 is the argmax over every column, as the device would name the species (default: all columns)."""
    scored = scores[:, :n_scored] if n_scored is not None else scores
    truth = np.zeros(scored.shape, dtype=bool)
    truth[np.arange(len(primary_index)), primary_index] = True
    macro = macro_average_precision(truth, scored)
    return {"top1": top1_accuracy(primary_index, scores), "macro_ap": macro.value,
            "padded_cmap": padded_cmap(truth, scored), "n_species_scored": macro.n_scored,
            "n_recordings": int(len(primary_index))}


def baselines(primary_index: np.ndarray, *, n_species: int) -> dict[str, Any]:
    """What trivial rankings score on the same recordings: chance top-1 = 1 / n_species; prevalence AP = the
    expected AP of a random ranking, the mean over the scored species of (positives / recordings)."""
    counts = np.bincount(primary_index, minlength=n_species)
    scored = counts[counts > 0]
    return {"chance_top1": 1.0 / n_species, "prevalence_macro_ap": float(np.mean(scored / len(primary_index))),
            "majority_top1": float(counts.max() / len(primary_index))}


def teacher_clip_scores(teacher: TeacherConfig, files: Sequence[Path], *, species: Sequence[Species],
                        workers: int = 0) -> tuple[np.ndarray, list[str], int]:
    """The teacher's scores of `files` (n_files, n_species), each file cut into consecutive 5-s clips at the
    lab's rate and max-pooled; species the teacher has no output for are scored 0.

    Returns (scores, the unmapped species' codes, files the teacher could not read: scored 0)."""
    labels = read_teacher_labels(teacher.teacher_labels)
    mapped: list[int] = []
    unmapped: list[str] = []
    indices: list[int] = []
    for j, sp in enumerate(species):
        try:
            indices.append(int(teacher_indices([sp], teacher_labels=labels, label_map=teacher.teacher_label_map)[0]))
            mapped.append(j)
        except TeacherLabelError:
            unmapped.append(sp.ebird_code)
    spec = FeatureSpec()
    results = compute_teacher_targets([TeacherJob(Path(f)) for f in files], config=teacher,
                                      sample_rate_hz=spec.sample_rate_hz, clip_samples=spec.clip_samples,
                                      species_indices=np.asarray(indices, dtype=np.int64), workers=workers,
                                      progress=False)
    scores = np.zeros((len(files), len(species)))
    failed = 0
    for i, result in enumerate(results):
        if isinstance(result, TeacherTargets):
            scores[i, mapped] = result.probabilities.max(axis=0)
        else:
            failed += 1
    return scores, unmapped, failed


COST_TARGET_RATIO = 0.1
"""Issue 12: the student may cost at most a tenth of the teacher's compute per second of audio."""


def compute_cost(teacher: TeacherConfig, *, bundle_dir: Path, work_dir: Path) -> dict[str, Any]:
    """Compute per second of audio, one thread each: the teacher (birdlab.teacher.cost, resampling included) and
    the student as the device runs it (`python -m edge_runtime bench` on the bundle: WASM frontend + TF Lite model
    per window); ratio = student / teacher against COST_TARGET_RATIO."""
    spec = FeatureSpec.load(bundle_dir / SPEC_FILENAME)
    taught = teacher_cost(teacher, spec=spec)
    out = work_dir / "edge_bench.json"
    done = subprocess.run([sys.executable, "-m", "edge_runtime", "bench", "--bundle", str(bundle_dir), "--out",
                           str(out)], capture_output=True, text=True, timeout=EDGE_RUN_TIMEOUT_S, check=False,
                          env=_edge_env())
    if done.returncode != 0:
        raise RealAudioBenchError(f"python -m edge_runtime bench exited with {done.returncode}: "
                                  f"{done.stderr.strip()[-800:]}")
    edge = json.loads(out.read_text(encoding="utf-8"))
    student_ms = (edge["frontend_ms_per_window"] + edge["model_ms_per_window"]) / spec.clip_seconds
    ratio = student_ms / taught["teacher_ms_per_audio_second"]
    return {"teacher_ms_per_audio_second": round(taught["teacher_ms_per_audio_second"], 3),
            "student_ms_per_audio_second": round(student_ms, 3),
            "student_frontend_ms_per_window": edge["frontend_ms_per_window"],
            "student_model_ms_per_window": edge["model_ms_per_window"],
            "student_over_teacher": round(ratio, 4), "target_ratio_max": COST_TARGET_RATIO,
            "meets_target": ratio <= COST_TARGET_RATIO,
            "timing": f"teacher: {taught['timing']}; student: python -m edge_runtime bench (one thread, "
                      "frontend + model per window)"}


def _primary_index(recordings: Sequence[Recording], species: Sequence[Species]) -> np.ndarray:
    column = {s.ebird_code: j for j, s in enumerate(species)}
    return np.array([column[r.primary_label] for r in recordings], dtype=np.int64)


def _student(config: TrainConfig, *, split: HeldOutSplit, train_root: Path, work_dir: Path, name: str,
             primary: np.ndarray, progress: bool) -> dict[str, Any]:
    """Train `config` on train_root (its species.csv as labels), export the run, score split.test through the edge
    runtime: {figures, training, edge, timings_s}."""
    # the bench holds out its own test recordings: training keeps every other one (no second test split)
    config = dataclasses.replace(config, species_csv=str((train_root / "species.csv").resolve()), test_fraction=0.0)
    start = time.perf_counter()
    trained = train(config=config, data_dir=train_root, out_dir=work_dir / f"run-{name}", progress=progress)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    bundle = work_dir / f"bundle-{name}"
    exported = export_run(run_dir=trained.run_dir, out_dir=bundle)
    if not exported.ok:
        raise RealAudioBenchError(f"export of {trained.run_dir} failed:\n{exported.to_text()}")
    export_s = time.perf_counter() - start
    edge = edge_scores(bundle, [r.audio_path for r in split.test],
                       codes=[s.ebird_code for s in split.model_species], work_dir=work_dir / f"edge-{name}")
    return {
        "figures": clip_figures(edge.scores, primary, n_scored=len(split.species)),
        "training": {"epochs_run": trained.epochs_run, "train_clips": trained.n_train_clips,
                     "run_dir": str(trained.run_dir), "bundle": str(bundle)},
        "edge": {"n_windows": edge.n_windows, "n_detections": edge.n_detections, "files_failed": edge.files_failed,
                 "threshold": EDGE_THRESHOLD, "top_n": 0, "scoring": "recording score = max over its 5-s windows "
                 "of the edge runtime's confidence; a species not reported in a window counts 0 there"},
        "timings_s": {"train_s": round(train_s, 1), "export_s": round(export_s, 1),
                      "edge_s": round(edge.wall_seconds, 1)},
    }


def run_real_audio_bench(*, data: Path, out: Path, config: TrainConfig, teacher: TeacherConfig | None = None,
                         work_dir: Path | None = None, import_root: Path | None = None,
                         min_recordings: int = MIN_RECORDINGS, test_fraction: float = TEST_FRACTION,
                         train_rare_species: bool = False, progress: bool = True) -> dict[str, Any]:
    """The whole benchmark (module docstring); writes the JSON to `out` and returns it.

    work_dir: runs, bundles, the train root and the edge run's files (default: data/interim/real_audio_bench/<out
    stem>). import_root: where a SOURCES.csv source is imported (default: data/interim/real_audio_import).
    train_rare_species: the species with fewer than min_recordings recordings are trained on as extra classes
    (held_out_split); the scores stay those of the benchmark's species, top-1 is over every class of the model.

    Keys: n_species, n_train, n_test, student {top1, macro_ap, padded_cmap, n_species_scored, n_recordings},
    baselines {chance_top1, prevalence_macro_ap, majority_top1}, counts, student_training,
    edge {n_windows, n_detections, files_failed, threshold, top_n}, split, config, git_commit, git_dirty, timings_s;
    with a teacher also teacher {..., unmapped_species, files_failed} and student_distilled (the same config with
    the teacher: birdlab.training.train's distillation) with student_distilled_training and student_distilled_edge,
    and cost (compute_cost: the teacher's and the distilled student's ms per second of audio and their ratio).
    A teacher with no output for some species is an error before the distilled student is trained (the teacher's
    figures are computed first and the error lists the species).
    """
    started = time.perf_counter()
    git = git_state()  # the code this process runs: read before a long training, in which the tree may change
    work_dir = Path(work_dir) if work_dir is not None else paths.INTERIM_DIR / "real_audio_bench" / Path(out).stem
    work_dir.mkdir(parents=True, exist_ok=True)
    root = resolve_dataset(Path(data), import_root=import_root or paths.INTERIM_DIR / "real_audio_import")
    timings: dict[str, float] = {"import_s": round(time.perf_counter() - started, 1)}
    dataset = BirdCLEF2021(root)
    species_csv = root / "species.csv"
    all_species = load_species(species_csv) if species_csv.is_file() else load_species(config.species_csv)
    recordings = [r for r in dataset.recordings() if r.audio_path.is_file()]
    split = held_out_split(recordings, all_species, min_recordings=min_recordings, test_fraction=test_fraction,
                           seed=config.seed, train_rare_species=train_rare_species)
    if len(split.species) < 2:
        raise RealAudioBenchError(f"{root}: {len(split.species)} species with >= {min_recordings} recordings; "
                                  "the benchmark needs at least 2")
    train_root = write_train_root(split, dataset_root=root, dest=work_dir / "train_root")
    primary = _primary_index(split.test, split.species)
    student = _student(config, split=split, train_root=train_root, work_dir=work_dir, name="student", primary=primary,
                       progress=progress)
    result: dict[str, Any] = {
        "n_species": len(split.species),
        "n_train": len(split.train),
        "n_test": len(split.test),
        "student": student["figures"],
        "baselines": baselines(primary, n_species=len(split.species)),
        "counts": {"recordings_in_dataset": len(recordings), "species_in_dataset": len(all_species),
                   "species_left_out": split.species_left_out, "min_recordings": min_recordings,
                   "test_fraction": test_fraction, "extra_species_trained": len(split.extra_species),
                   "extra_recordings_trained": len(split.train) - len(split.train_of_scored_species)},
        "student_training": student["training"],
        "edge": student["edge"],
        "data": str(root.resolve()),
        "split_seed": [config.seed, SPLIT_SALT],
        "split": split.to_dict(),
        "config": config.to_dict(),
        "git_commit": git.commit,
        "git_dirty": git.dirty,
    }
    timings.update({f"student_{k}": v for k, v in student["timings_s"].items()})
    if teacher is not None:
        start = time.perf_counter()
        scores, unmapped, failed = teacher_clip_scores(teacher, [r.audio_path for r in split.test],
                                                       species=split.species)
        timings["teacher_s"] = round(time.perf_counter() - start, 1)
        result["teacher"] = {**clip_figures(scores, primary), "unmapped_species": unmapped, "files_failed": failed,
                             "model": Path(teacher.teacher_model).name}
        if unmapped:
            raise RealAudioBenchError(f"{len(unmapped)} species have no teacher output ({', '.join(unmapped)}): "
                                      "the student cannot be distilled; give a teacher_label_map in the teacher "
                                      "settings, or leave --teacher out")
        distilled = _student(dataclasses.replace(config, teacher=teacher), split=split, train_root=train_root,
                             work_dir=work_dir, name="student_distilled", primary=primary, progress=progress)
        result["student_distilled"] = distilled["figures"]
        result["student_distilled_training"] = {**distilled["training"], "teacher_weight": teacher.teacher_weight,
                                                "teacher_temperature": teacher.teacher_temperature}
        result["student_distilled_edge"] = distilled["edge"]
        timings.update({f"student_distilled_{k}": v for k, v in distilled["timings_s"].items()})
        result["cost"] = compute_cost(teacher, bundle_dir=Path(distilled["training"]["bundle"]), work_dir=work_dir)
    timings["total_s"] = round(time.perf_counter() - started, 1)
    result["timings_s"] = timings
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def describe(result: dict[str, Any]) -> str:
    """One paragraph: the student's (and teacher's) figures beside the baselines, with counts."""
    s, b = result["student"], result["baselines"]
    text = (f"{result['n_species']} species, {result['n_train']} train / {result['n_test']} held-out recordings: "
            f"student macro AP {s['macro_ap']:.3f} (prevalence {b['prevalence_macro_ap']:.3f}), top-1 {s['top1']:.3f} "
            f"(chance {b['chance_top1']:.3f}), padded cmAP {s['padded_cmap']:.3f}, through the edge runtime "
            f"({result['edge']['n_windows']} windows)")
    if "teacher" in result:
        t = result["teacher"]
        d = result["student_distilled"]
        text += (f"; teacher macro AP {t['macro_ap']:.3f}, top-1 {t['top1']:.3f}; student distilled from it "
                 f"macro AP {d['macro_ap']:.3f}, top-1 {d['top1']:.3f}")
        if "cost" in result:
            c = result["cost"]
            text += (f"; compute per audio second: student {c['student_ms_per_audio_second']:.2f} ms, teacher "
                     f"{c['teacher_ms_per_audio_second']:.1f} ms (ratio {c['student_over_teacher']:.3f}, target "
                     f"<= {c['target_ratio_max']})")
    return text + f"; {result['timings_s']['total_s']:.0f} s"
