"""One cache resolver for the device: its own variable, never the lab's $BIRDLAB_CACHE_DIR."""

from __future__ import annotations

from edge_runtime.bundle import default_unpack_dir
from edge_runtime.cache_dir import default_cache_dir
from edge_runtime.frontend import default_module_cache_dir


def test_the_runtime_cache_ignores_the_labs_cache_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("BIRDLAB_CACHE_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGE_RUNTIME_CACHE_DIR", raising=False)
    assert default_cache_dir() == tmp_path / "xdg" / "birdlab-edge"
    assert default_module_cache_dir() == tmp_path / "xdg" / "birdlab-edge" / "wasm"
    monkeypatch.setenv("EDGE_RUNTIME_CACHE_DIR", str(tmp_path / "edge"))
    assert default_module_cache_dir() == tmp_path / "edge" / "wasm"
    assert default_unpack_dir() == tmp_path / "edge" / "bundles"
