"""Colab support: the one place that names the course's repository.

Every notebook's first code cell is :func:`colab_cell_source` verbatim (a test checks it). On Colab the cell
clones the repository (package and ``data/``) and installs it without touching Colab's own torch; anywhere
else it does nothing.
"""

from __future__ import annotations

__all__ = ["REPO_URL", "REPO_SLUG", "colab_cell_source", "colab_link"]

REPO_SLUG = "mmlab-course/mmlab"
REPO_URL = f"https://github.com/{REPO_SLUG}"


def colab_cell_source() -> str:
    """The exact source of each notebook's first code cell."""
    return f'''# Colab only: fetch the course (package + data), install it, keep Colab's torch. Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO_URL = "{REPO_URL}"
    if not os.path.isdir("/content/mmlab"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/mmlab"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/mmlab[course]"], check=True)
    sys.path.insert(0, "/content/mmlab")
    os.chdir("/content/mmlab/notebooks")'''


def colab_link(notebook: str, branch: str = "main") -> str:
    """'Open in Colab' URL for ``notebooks/<notebook>``."""
    return f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{branch}/notebooks/{notebook}"
