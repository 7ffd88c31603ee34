"""The house rules of the package, checked on its source: methods apart from lessons, one vocabulary."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "mmlab"
LESSONS = PKG / "lessons"
METHOD_FILES = sorted(p for p in PKG.rglob("*.py") if LESSONS not in p.parents)
LESSON_FILES = sorted(p for p in LESSONS.glob("*.py") if p.name != "__init__.py")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _calls(tree: ast.Module) -> list[str]:
    """Dotted names of every call in the code (docstrings and comments don't count)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            out.append(ast.unparse(node.func))
    return out


def _imports(tree: ast.Module, path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("path", METHOD_FILES, ids=_ids(METHOD_FILES))
def test_method_modules_never_import_lessons(path):
    bad = sorted(n for n in _imports(_tree(path), path) if n == "mmlab.lessons" or n.startswith("mmlab.lessons."))
    assert not bad, f"{path.name} imports {bad}: a method module must not depend on a lesson's experiment"


@pytest.mark.parametrize("path", METHOD_FILES, ids=_ids(METHOD_FILES))
def test_no_widget_figures_or_experiment_drivers_outside_lessons(path):
    defs = [n.name for n in ast.walk(_tree(path)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    # mmlab/widgets.py is the widget machinery itself (the lessons' interact), not a lesson's widget figure
    pattern = r"(_experiment$|^run_|_sweep$)" if path == PKG / "widgets.py" else r"(widget|_experiment$|^run_|_sweep$)"
    bad = [d for d in defs if re.search(pattern, d)]
    assert not bad, f"{path.name} defines {bad}: lesson experiments and widget figures go to mmlab/lessons/"
    assert "lru_cache" not in path.read_text() or path.name in ("data.py", "text.py", "audio.py"), (
        f"{path.name} caches runs: cached experiments belong to mmlab/lessons/"
    )


@pytest.mark.parametrize("path", METHOD_FILES + LESSON_FILES, ids=_ids(METHOD_FILES + LESSON_FILES))
def test_one_vocabulary(path):
    text = path.read_text()
    tree = _tree(path)
    assert not re.search(r"""["']visual["']""", text), f"{path.name}: the modality is called 'image', not 'visual'"
    consts = [
        t.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and t.id == "METHODS"
    ]
    assert not consts, f"{path.name}: name the constant for what it holds (ALIGN_METHODS, ...), not METHODS"
    assert not any(c.endswith("seed_everything") for c in _calls(tree)) or path.name == "runtime.py", (
        f"{path.name} reseeds the global RNG: take a seed or a generator (mmlab.runtime.seeded)"
    )
    assert "was_training" not in text, f"{path.name}: use mmlab.train.eval_mode to switch modes"
    assert ".cuda(" not in text, f"{path.name} calls .cuda()"


@pytest.mark.parametrize("path", METHOD_FILES + LESSON_FILES, ids=_ids(METHOD_FILES + LESSON_FILES))
def test_one_training_loop(path):
    """Only mmlab.train steps an optimizer; everything else goes through fit and its hooks."""
    if path == PKG / "train.py":
        return
    calls = _calls(_tree(path))
    steps = [c for c in calls if c.endswith(".step") and "scheduler" not in c]
    assert not steps, f"{path.name} steps an optimizer itself ({steps}): use mmlab.train.fit with hooks"
    assert not any(c.endswith("DataLoader") for c in calls), f"{path.name} builds its own loader: use make_loader"


def test_every_notebook_has_its_lesson_module():
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `mmlab\.lessons\.(\w+)` \| `(\d\d_\w+)` \|$", readme, re.M))
    assert sorted(rows.values()) == [p.stem for p in NOTEBOOKS], "README's map must name one lesson module each"
    for module in rows:
        assert (LESSONS / f"{module}.py").exists(), f"mmlab/lessons/{module}.py is missing"
    assert sorted(p.stem for p in LESSON_FILES) == sorted(rows), "every lesson module appears in the README map"


def test_lesson_zero_links_every_lesson_in_order():
    text = (ROOT / "notebooks" / "00_setup.py").read_text()
    links = re.findall(r"^# \| (\d+) \| \[[^]]+\]\((\d\d_\w+)\.ipynb\) \|", text, re.M)
    assert [name for _, name in links] == [p.stem for p in NOTEBOOKS[1:]]
    assert [int(n) for n, _ in links] == list(range(1, len(NOTEBOOKS)))


def test_the_public_names_the_course_design_relies_on():
    """DESIGN.md §4: these names keep working whatever moves inside the package."""
    import torch

    import mmlab
    from mmlab.align import CrossModalAttention
    from mmlab.balance import ogm_coefficients
    from mmlab.contrastive import clip_loss
    from mmlab.data import load_avdigits
    from mmlab.fusion import LowRankFusion, TensorFusion

    assert callable(mmlab.get_device) and callable(mmlab.seed_everything) and callable(load_avdigits)
    lmf = LowRankFusion([3, 4], 5, rank=2)
    assert TensorFusion([3, 4], 5)(torch.zeros(2, 3), torch.zeros(2, 4)).shape == (2, 5)
    assert lmf.full_weight().shape[0] == 5
    k_a, k_b = ogm_coefficients(2.0, 1.0, 0.5)
    assert k_a < 1 and k_b == 1
    assert clip_loss(torch.randn(4, 8), torch.randn(4, 8), torch.tensor(2.0)).ndim == 0
    out = CrossModalAttention(6, 10, 8, heads=2)(torch.randn(2, 3, 6), torch.randn(2, 5, 10))
    assert out[0].shape == (2, 3, 8)
