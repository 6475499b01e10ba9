"""edge_runtime stays thin: importing every module, and `python -m edge_runtime --help`, pull in none of the
lab's heavy packages (the Raspberry Pi has only numpy, wasmtime and LiteRT)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import edge_runtime

FORBIDDEN = ("tensorflow", "keras", "librosa", "pandas", "matplotlib", "birdlab", "scipy", "sklearn")
ALLOWED_THIRD_PARTY = ("numpy", "wasmtime", "ai_edge_litert", "tflite_runtime", "soxr", "soundfile")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[str]:
    return sorted(f"edge_runtime.{m.name}" for m in pkgutil.iter_modules(edge_runtime.__path__)
                  if m.name != "__main__")


def _run(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_module_imports_without_heavy_packages() -> None:
    modules = _modules()
    assert {"edge_runtime.pipeline", "edge_runtime.bundle", "edge_runtime.cli", "edge_runtime.frontend"} <= set(modules)
    loaded = _run(
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert heavy == [], f"edge_runtime imported {heavy}"
    top_level = {m.split(".")[0] for m in loaded}
    assert "numpy" in top_level and "wasmtime" in top_level


def test_cli_help_and_check_do_not_import_heavy_packages(tmp_path: Path) -> None:
    loaded = _run(
        "import contextlib, io, json, sys\n"
        "from edge_runtime.cli import main\n"
        "out = io.StringIO()\n"
        "for argv in (['--help'], ['run', '--help'], ['check', '--bundle', 'nowhere']):\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    heavy = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert heavy == [], f"python -m edge_runtime imported {heavy}"
    result = subprocess.run([sys.executable, "-m", "edge_runtime", "--help"], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=60)
    assert result.returncode == 0 and "run" in result.stdout and "check" in result.stdout


def test_source_imports_only_allowed_packages() -> None:
    """Static check of every import statement (lazy ones too): stdlib, the allowed packages, edge_runtime."""
    stdlib = set(sys.stdlib_module_names)
    for path in sorted((REPO_ROOT / "edge_runtime").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ("__future__", "edge_runtime") or top in stdlib:
                    continue
                assert top in ALLOWED_THIRD_PARTY, f"{path.name}, line {node.lineno}: imports {name!r}"


def test_a_whole_run_imports_no_heavy_package(tmp_path_factory, tmp_path: Path) -> None:
    """`python -X importtime -m edge_runtime run` over a file: every module the run imported is listed on stderr."""
    import os

    from edge_bundle_factory import session_bundle, tone_sequence, write_wav

    from edge_runtime.spec import FeatureSpec

    bundle_dir = session_bundle(tmp_path_factory)
    spec = FeatureSpec()
    write_wav(tmp_path / "a.wav", tone_sequence([0, 1], spec=spec), sample_rate_hz=spec.sample_rate_hz)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_RUNTIME_")}
    env["EDGE_RUNTIME_CACHE_DIR"] = str(tmp_path / "cache")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edge_runtime", "run", "--bundle", str(bundle_dir),
         "--source", f"file:{tmp_path / 'a.wav'}", "--sink", f"jsonl:{tmp_path / 'out.jsonl'}",
         "--outbox", str(tmp_path / "outbox.sqlite")],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "edge_runtime.pipeline" in imported and "wasmtime" in imported, "importtime output was parsed"
    heavy = sorted(m for m in imported if m.split(".")[0] in FORBIDDEN)
    assert heavy == [], f"a run imported {heavy}"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
