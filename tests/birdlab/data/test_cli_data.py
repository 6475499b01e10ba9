"""`python -m birdlab data synth` and the demo's dataset step, through the real CLI."""

import subprocess
import sys

from birdlab.cli import main
from birdlab.data.birdclef2021 import BirdCLEF2021


def test_data_synth_writes_the_requested_sizes(tmp_path, capsys):
    code = main(["data", "synth", "--dest", str(tmp_path), "--species", "3", "--per-species", "2",
                 "--soundscapes", "1", "--seed", "7"])
    assert code == 0
    assert "3 species, 6 recordings, 1 soundscapes" in capsys.readouterr().out
    assert len(BirdCLEF2021(tmp_path).recordings()) == 6


def test_user_errors_print_a_message_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "birdlab", "data", "synth", "--dest", str(tmp_path),
                           "--species", "99"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "error: n_species must be in [1, 24]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_dataset_step_prints_the_summary_table(synthetic_quick, capsys):
    from birdlab.demo import DemoContext, step_dataset

    ctx = DemoContext(data_dir=synthetic_quick, quick=True)
    step_dataset(ctx)
    out = capsys.readouterr().out
    assert "species" in out and "recordings" in out and "soundscape rows" in out
    assert "soundscapes: 1 files, 6 scored rows" in out
