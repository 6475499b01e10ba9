"""environment.yml (conda) and pyproject.toml's extras list the same requirements."""

import re
import tomllib

from birdlab import paths

EXTRAS = ("edge", "edge-audio", "lab", "dev")


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(EXTRAS) <= set(extras), f"pyproject.toml lacks extras {set(EXTRAS) - set(extras)}"
    reqs = {r for name in extras for r in extras[name] if not r.startswith("birdlab[")}
    return {re.sub(r"\s+", "", r) for r in reqs}


def _environment_pip_requirements() -> set[str]:
    lines = (paths.REPO_ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = set()
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped.startswith("- "):
            if stripped and not stripped.startswith("#"):
                break
            continue
        item = stripped[2:].strip()
        if not item.startswith("-e"):
            reqs.add(re.sub(r"\s+", "", item))
    return reqs


def test_environment_yml_lists_exactly_the_pyproject_extras():
    pyproject, conda = _pyproject_requirements(), _environment_pip_requirements()
    assert pyproject - conda == set(), "in pyproject.toml but not environment.yml"
    assert conda - pyproject == set(), "in environment.yml but not pyproject.toml"


def test_environment_yml_pins_python_311():
    assert re.search(r"^\s*-\s*python=3\.11\s*$", (paths.REPO_ROOT / "environment.yml").read_text(), re.M)


def test_extras_nest_as_documented():
    extras = tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("birdlab[") and "edge" in r for r in extras["lab"])
    assert "birdlab[lab]" in extras["dev"]
    names = {re.split(r"[<>=!~ ]", r)[0] for r in extras["edge"]}
    assert {"numpy", "wasmtime", "ai-edge-litert"} <= names
    assert not names & {"tensorflow", "tensorflow-cpu", "librosa", "pandas"}


def test_constraints_pin_every_requirement_of_the_extras():
    """constraints.txt (the lock of the lab environment) pins each extra's requirement at a version it allows."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (paths.REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    for text in _pyproject_requirements():
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt; refresh it (see its header)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside {requirement.specifier}")
