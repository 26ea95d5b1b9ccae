"""Project-level checks: environment.yml agrees with pyproject.toml; notebooks are stripped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = dict(_norm(r) for r in pip_list)
    assert got == wanted
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_every_dependency_has_a_lower_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        assert ">=" in req, f"{req} has no lower bound"


def test_notebooks_have_parameters_cell_and_no_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), nb_path
        for c in code:
            assert not c.get("outputs") and c.get("execution_count") is None, f"{nb_path} has outputs"


def test_cli_help_does_not_import_tensorflow():
    code = ("import sys, soundlib.cli as c\n"
            "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('tensorflow', 'matplotlib', 'tensorflow_hub', 'tf_keras') if m in sys.modules]\n"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_wheel_ships_the_notebooks(tmp_path):
    """`pip install soundlib` users get the notebooks: package data of the wheel, found by notebooks_dir()
    and copied out by `soundlib notebooks DIR` (run here from the unpacked wheel, not the checkout)."""
    import zipfile

    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("soundlib-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    names = ("plotting_trials.ipynb", "train.ipynb", "visualize.ipynb", "evaluate.ipynb")
    for name in names:
        assert (site / "soundlib" / "notebooks" / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()
    assert (site / "soundlib" / "sweep" / "__init__.py").is_file() and (site / "soundlib" / "py.typed").is_file()
    weights = site / "soundlib" / "embedders" / "weights"  # mn04 offline: the release file and its MIT notice
    for name in ("mn04_as_mAP_432.pt", "EfficientAT-LICENSE.txt", "README.md"):
        assert (weights / name).read_bytes() == (ROOT / "soundlib" / "embedders" / "weights" / name).read_bytes()
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    env.pop("SOUNDLIB_NOTEBOOKS", None)
    found = subprocess.run([sys.executable, "-c", "import soundlib.lab.notebook as n; print(n.notebooks_dir())"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert found.stdout.strip() == str(site / "soundlib" / "notebooks"), found.stderr
    copied = subprocess.run([sys.executable, "-m", "soundlib.cli", "notebooks", str(tmp_path / "mine")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == sorted(names)


def test_sdist_ships_the_mn04_weights_and_their_licence(tmp_path):
    """The sdist carries the packaged mn04 weights (the wheels built from it do too, as above)."""
    import tarfile

    code = ("import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    sdist = tmp_path / out.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        pt = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("weights/mn04_as_mAP_432.pt")))
        digest = __import__("hashlib").sha256(pt.read()).hexdigest()
    for name in ("mn04_as_mAP_432.pt", "EfficientAT-LICENSE.txt", "README.md"):
        assert f"soundlib/embedders/weights/{name}" in names
    from soundlib.embedders.nets.efficientat_weights import CHECKPOINT_SHA256

    assert digest == CHECKPOINT_SHA256
