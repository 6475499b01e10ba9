"""Fixtures of the parity tests: the built melspec.wasm and one MelFrontend per FeatureSpec."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_runtime.frontend import MelFrontend
from edge_runtime.spec import FeatureSpec


@pytest.fixture(scope="session")
def melspec_wasm() -> Path:
    """melspec.wasm of the current sources (built once, then taken from the source-hash cache)."""
    from birdlab.frontend.wasm import build_wasm

    return build_wasm()


@pytest.fixture(scope="session")
def frontend_for(melspec_wasm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[FeatureSpec],
                                                                                                     MelFrontend]]:
    """frontend_for(spec) -> a MelFrontend for that spec, opened once per session."""
    cache_dir = tmp_path_factory.mktemp("wasmtime_modules")
    opened: dict[FeatureSpec, MelFrontend] = {}

    def get(spec: FeatureSpec) -> MelFrontend:
        if spec not in opened:
            opened[spec] = MelFrontend.load(melspec_wasm, spec=spec, cache_dir=cache_dir)
        return opened[spec]

    yield get
    for frontend in opened.values():
        frontend.close()
