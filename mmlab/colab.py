"""Colab support: the one place that names the course's repository.

Every notebook's first code cell is :func:`colab_cell_source` verbatim (a test checks it). On Colab the cell
clones the repository and installs ``mmlab`` with its ``colab`` extra (the course data are package data): only
what Colab lacks — never jupyterlab, ipykernel or torch, which would replace Colab's own kernel, front end or
CUDA build. Anywhere else it does nothing.
"""

from __future__ import annotations

__all__ = ["REPO_URL", "REPO_SLUG", "COLAB_INSTALL_SPEC", "colab_cell_source", "colab_link"]

REPO_SLUG = "mmlab-course/mmlab"
REPO_URL = f"https://github.com/{REPO_SLUG}"
COLAB_INSTALL_SPEC = "/content/mmlab[colab]"  # what the cell pip-installs (tests/test_colab.py reads its extra)


def colab_cell_source() -> str:
    """The exact source of each notebook's first code cell."""
    return f'''# Colab only: fetch the course, install mmlab + what Colab lacks (not torch). Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO_URL = "{REPO_URL}"
    if not os.path.isdir("/content/mmlab"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/mmlab"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{COLAB_INSTALL_SPEC}"], check=True)
    os.chdir("/content/mmlab/notebooks")'''


def colab_link(notebook: str, branch: str = "main") -> str:
    """'Open in Colab' URL for ``notebooks/<notebook>``."""
    return f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{branch}/notebooks/{notebook}"
