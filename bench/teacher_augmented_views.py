"""Augmented views: re-labelled by the teacher (consistent teaching) or the clean clip's targets reused? JSON.

    python bench/teacher_augmented_views.py --out bench/results/teacher_augmented_views.json [--seeds 3] [--views 3]

On the synthetic distillation task (birdlab.teacher.synthetic_task, default size) with the tiny teacher that
knows the voices (birdlab.teacher.tiny), each 5-s training clip (crops of the labelled recordings and windows of
the unlabelled ones) gets `views` augmented copies made in the AUDIO domain, where the raw-audio teacher can run:
a gain of +-6 dB, pink noise at 0-15 dB SNR (half the views) and a mix with another clip at -9..0 dB (40 %).
Two students (the tiny model, same seed, same views, same epochs) learn the teacher's targets alone
(teacher_weight 1): `reuse` takes the clean clip's targets (the maximum of both clips' for a mix, as training's
mixup does), `consistent` takes the teacher's targets of the augmented audio itself. Both are scored on the
held-out recordings (max over 5-s windows): macro AP and top-1, per seed and averaged, with the counts.
The training pipeline itself augments log-mel features, where the teacher cannot run, so it reuses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from birdlab.data.species import load_species
from birdlab.features.cache import fit_clip
from birdlab.features.log_mel import log_mel
from birdlab.metrics import macro_average_precision, top1_accuracy
from birdlab.teacher.config import TeacherConfig
from birdlab.teacher.model import TeacherModel
from birdlab.teacher.synthetic_task import DistillationTaskConfig, make_distillation_task
from birdlab.teacher.tiny import TEACHER_SAMPLE_RATE_HZ, synth_teacher
from birdlab.training.model import build_model, tiny
from birdlab.training.teacher_targets import species_indices
from edge_runtime.audio import load_audio
from edge_runtime.spec import FeatureSpec

SPEC = FeatureSpec()


def clips_of(path: Path) -> list[np.ndarray]:
    """Consecutive 5-s clips of a file at the lab's rate (the last zero-padded)."""
    samples = load_audio(path, sample_rate_hz=SPEC.sample_rate_hz)
    n = SPEC.clip_samples
    return [fit_clip(samples[s:], clip_samples=n) for s in range(0, max(1, len(samples)), n)]


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n=n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def augmented_view(clips: list[np.ndarray], i: int, rng: np.random.Generator) -> tuple[np.ndarray, int | None]:
    """(view of clip i, index of the clip mixed in or None)."""
    x = clips[i] * 10 ** (rng.uniform(-6, 6) / 20)
    rms = np.sqrt(np.mean(x**2)) + 1e-9
    if rng.random() < 0.5:
        x = x + pink_noise(rng, x.size) * rms * 10 ** (-rng.uniform(0, 15) / 20)
    partner = None
    if rng.random() < 0.4:
        partner = int(rng.integers(len(clips)))
        x = x + clips[partner] * 10 ** (rng.uniform(-9, 0) / 20)
    return x.astype(np.float32), partner


def train_student(features: np.ndarray, targets: np.ndarray, *, seed: int, epochs: int):
    import keras

    from birdlab.teacher.distill import distillation_loss, pack_targets

    keras.utils.set_random_seed(seed)
    model = build_model(config=tiny(), input_shape=SPEC.input_shape, n_species=targets.shape[1],
                        norm_mean_db=float(features.mean()), norm_std_db=float(features.std()) or 1.0)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss=distillation_loss(teacher_weight=1.0))
    y = pack_targets(hard=np.zeros_like(targets), teacher=targets, labelled=np.ones(len(targets), bool))
    model.fit(features[..., None], y, epochs=epochs, batch_size=16, shuffle=True, verbose=0)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("data/interim/bench_teacher_views"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    task_config = DistillationTaskConfig()
    task = make_distillation_task(args.work / "task", config=task_config)
    species = tuple(load_species()[: task_config.synth.n_species])
    built = synth_teacher(args.work / "teacher", species=species, seed=task_config.synth.seed)
    teacher = TeacherConfig(teacher_model=str(built.model_path), teacher_labels=str(built.labels_path),
                            teacher_sample_rate_hz=TEACHER_SAMPLE_RATE_HZ)
    model = TeacherModel.from_config(teacher)
    columns = species_indices(teacher, species=species, model=model)

    def label(clip: np.ndarray) -> np.ndarray:
        return model.clip_probabilities(clip, sample_rate_hz=SPEC.sample_rate_hz)[columns]

    train_files = sorted((task.labelled_dir / "train_short_audio").rglob("*.ogg")) + sorted(
        task.unlabelled_dir.glob("*.ogg"))
    clips = [c for path in train_files for c in clips_of(path)]
    clean = np.stack([label(c) for c in clips])
    heldout = task.heldout_recordings()
    codes = [s.ebird_code for s in species]
    held_clips = [clips_of(r.audio_path) for r in heldout]
    held_features = [np.stack([log_mel(c, spec=SPEC) for c in cs]) for cs in held_clips]
    truth = np.zeros((len(heldout), len(codes)), bool)
    truth[np.arange(len(heldout)), [codes.index(r.primary_label) for r in heldout]] = True
    primary = np.argmax(truth, axis=1)

    runs = []
    for seed in range(args.seeds):
        rng = np.random.default_rng([seed, 97])
        features, reuse, consistent = [], [], []
        for i in range(len(clips)):
            for _ in range(args.views):
                view, partner = augmented_view(clips, i, rng)
                features.append(log_mel(view, spec=SPEC))
                reuse.append(clean[i] if partner is None else np.maximum(clean[i], clean[partner]))
                consistent.append(label(view))
        x = np.stack(features)
        for kind, targets in (("reuse", np.stack(reuse)), ("consistent", np.stack(consistent))):
            student = train_student(x, targets.astype(np.float32), seed=seed, epochs=args.epochs)
            scores = np.stack([np.asarray(student.predict(f[..., None], verbose=0)).max(axis=0)
                               for f in held_features])
            runs.append({"seed": seed, "targets": kind, "macro_ap": macro_average_precision(truth, scores).value,
                         "top1": top1_accuracy(primary, scores),
                         "mean_abs_target_change_vs_clean": float(np.abs(targets - np.stack(reuse)).mean())})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    summary = {kind: {key: float(np.mean([r[key] for r in runs if r["targets"] == kind])) for key in ("macro_ap", "top1")}
               for kind in ("reuse", "consistent")}
    result = {
        "bench": "teacher_augmented_views", "n_species": len(species), "n_train_clips": len(clips),
        "views_per_clip": args.views, "n_train_views": len(clips) * args.views, "n_heldout_recordings": len(heldout),
        "seeds": args.seeds, "epochs": args.epochs, "runs": runs, "mean": summary,
        "consistent_minus_reuse_macro_ap": summary["consistent"]["macro_ap"] - summary["reuse"]["macro_ap"],
        "chance_top1": 1 / len(species), "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("mean", "consistent_minus_reuse_macro_ap", "n_train_views")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
