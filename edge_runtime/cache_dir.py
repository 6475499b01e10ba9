"""Where the runtime keeps what it derives (unpacked bundles, compiled wasm modules): one resolver.

$EDGE_RUNTIME_CACHE_DIR, else $XDG_CACHE_HOME/birdlab-edge, else ~/.cache/birdlab-edge. The lab's own cache
($BIRDLAB_CACHE_DIR, birdlab.paths.cache_dir) is never read here: the device does not share the lab's settings.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "EDGE_RUNTIME_CACHE_DIR"


def default_cache_dir() -> Path:
    """The runtime's cache: $EDGE_RUNTIME_CACHE_DIR, else $XDG_CACHE_HOME/birdlab-edge, else ~/.cache/birdlab-edge."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "birdlab-edge"
