"""The tiny preset under MirroredStrategy over 2 logical CPU devices, in its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import dataclasses, json, sys
    from pathlib import Path
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from birdlab.training.train import select_strategy, train
    from birdlab.training.config import tiny

    data, out, cache = (Path(a) for a in sys.argv[1:4])
    assert type(select_strategy("auto")).__name__ == "_DefaultDistributionStrategy"
    result = train(config=dataclasses.replace(tiny(), strategy="mirrored"), data_dir=data, out_dir=out,
                   cache_root=cache, progress=False)
    print(json.dumps({"f1": result.metrics["row_wise_micro_f1"], "epochs": result.epochs_run}))
""")


@pytest.mark.slow
def test_tiny_preset_trains_under_mirrored_strategy_on_two_logical_cpus(synthetic_quick: Path, tmp_path: Path) -> None:
    run = tmp_path / "mirrored"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(synthetic_quick), str(run), str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] >= 1 and 0.0 <= summary["f1"] <= 1.0
    info = json.loads((run / "run_info.json").read_text())
    assert info["strategy"] == "MirroredStrategy" and info["strategy_kind"] == "mirrored"
    assert info["replicas"] == 2
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()


MULTI_WORKER_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    from birdlab.training.train import train
    from birdlab.training.config import tiny

    data, out, cache = (Path(a) for a in sys.argv[1:4])
    train(config=tiny(), data_dir=data, out_dir=out, cache_root=cache, progress=False)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_tf_config_selects_multi_worker_mirrored_strategy(synthetic_quick: Path, tmp_path: Path) -> None:
    """A one-worker cluster on 127.0.0.1: 'auto' must pick MultiWorkerMirroredStrategy and train under it."""
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{_free_port()}"]}, "task": {"type": "worker", "index": 0}}
    run = tmp_path / "multi_worker"
    proc = subprocess.run([sys.executable, "-c", MULTI_WORKER_SCRIPT, str(synthetic_quick), str(run),
                           str(tmp_path / "cache")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CONFIG": json.dumps(tf_config)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((run / "run_info.json").read_text())
    assert info["strategy_kind"] == "multi_worker"
    assert info["strategy"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
    assert (run / "metrics.json").is_file()
