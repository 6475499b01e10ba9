"""report.html of a parity run: a table of every file and, for the worst files, the two
spectrograms side by side, the error heatmap and the error histogram (PNG, base64-embedded,
so the report is one self-contained file)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from birdlab.parity import ParityReport, WorstCase

MAX_TABLE_ROWS = 200


def _png_base64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def worst_case_figure(case: WorstCase, *, tolerance_db: float):
    """Figure with four panels: librosa dB, WASM dB, (WASM - librosa) heatmap, |error| histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref, cand = case.reference_db, case.candidate_db
    err = cand.astype(np.float64) - ref.astype(np.float64)
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.6), layout="constrained")
    vmin, vmax = float(ref.min()), float(ref.max())
    for ax, data, title in ((axes[0], ref, "librosa (dB)"), (axes[1], cand, "WASM (dB)")):
        im = ax.imshow(data, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma")
        ax.set(title=title, xlabel="frame", ylabel="mel band")
        fig.colorbar(im, ax=ax)
    bound = max(float(np.abs(err).max()), 1e-12)
    im = axes[2].imshow(err, origin="lower", aspect="auto", vmin=-bound, vmax=bound, cmap="coolwarm")
    axes[2].set(title="WASM - librosa (dB)", xlabel="frame", ylabel="mel band")
    fig.colorbar(im, ax=axes[2])
    abs_err = np.abs(err).ravel()
    nonzero = abs_err[abs_err > 0]
    if nonzero.size:
        bins = np.logspace(np.log10(nonzero.min()), np.log10(max(nonzero.max(), tolerance_db)) + 0.1, 40)
        axes[3].hist(nonzero, bins=bins, color="tab:blue")
        axes[3].set_xscale("log")
    axes[3].axvline(tolerance_db, color="tab:red", linestyle="--", label=f"tolerance {tolerance_db:g} dB")
    axes[3].set(title=f"|error| of {nonzero.size} non-identical cells (of {abs_err.size})", xlabel="|dB error|",
                ylabel="cells")
    axes[3].legend(loc="upper left")
    fig.suptitle(Path(case.parity.path).name)
    return fig


def write_report(path: Path, *, report: ParityReport, worst: list[WorstCase]) -> Path:
    """Write the self-contained HTML report to `path` and return it."""
    import matplotlib.pyplot as plt

    summary = report.summary()
    rows = sorted(report.files, key=lambda f: f.max_abs_db_error, reverse=True)[:MAX_TABLE_ROWS]
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            f.path, f"{f.seconds:.2f}", f.frames, f"{f.max_abs_db_error:.3g}", f"{f.mean_abs_db_error:.3g}",
            f"{f.p99_abs_db_error:.3g}", f"{f.max_rel_power_error:.3g}", f"{100 * f.fraction_bit_identical:.1f} %",
        )) + "</tr>"
        for f in rows
    )
    figures = []
    for case in worst:
        fig = worst_case_figure(case, tolerance_db=report.tolerance_db)
        figures.append(f"<h3>{html.escape(case.parity.path)}</h3>"
                       f'<img alt="spectrograms and errors" src="data:image/png;base64,{_png_base64(fig)}">')
        plt.close(fig)
    skipped = "".join(f"<li>{html.escape(p)}: {html.escape(r)}</li>" for p, r in report.skipped)
    verdict = "PASS" if report.passed else "FAIL"
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>birdlab parity: librosa vs melspec.wasm</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}} img{{max-width:100%}}</style></head><body>
<h1>Parity {verdict}: librosa vs melspec.wasm</h1>
<p>{html.escape(report.describe()).replace(chr(10), "<br>")}</p>
<p>wasm {html.escape(report.wasm_path)} (sha256 {report.wasm_sha256[:16]}…); versions
{html.escape(", ".join(f"{k} {v}" for k, v in report.versions.items()))}; spec hash {report.spec.spec_hash}</p>
<h2>Files (worst first{", first " + str(MAX_TABLE_ROWS) if len(report.files) > MAX_TABLE_ROWS else ""})</h2>
<table><tr><th>path</th><th>seconds</th><th>frames</th><th>max |dB err|</th><th>mean |dB err|</th>
<th>p99 |dB err|</th><th>max rel power err</th><th>bit-identical</th></tr>{cells}</table>
<h2>Worst files</h2>{"".join(figures) or "<p>none</p>"}
<h2>Skipped files</h2><ul>{skipped or "<li>none</li>"}</ul>
<p>summary: {html.escape(str(summary))}</p>
</body></html>
"""
    path.write_text(text, encoding="utf-8")
    return path
