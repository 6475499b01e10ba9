"""report.html of a parity run: a table of every file and, for the worst files, the two
spectrograms side by side, the error heatmap and the error histogram (PNG, base64-embedded,
so the report is one self-contained file). The figures are birdlab.frontend.figures's, as in notebook 04."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

from birdlab.frontend.figures import plot_error_histogram, plot_side_by_side

if TYPE_CHECKING:
    from birdlab.frontend.parity import ParityReport, WorstCase

MAX_TABLE_ROWS = 200


def _png_base64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_report(path: Path, *, report: ParityReport, worst: list[WorstCase]) -> Path:
    """Write the self-contained HTML report to `path` and return it."""

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
        side_by_side = _png_base64(plot_side_by_side(case))
        histogram = _png_base64(plot_error_histogram([case], tolerance_db=report.tolerance_db))
        figures.append(f"<h3>{html.escape(case.parity.path)}</h3>"
                       f'<img alt="librosa and WASM spectrograms, error heatmap" src="data:image/png;base64,{side_by_side}">'
                       f'<img alt="error histogram" src="data:image/png;base64,{histogram}">')
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
