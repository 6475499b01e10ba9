"""MODEL_CARD.md of a bundle: data, species, metrics, equivalence, runtime floor and limits, in plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from birdlab.teacher.record import model_card_section

LIMITS = (
    "Trained on BirdCLEF 2021 recordings (xeno-canto focal recordings and a few annotated soundscapes) of the listed "
    "species only; any other sound is either 'nocall' or mistaken for one of them.",
    "Scores are per 5-s window at one threshold chosen on validation data; they are not calibrated probabilities.",
    "When the run was trained on the embedded synthetic dataset (the offline default), its figures say nothing about "
    "real birds.",
    "The input must be the log-mel spectrogram of feature_spec.json computed outside the model (librosa in the lab, "
    "melspec.wasm on the device); any other front end voids the figures.",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _value(value: Any) -> str:
    return "n/a" if value is None else _fmt(float(value))


def metrics_section(metrics: dict[str, Any]) -> list[str]:
    """Markdown lines of the card's metrics: the headline, the clip table of held-out recordings and the soundscape
    figure, each beside its baseline and counts (metrics.json 'headline', 'clip', 'soundscape'), then the other
    scalar figures. A run evaluated before the headline says so."""
    top = metrics.get("headline")
    if top is None:
        lines = ["**Headline:** none: metrics.json predates the headline and clip figures; re-run "
                 "`python -m birdlab evaluate` on the run."]
    elif top.get("metric"):
        lines = [f"**Headline:** `{top['metric']}` = {_value(top['value'])}: {top['why']}."]
    else:
        lines = [f"**Headline:** none: {top['why']}."]
    clip = metrics.get("clip")
    lines += ["", "### Held-out recordings (clip level: max over each recording's 5-s windows)"]
    if clip:
        base = clip.get("baseline", {})
        lines += [
            f"{clip['n_recordings']} recordings never trained on ({clip.get('n_windows', '?')} windows), "
            f"{clip.get('n_species_scored', '?')} of {len(clip['per_class'])} species with a held-out positive.",
            "",
            "| figure | value | trivial baseline |",
            "|---|---|---|",
            f"| macro AP | {_value(clip['macro_ap'])} | {_value(base.get('macro_ap'))} (random ranking) |",
            f"| padded cmAP (BirdCLEF 2022+) | {_value(clip['padded_cmap'])} | {_value(base.get('padded_cmap'))} "
            "(one constant score) |",
            f"| top-1 of the primary label | {_value(clip['top1'])} | {_value(base.get('top1'))} (majority class; "
            f"chance {_value(base.get('top1_chance'))}) |",
            "",
            f"Per species, precision/recall/F1 at the threshold {_value(clip.get('threshold'))}:",
            "",
            "| species | recordings | AP | AP baseline | precision | recall | F1 |",
            "|---|---|---|---|---|---|---|",
            *[f"| {code} | {row['n_positive']} | {_value(row['ap'])} | {_value(row.get('ap_baseline'))} | "
              f"{_value(row['precision'])} | {_value(row['recall'])} | {_value(row['f1'])} |"
              for code, row in clip["per_class"].items()],
        ]
    else:
        lines.append(f"- None: {metrics.get('clip_note') or 'no held-out recordings were scored'}.")
    scape = metrics.get("soundscape")
    lines += ["", "### Soundscapes (BirdCLEF 2021 row-wise micro F1)"]
    if scape:
        lines.append(f"- {_value(scape['row_wise_micro_f1'])} on {scape['rows']} rows of the "
                     f"{scape.get('scored_on', 'test soundscapes')}, {scape['positive_rows']} of them with a species of "
                     f"this model; predicting nocall everywhere scores {_value(scape['nocall_baseline_f1'])}.")
        if scape["degenerate"]:
            lines.append(f"- **Degenerate:** fewer than {scape.get('min_positive_rows', 50)} rows hold a species of "
                         "this model, too few to tell it from a model that never predicts a bird; the figure is "
                         "never the headline.")
    else:
        lines.append("- None: no test soundscape rows were scored.")
    scalar = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    lines += ["", "### Other figures (per scored 5-s window)"]
    lines += [f"- {k}: {_fmt(v)}" for k, v in sorted(scalar.items())] or ["- none recorded"]
    return lines


def render_model_card(*, run: Any, fields: dict[str, Any], audit: Any, equivalence_text: str, chosen: Any,
                      labels: tuple[Any, ...]) -> str:
    """The card's Markdown. run: birdlab.training.run_dir.TrainedRun; fields: the manifest fields; labels: edge_runtime Labels."""
    spec = run.spec
    metrics = fields.get("metrics", {})
    parity = fields.get("parity", {})
    roots = run.run_info.get("data_dirs") or ([run.run_info["data_dir"]] if run.run_info.get("data_dir") else [])
    data = ", ".join(map(str, roots)) or "see the run's run_info.json"
    lines = [
        f"# Model card: {fields['model_id']}",
        "",
        f"Bird-call classifier from run `{fields['run_id']}`, TFLite variant **{fields['variant']}**, exported by "
        f"birdlab {fields['birdlab_version']} (commit {fields['git_commit'] or 'unknown'}).",
        "",
        "## Input and output",
        f"- Input: float32 (1, {spec.n_mels}, {spec.clip_frames}, 1), the log-mel spectrogram in dB of a "
        f"{spec.clip_seconds:g}-s clip at {spec.sample_rate_hz} Hz (n_fft {spec.n_fft}, hop {spec.hop_length}, "
        f"{spec.n_mels} mels {spec.fmin_hz:g}-{spec.fmax_hz:g} Hz, top_db {spec.top_db}); see feature_spec.json.",
        f"- Output: float32 (1, {len(labels)}) sigmoid probabilities in the order of labels.csv; a species is "
        f"detected at >= {fields['threshold']:.2f}.",
        "",
        "## Data",
        f"- Dataset: {data}.",
        *[f"- Clips ({name}): {count}" for name, count in sorted(run.run_info.get("clips", {}).items())],
        f"- Metrics evaluated on: {metrics.get('evaluated_on', 'see metrics.json')}.",
        "",
        "## Species",
        "| index | eBird code | scientific name | common name |",
        "|---|---|---|---|",
        *[f"| {lab.index} | {lab.ebird_code} | *{lab.scientific_name}* | {lab.common_name} |" for lab in labels],
        "",
        "## Metrics (from training, Keras model)",
        *metrics_section(metrics),
    ]
    teacher = metrics.get("teacher")
    if isinstance(teacher, dict) and teacher.get("macro_ap") is not None:
        student = teacher.get("student") or {}
        lines.append(f"- teacher on {teacher.get('evaluated_on')}: macro AP {_fmt(teacher['macro_ap'])}, top-1 "
                     f"{_fmt(teacher.get('top1'))} (this student on the same recordings: macro AP "
                     f"{_fmt(student.get('macro_ap'))}, top-1 {_fmt(student.get('top1'))})")
    if getattr(run, "teacher", None):
        lines += ["", *model_card_section(run.teacher).rstrip("\n").split("\n")]
    lines += ["", "## Keras vs TFLite", "```", equivalence_text, "```"]
    if chosen is not None and chosen.meets_target is False:
        lines.append(f"**Warning:** the shipped variant misses its target ({chosen.target}).")
    lines += [
        "",
        "## Runtime compatibility",
        f"- Op audit against TF Lite {audit.floor}: {'passed' if audit.ok else 'FAILED'}; ops: "
        + ", ".join(f"{op.name} v{op.version}" for op in audit.ops) + ".",
        f"- min_runtime_version metadata: {audit.metadata_min_runtime or 'absent'}; by TF Lite's op-version table: "
        f"{audit.table_min_runtime or 'unknown'}.",
        "",
        "## Front-end parity (librosa vs melspec.wasm)",
        "- " + (f"{parity.get('status')}: max |dB error| {_fmt(parity.get('max_abs_db_error'))} "
                f"(tolerance {_fmt(parity.get('tolerance_db'))}) on {', '.join(parity.get('signals', []))}"
                if "max_abs_db_error" in parity else str(parity.get("status", "not measured"))),
        "",
        "## Limits",
        *[f"- {limit}" for limit in LIMITS],
        "",
    ]
    return "\n".join(lines)


def write_model_card(path: Path, **kwargs: Any) -> Path:
    """Write render_model_card(**kwargs) to path."""
    path.write_text(render_model_card(**kwargs), encoding="utf-8")
    return path
