"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def normalise(spec: str) -> tuple[str, str]:
    requirement = Requirement(spec)
    return requirement.name.lower().replace("_", "-"), str(requirement.specifier)


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    return dict(normalise(s) for s in specs)


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            specs += [s for s in entry["pip"] if not s.startswith("-e")]
        elif not entry.startswith(("python", "pip")) or entry.startswith("python-"):
            specs.append(entry)
    return dict(normalise(s) for s in specs)


def test_same_packages_and_version_ranges():
    pip, conda = pyproject_requirements(), conda_requirements()
    assert set(pip) == set(conda), f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}"
    for name in pip:
        assert pip[name] == conda[name], f"{name}: pyproject {pip[name]!r} vs environment.yml {conda[name]!r}"


def test_python_version_agrees():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.12"


def test_ranges_admit_the_local_torch_wheels():
    pip = pyproject_requirements()
    assert Requirement("torch" + pip["torch"]).specifier.contains("2.14.1")
    assert Requirement("torchvision" + pip["torchvision"]).specifier.contains("0.29.1")
    assert Requirement("jupyter-book" + pip["jupyter-book"]).specifier.contains("1.0.4")
    assert not Requirement("jupyter-book" + pip["jupyter-book"]).specifier.contains("2.0.0")


def test_required_runtime_dependencies_are_declared():
    required = {"jupyterlab", "jupytext", "torch", "torchvision", "tonic", "matplotlib", "ipywidgets",
                "numba", "numpy", "scikit-learn", "tqdm", "jupyter-book", "pytest", "nbmake"}
    assert required <= set(pyproject_requirements())
