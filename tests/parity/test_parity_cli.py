"""`python -m birdlab parity`: files and directories in, parity.json + report.html out, exit 1 above
the tolerance, unreadable files listed as skipped, user mistakes reported without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from birdlab import paths
from birdlab.cli import main
from birdlab.frontend.parity import MEL_DB_ATOL, PARITY_JSON, REPORT_HTML, compare_log_mel
from edge_runtime.spec import FeatureSpec

FILE_KEYS = {"path", "seconds", "frames", "max_abs_db_error", "mean_abs_db_error", "p99_abs_db_error",
             "max_rel_power_error", "fraction_bit_identical"}


def _write_wav(path: Path, samples: np.ndarray, *, sample_rate_hz: int) -> Path:
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture
def audio_dir(tmp_path: Path, rng: np.random.Generator) -> Path:
    """Two short WAVs (one at 22.05 kHz, resampled on load), a corrupt one, and a non-audio file."""
    root = tmp_path / "audio"
    (root / "sub").mkdir(parents=True)
    t = np.arange(32000) / 32000
    _write_wav(root / "tone.wav", 0.5 * np.sin(2 * np.pi * 2000 * t), sample_rate_hz=32000)
    _write_wav(root / "sub" / "noise.wav", 0.2 * rng.standard_normal(11025), sample_rate_hz=22050)
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    (root / "notes.txt").write_text("not audio")
    return root


def test_parity_cli_writes_json_and_report(audio_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "parity"
    code = main(["parity", "--audio", str(audio_dir), "--out", str(out)])
    report = json.loads((out / PARITY_JSON).read_text())
    assert code == 0
    assert [Path(f["path"]).name for f in report["files"]] == ["noise.wav", "tone.wav"]
    for entry in report["files"]:
        assert set(entry) == FILE_KEYS
        assert 0 <= entry["max_abs_db_error"] <= MEL_DB_ATOL
        # mean and p99 are each at most the max; the mean may exceed p99 when over 99 % of cells are bit-identical
        assert entry["mean_abs_db_error"] <= entry["max_abs_db_error"]
        assert entry["p99_abs_db_error"] <= entry["max_abs_db_error"]
        assert 0.0 <= entry["fraction_bit_identical"] <= 1.0
    assert {f["frames"] for f in report["files"]} == {101, 51}
    summary = report["summary"]
    worst = max(report["files"], key=lambda f: f["max_abs_db_error"])
    assert summary["worst_file"] == worst["path"] and summary["passed"] is True
    assert [Path(s["path"]).name for s in report["skipped"]] == ["broken.wav"]
    assert report["spec"] == FeatureSpec().to_dict()
    html = (out / REPORT_HTML).read_text()
    # per worst file: spectrograms + error heatmap, and the error histogram
    assert html.count("data:image/png;base64,") == 2 * 2 and "broken.wav" in html


def test_exit_code_follows_the_tolerance(audio_dir: Path, tmp_path: Path) -> None:
    """With a tiny tolerance the verdict is decided by the measured error, and the exit code follows it."""
    out = tmp_path / "strict"
    tolerance = 1e-9
    code = main(["parity", "--audio", str(audio_dir / "tone.wav"), "--out", str(out), "--tolerance-db", str(tolerance)])
    report = json.loads((out / PARITY_JSON).read_text())
    assert report["summary"]["tolerance_db"] == tolerance
    assert code == (1 if report["summary"]["max_abs_db_error"] > tolerance else 0)


def test_spec_file_is_used(audio_dir: Path, tmp_path: Path) -> None:
    spec = FeatureSpec(n_mels=40, n_fft=512, win_length=512, hop_length=160, pad_mode="reflect")
    spec_path = spec.save(tmp_path / "feature_spec.json")
    out = tmp_path / "spec40"
    assert main(["parity", "--audio", str(audio_dir / "tone.wav"), "--out", str(out), "--spec", str(spec_path)]) == 0
    report = json.loads((out / PARITY_JSON).read_text())
    assert report["spec"]["n_mels"] == 40 and report["files"][0]["frames"] == 1 + 32000 // 160


def test_user_mistakes_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "--audio", str(tmp_path / "nowhere.wav"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere.wav" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["parity", "--audio", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no audio files" in capsys.readouterr().err
    bad_spec = tmp_path / "bad.json"
    bad_spec.write_text('{"schema_version": 1, "n_fft": 1022}')
    assert main(["parity", "--audio", str(tmp_path), "--out", str(tmp_path / "o"), "--spec", str(bad_spec)]) == 2
    assert "n_fft" in capsys.readouterr().err


def test_compare_log_mel_figures() -> None:
    reference = np.array([[0.0, -10.0], [10.0, 20.0]], dtype=np.float32)
    candidate = reference.copy()
    candidate[1, 1] += np.float32(0.5)
    figures = compare_log_mel(reference, candidate)
    assert figures["max_abs_db_error"] == pytest.approx(0.5)
    assert figures["mean_abs_db_error"] == pytest.approx(0.125)
    assert figures["fraction_bit_identical"] == 0.75
    assert figures["max_rel_power_error"] == pytest.approx(10 ** 0.05 - 1)
    with pytest.raises(ValueError, match="shape mismatch"):
        compare_log_mel(reference, candidate[:, :1])


@pytest.mark.slow
def test_parity_as_a_subprocess(audio_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub"
    result = subprocess.run([sys.executable, "-m", "birdlab", "parity", "--audio", str(audio_dir / "sub"),
                             "--out", str(out)], cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "parity PASS: 1 file(s)" in result.stdout
    assert (out / PARITY_JSON).is_file() and (out / REPORT_HTML).is_file()
