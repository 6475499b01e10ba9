"""One settings vocabulary (issue 10.6): one unit suffix, the delivery and outbox settings nested in EdgeSettings,
`flush` reading the same TOML file and EDGE_RUNTIME_* variables as `run`, one exception root, one argv builder."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from receiver_process import REPO_ROOT, python_env
from sample_detections import make_detections

import edge_runtime
from edge_runtime.cli import build_parser, run_argv, settings_from_args
from edge_runtime.delivery import DeliverySettings
from edge_runtime.errors import EdgeRuntimeError
from edge_runtime.outbox import Outbox, OutboxSettings
from edge_runtime.receiver import ReceiverSettings, start_receiver
from edge_runtime.settings import EdgeSettings, SettingsError, load_settings, setting_fields

UNIT_SUFFIXES = ("_s", "_hz", "_bytes", "_rows")


def test_one_unit_suffix_and_old_spellings_still_read():
    names = [f.name for f in setting_fields()]
    assert not [n for n in names if n.endswith(("_seconds", "_sec", "_ms"))]
    assert {"timeout_s", "flush_deadline_s", "overlap_s", "backoff_initial_s", "backoff_max_s"} <= set(names)
    old = load_settings(environ={"EDGE_RUNTIME_SHUTDOWN_FLUSH_SECONDS": "3"},
                        flags={"overlap_s": None}, config_path=None)
    assert old.flush_deadline_s == 3.0
    args = build_parser().parse_args(["run", "--http-timeout-seconds", "4", "--overlap-seconds", "2.5"])
    settings = settings_from_args(args, environ={})
    assert (settings.delivery.timeout_s, settings.overlap_s) == (4.0, 2.5)
    assert "--http-timeout-seconds" not in build_parser()._subparsers._group_actions[0].choices["run"].format_help()


def test_delivery_and_outbox_settings_are_nested_dataclasses_set_by_flat_names(tmp_path):
    fields = {f.name: f for f in dataclasses.fields(EdgeSettings)}
    assert fields["delivery"].type in (DeliverySettings, "DeliverySettings")
    assert fields["outbox_limits"].type in (OutboxSettings, "OutboxSettings")
    assert EdgeSettings().delivery == DeliverySettings() and EdgeSettings().outbox_limits == OutboxSettings()
    config = tmp_path / "edge.toml"
    config.write_text('[edge_runtime]\nbatch_size = 20\n[edge_runtime.outbox_limits]\nmax_rows = 1000\n')
    settings = load_settings(config_path=config, environ={"EDGE_RUNTIME_TIMEOUT_S": "3", "EDGE_RUNTIME_TOKEN_ENV": "MY"},
                             flags={"backoff_initial_s": 0.5, "outbox": tmp_path / "o.sqlite"})
    assert settings.delivery == dataclasses.replace(DeliverySettings(), timeout_s=3.0, batch_size=20,
                                                    backoff_initial_s=0.5, token_env="MY")
    assert settings.outbox_limits == dataclasses.replace(OutboxSettings(), max_rows=1000)
    table = tmp_path / "table.toml"
    table.write_text("[delivery]\nbatch_size = 7\nhttp_timeout_seconds = 9\n")
    assert (load_settings(config_path=table).delivery.batch_size, load_settings(config_path=table).delivery.timeout_s) == (7, 9.0)
    # every exposed field of a nested part is a setting under its flat name; internal ones (jitter) are not
    names = {f.name for f in setting_fields()}
    assert {"batch_size", "timeout_s", "token_file", "ca_file", "outbox_max_rows", "outbox_max_bytes"} <= names
    assert not {"jitter_fraction", "idle_poll_s", "max_dead_letters", "delivery", "outbox_limits"} & names
    with pytest.raises(SettingsError, match="batch_size: must be in 1..1000"):
        load_settings(environ={"EDGE_RUNTIME_BATCH_SIZE": "0"})
    with pytest.raises(SettingsError, match="max_rows: must be at least 1"):
        load_settings(flags={"outbox_max_rows": 0})
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings(config_path=_toml(tmp_path, "[delivery]\njitter_fraction = 0.1\n"))


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "more.toml"
    path.write_text(text)
    return path


def test_flush_reads_the_same_config_file_and_environment_as_run(tmp_path):
    outbox = tmp_path / "outbox.sqlite3"
    with Outbox(outbox) as box:
        box.add(make_detections(7, seed=401))
    with start_receiver(ReceiverSettings(port=0, db=tmp_path / "r.sqlite3")) as running:
        config = tmp_path / "edge.toml"
        config.write_text(f'[edge_runtime]\nsink = "{running.url}"\noutbox = "{outbox}"\nbatch_size = 3\n')
        env = {**python_env(), "EDGE_RUNTIME_FLUSH_DEADLINE_S": "20"}
        env = {k: v for k, v in env.items() if not k.startswith("EDGE_RUNTIME_") or k == "EDGE_RUNTIME_FLUSH_DEADLINE_S"}
        result = subprocess.run([sys.executable, "-m", "edge_runtime", "flush", "--config", str(config)],
                                capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
        assert result.returncode == 0, result.stderr
        assert running.server.store.count() == 7


def test_flush_without_a_sink_from_any_layer_is_a_usage_error(tmp_path):
    env = {k: v for k, v in python_env().items() if not k.startswith("EDGE_RUNTIME_")}
    result = subprocess.run([sys.executable, "-m", "edge_runtime", "flush", "--outbox", str(tmp_path / "o.sqlite")],
                            capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 2 and "flush needs a sink" in result.stderr


def _exception_classes() -> list[type]:
    classes = []
    for info in pkgutil.iter_modules(edge_runtime.__path__):
        if info.name in ("__main__",):
            continue
        module = importlib.import_module(f"edge_runtime.{info.name}")
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if issubclass(c, BaseException) and c.__module__ == module.__name__]
    return classes


def test_every_exception_of_edge_runtime_has_one_root():
    classes = _exception_classes()
    assert len(classes) >= 14
    assert [c.__name__ for c in classes if not issubclass(c, EdgeRuntimeError)] == []
    from edge_runtime.detection import DetectionError
    from edge_runtime.sources import SourceError
    from edge_runtime.spec import SpecError

    assert all(issubclass(c, ValueError) for c in (SettingsError, SourceError, DetectionError, SpecError))


def test_run_argv_builds_what_the_run_command_parses(tmp_path):
    argv = run_argv(bundle=tmp_path / "bundle", sources=[f"file:{tmp_path / 'a.wav'}", "stdin"],
                    sink="http://127.0.0.1:8750", outbox=tmp_path / "o.sqlite", device_id="demo-pi", top_n=3,
                    overlap_s=2.5, species_thresholds={"eurrob1": 0.7}, log_format="json")
    assert argv[:4] == [sys.executable, "-m", "edge_runtime", "run"]
    settings = settings_from_args(build_parser().parse_args(argv[3:]), environ={})
    assert settings.sources == (f"file:{tmp_path / 'a.wav'}", "stdin")
    assert (settings.top_n, settings.overlap_s, settings.device_id) == (3, 2.5, "demo-pi")
    assert settings.species_thresholds == (("eurrob1", 0.7),) and settings.outbox == tmp_path / "o.sqlite"
    with pytest.raises(SettingsError, match="unknown setting 'overlap_seconds_typo'"):
        run_argv(bundle="b", sources=["stdin"], overlap_seconds_typo=1)
    assert os.path.basename(run_argv(bundle="b", sources=["stdin"], python="python3")[0]) == "python3"
    assert Path(REPO_ROOT).is_dir()
