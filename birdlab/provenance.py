"""Provenance of what birdlab writes: one JSON-object reader, the git state of the checkout, package versions.

Every artefact that records where it came from (a run's run_info.json, a bundle's manifest.json) asks this module,
so a run and the bundle made from it describe the same checkout the same way.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from birdlab import paths
from birdlab.errors import UserError

VERSIONED_PACKAGES = ("birdlab", "tensorflow", "tensorflow-cpu", "keras", "numpy", "librosa", "soxr", "soundfile",
                      "ai-edge-litert")
"""The packages whose versions shape a run's result."""


def read_json_object(path: Path, *, required: bool = True, hint: str = "") -> dict[str, Any]:
    """The JSON object in `path`; {} when the file is missing and not required.

    Raises UserError naming the file (and `hint`, what to do) when it is missing and required, unreadable,
    not JSON, or not an object.
    """
    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not path.is_file():
        if required:
            raise UserError(f"{path}: missing{suffix}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc}){suffix}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}{suffix}")
    return data


def write_json(path: Path, data: object) -> Path:
    """Indented JSON with a final newline (the format of every JSON file birdlab writes)."""
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return Path(path)


@dataclass(frozen=True)
class GitState:
    """The birdlab checkout's HEAD; both None outside a git checkout."""

    commit: str | None
    dirty: bool | None
    """True when tracked files differ from HEAD."""

    def describe(self) -> str:
        """'<sha>' or '<sha>+dirty'; '' outside a git checkout."""
        if self.commit is None:
            return ""
        return self.commit + ("+dirty" if self.dirty else "")


def git_state(*, repo: Path = paths.REPO_ROOT) -> GitState:
    """HEAD and dirtiness of `repo` (untracked files do not count)."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return GitState(commit=None, dirty=None)
    return GitState(commit=head, dirty=status != "")


def package_versions(names: Iterable[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of `names`; packages that are not installed are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
