"""Lay out the website's Sphinx sources from the executed lessons: ``make site`` runs this, then ``sphinx-build``.

    python -m site_src.build --executed build/executed --out build/site_src

Nothing is executed here: each lesson page is the executed copy that ``make notebooks`` (nbval, through the
``site_src.executed_copies`` plugin) or ``make site-execute`` wrote, checked against the notebook it was run
from (SHA-256), so a page never shows the outputs of an older version of its lesson. What the page changes:

* a line under the title with the lesson's *Open in Colab* and *download notebook* links (the download is the
  notebook as committed, without outputs — what a learner runs);
* widgets: a static page cannot run a kernel, so the live widget views are dropped and their default figure (the
  figure ``interact`` drew once when the cell ran) stays, with a note that says how to run it live;
* ``tqdm`` progress bars (widgets in a kernel) become one collapsed line per cell;
* exercise solutions (cells tagged ``solution``) get myst-nb's ``hide-input`` tag: hidden behind a click, as in
  JupyterLab (``source_hidden``) and Colab (a form); the Colab set-up cell is collapsed too;
* nbval's comment markers (``# NBVAL_...``) are removed from the code shown.

A lesson whose executed copy holds an error output fails the build. The landing page is the README's
introduction and lesson table (the Colab badges become plain links: the site loads nothing from elsewhere); a
references page collects each lesson's ``## References``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import html
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = Path(__file__).resolve().parent / "pages"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LIVE_NOTE = (
    "```{{admonition}} Interactive widget — shown here with its default settings\n"
    ":class: tip mmlab-widget-note\n"
    "A web page cannot run Python, so the sliders of the next cell are not shown: the figure below is the one "
    "it draws with its default values. To move them, [open this lesson in Colab]({colab}) or run `make lab` "
    "in a clone of the course (see [how to run the course](../index.md#running-the-course-yourself)).\n"
    "```"
)


class SiteError(RuntimeError):
    """The executed copies cannot make a correct site (missing, stale, or holding an error)."""


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def lessons(notebooks_dir: Path) -> list[Path]:
    """The course's lessons in order: ``notebooks/NN_*.ipynb``."""
    return sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def stale(notebooks_dir: Path, executed_dir: Path) -> list[Path]:
    """Lessons whose executed copy is missing or was run from another version of the notebook."""
    import nbformat

    out = []
    for path in lessons(notebooks_dir):
        copy_path = executed_dir / path.name
        if not copy_path.is_file():
            out.append(path)
            continue
        meta = nbformat.read(copy_path, as_version=4).metadata.get("mmlab_site", {})
        if meta.get("source_sha256") != sha256(path):
            out.append(path)
    return out


_TQDM_TEXT = re.compile(r"\d+%\|.*\|\s*[\d.]+[kMG]?(/[\d.]+[kMG]?)? \[")


def _is_progress_bar(text: str) -> bool:
    """A tqdm bar drawn as a widget: its text form (``desc: 40%|####  | 2/5 [...]``, tqdm's own repr) or, in
    older versions, the container's (``HBox(children=(HTML(...), FloatProgress(...), ...))``)."""
    return bool(_TQDM_TEXT.search(text)) or (text.startswith("HBox(children=(HTML(") and "Progress(" in text)


def _bar_final_text(model_id: str, states: dict[str, dict]) -> str:
    """The last text of a tqdm widget bar, where the executor saved widget states (``desc: 5/5 [00:09<00:00]``)."""
    children = [c[len("IPY_MODEL_"):] for c in states.get(model_id, {}).get("children", []) if isinstance(c, str)]
    parts = [states.get(c, {}) for c in children]
    desc = next((p.get("value", "") for p in parts[:1] if p.get("_model_name") == "HTMLModel"), "")
    right = next((p.get("value", "") for p in parts[2:3] if p.get("_model_name") == "HTMLModel"), "")
    text = f"{desc} {right}".replace("&nbsp;", " ").strip()
    return re.sub(r"<[^>]+>", "", text)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _widget_states(nb) -> dict[str, dict]:
    """model id -> widget state, where the executor saved them (nbclient does: ``metadata.widgets``)."""
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return {k: v.get("state", {}) for k, v in saved.get("state", {}).items()}


def _saved_outputs(model_id: str, states: dict[str, dict], depth: int = 0) -> list:
    """Outputs held by the Output widgets inside a widget (nbclient puts an ``interact``'s figure there)."""
    state = states.get(model_id)
    if not state or depth > 8:
        return []
    if state.get("_model_name") == "OutputModel":
        return list(state.get("outputs", []))
    found = []
    for child in state.get("children", []):
        if isinstance(child, str) and child.startswith("IPY_MODEL_"):
            found += _saved_outputs(child[len("IPY_MODEL_"):], states, depth + 1)
    return found


def transform_lesson(nb, name: str) -> tuple[object, dict]:
    """The page version of one executed lesson (see the module docstring); returns it and what was changed."""
    import nbformat

    from mmlab.colab import colab_link

    nb = copy.deepcopy(nb)
    states = _widget_states(nb)
    colab = colab_link(name)
    counts = {"widgets": 0, "progress_cells": 0, "solutions": 0}
    cells = []
    first_code = True
    titled = False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and not titled and cell.source.lstrip().startswith("# "):
            title, _, rest = cell.source.lstrip().partition("\n")
            links = (
                f'<p class="mmlab-lesson-links"><a class="reference external" href="{colab}">Open in Colab</a>'
                f' · <a class="reference download" href="../_static/notebooks/{name}" download>download the '
                f"notebook</a> (without outputs) · run it live with <code>make lab</code></p>"
            )
            cell.source = f"{title}\n\n{links}\n{fix_anchors(rest)}"
            titled = True
            cells.append(cell)
            continue
        if cell.cell_type != "code":
            cell.source = fix_anchors(cell.source)
            cells.append(cell)
            continue
        tags = list(cell.metadata.get("tags", []))
        cell.source = "\n".join(ln for ln in cell.source.splitlines() if not ln.strip().startswith("# NBVAL_"))
        if first_code:
            tags.append("hide-input")
            first_code = False
        if "solution" in tags:
            tags.append("hide-input")
            counts["solutions"] += 1
        outputs, bars, widget, bar_labels = [], 0, False, []
        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "error":
                raise SiteError(f"{name}: cell {cell.get('execution_count')} holds an error ({out.get('ename')})")
            if kind in ("display_data", "execute_result") and WIDGET_MIME in out.get("data", {}):
                plain = _text(out["data"].get("text/plain"))
                if _is_progress_bar(plain):
                    bars += 1
                    final = _bar_final_text(out["data"][WIDGET_MIME].get("model_id", ""), states)
                    label = final or re.sub(r"\s*\d+%\|.*", "", plain.splitlines()[0] if plain else "").strip()
                    if label:
                        bar_labels.append(html.escape(label))
                else:
                    widget = True
                    # an executor that mimics Output widgets (nbclient) kept the default figure in the widget's
                    # state, not in the cell's outputs: take it from there
                    saved = _saved_outputs(out["data"][WIDGET_MIME].get("model_id", ""), states)
                    outputs += [nbformat.from_dict(o) for o in saved if o.get("output_type") != "error"]
                continue  # the live view: nothing a static page can show
            outputs.append(out)
        if bars:
            noun = "progress bar" if bars == 1 else "progress bars"
            summary = "<br>".join(bar_labels) or "tqdm draws a live bar for each loop; a page only records it ran."
            outputs.insert(
                0,
                nbformat.v4.new_output(
                    "display_data",
                    data={
                        "text/html": f'<details class="mmlab-progress"><summary>{bars} {noun} (live while the '
                        f"cell runs in Jupyter)</summary><p>{summary}</p></details>",
                        "text/plain": f"[{bars} {noun}]",
                    },
                ),
            )
            counts["progress_cells"] += 1
        if widget:
            counts["widgets"] += 1
            cells.append(nbformat.v4.new_markdown_cell(LIVE_NOTE.format(colab=colab)))
        cell.outputs = outputs
        if tags:
            cell.metadata["tags"] = list(dict.fromkeys(tags))
        # JupyterLab's own collapse flag has no meaning to myst-nb; the hide-input tag does that job here
        cell.metadata.pop("jupyter", None)
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)  # no widget state: myst-nb then loads no widget JavaScript
    return nb, counts


_ANCHOR = re.compile(r"\]\(((?:\d\d_[A-Za-z0-9_]+\.ipynb)?)#([^)\s]+)\)")


def fix_anchors(markdown: str, prefix: str = "") -> str:
    """JupyterLab's heading anchors (``#How-this-course-measures``) as MyST's (``#how-this-course-measures``);
    links to another lesson get ``prefix`` (``lessons/`` from a page at the site's root)."""

    def repl(m: re.Match) -> str:
        target = f"{prefix}{m.group(1)}" if m.group(1) else ""
        return f"]({target}#{m.group(2).lower()})"

    markdown = _ANCHOR.sub(repl, markdown)
    if prefix:
        markdown = re.sub(r"\]\((\d\d_[A-Za-z0-9_]+\.ipynb)\)", rf"]({prefix}\1)", markdown)
    return markdown


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return cell.source.lstrip().splitlines()[0][2:].strip()
    return ""


def references_page(pages: list[tuple[str, object]]) -> str:
    """Every lesson's ``## References`` section, under the lesson's title, with a link to the lesson."""
    parts = [
        "# References",
        "",
        "Each lesson ends with the papers and sources it builds on; here they are together, lesson by lesson.",
        "",
    ]
    for stem, nb in pages:
        refs = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.lstrip().startswith("## Ref")]
        if not refs:
            continue
        body = refs[-1].lstrip().split("\n", 1)[1] if "\n" in refs[-1].lstrip() else ""
        body = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", body, flags=re.M)
        parts += [f"## [{_title(nb)}](lessons/{stem}.ipynb)", "", fix_anchors(body.strip(), "lessons/"), ""]
    return "\n".join(parts) + "\n"


def index_page(readme: str, stems: list[str]) -> str:
    """The landing page: the README's introduction and lesson table, links pointing at the site's pages."""
    from mmlab.colab import colab_link

    intro = readme.split("\n## ", 1)[0].strip()
    table = re.search(r"\n## The lessons\n+(\|.*?)\n\n", readme, flags=re.S)
    rows = table.group(1).splitlines() if table else []
    links = {}
    for stem in stems:
        links[f"notebooks/{stem}.ipynb"] = f"lessons/{stem}.ipynb"
    out_rows = []
    for row in rows:
        row = re.sub(
            r"\[!\[Open in Colab\]\([^)]*\)\]\(([^)]*)\)", lambda m: f"[Open in Colab]({m.group(1)})", row
        )
        for src, dst in links.items():
            row = row.replace(f"]({src})", f"]({dst})")
        out_rows.append(row)
    listed = {s for s in stems if any(f"lessons/{s}.ipynb" in r for r in out_rows)}
    for stem in stems:  # a lesson the README's table does not list yet still gets a row
        if stem not in listed:
            num = int(stem[:2])
            out_rows.append(
                f"| {num} | [{stem[3:].replace('_', ' ')}](lessons/{stem}.ipynb) | | "
                f"[Open in Colab]({colab_link(stem + '.ipynb')}) |"
            )
    how = (PAGES / "running.md").read_text()
    toctree = "\n".join(f"lessons/{s}" for s in stems)
    return (
        f"{intro}\n\n## The lessons\n\n" + "\n".join(out_rows) + "\n\n"
        "Every page shows the lesson as it ran in the course's CI: figures, tables, printed results and audio. "
        "Exercise solutions are folded away — click to open them.\n\n"
        f"{how}\n"
        f"```{{toctree}}\n:hidden:\n:caption: Lessons\n\n{toctree}\n```\n\n"
        "```{toctree}\n:hidden:\n:caption: Reference\n\napi\nreferences\n```\n"
    )


# the README's data-flow order: data -> models -> methods -> train -> evaluate -> deploy -> viz -> lessons
API_ORDER = [
    "runtime", "checks", "data", "audio", "text", "models", "train", "stats", "viz", "align", "fusion", "missing",
    "balance", "deploy", "quality", "contrastive", "distributed", "train_distributed", "exercises", "colab", "widgets",
]


def api_page() -> str:
    """The API reference: one autodoc section per ``mmlab`` module, methods first, then the lesson drivers."""
    import pkgutil

    import mmlab

    names = sorted(m.name for m in pkgutil.walk_packages(mmlab.__path__, "mmlab."))
    rank = {n: i for i, n in enumerate(API_ORDER)}

    def key(name: str) -> tuple:
        top = name.split(".")[1]
        return (rank.get(top, len(rank)), name)

    methods = sorted((n for n in names if not n.startswith("mmlab.lessons")), key=key)
    drivers = [n for n in names if n.startswith("mmlab.lessons.")]
    parts = [
        "# The `mmlab` API",
        "",
        "Generated from the package's docstrings: each function and class names the formula it computes and "
        "the paper it comes from. Lesson code lives in `mmlab.lessons` (last section); a method module never "
        "imports a lesson module.",
        "",
    ]
    for heading, group in (("Methods", methods), ("Lesson drivers", drivers)):
        parts += [f"## {heading}", ""]
        for name in group:
            parts += [f"### `{name}`", "", "```{eval-rst}", f".. automodule:: {name}", "   :members:", "```", ""]
    return "\n".join(parts)


def build_sources(executed_dir: Path, out_dir: Path, notebooks_dir: Path = ROOT / "notebooks") -> dict:
    """Write the Sphinx source tree for the site into ``out_dir``; return what each lesson page changed."""
    import nbformat

    missing = stale(notebooks_dir, executed_dir)
    if missing:
        names = ", ".join(p.name for p in missing)
        raise SiteError(f"no up-to-date executed copy of {names} in {executed_dir}: run `make site-execute`")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "lessons").mkdir(parents=True)
    downloads = out_dir / "_static" / "notebooks"
    downloads.mkdir(parents=True)
    report, pages = {}, []
    for path in lessons(notebooks_dir):
        nb = nbformat.read(executed_dir / path.name, as_version=4)
        page, counts = transform_lesson(nb, path.name)
        nbformat.write(page, out_dir / "lessons" / path.name)
        shutil.copy2(path, downloads / path.name)
        pages.append((path.stem, page))
        report[path.stem] = counts
    for page in PAGES.glob("*.md"):
        if page.name != "running.md":
            shutil.copy2(page, out_dir / page.name)
    shutil.copy2(Path(__file__).resolve().parent / "conf.py", out_dir / "conf.py")
    shutil.copytree(Path(__file__).resolve().parent / "static", out_dir / "_static", dirs_exist_ok=True)
    (out_dir / "index.md").write_text(index_page((ROOT / "README.md").read_text(), [s for s, _ in pages]))
    (out_dir / "references.md").write_text(references_page(pages))
    (out_dir / "api.md").write_text(api_page())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executed", type=Path, default=ROOT / "build" / "executed")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site_src")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="the lessons (NN_*.ipynb)")
    parser.add_argument("--list-stale", action="store_true", help="print the lessons to execute, build nothing")
    args = parser.parse_args(argv)
    if args.list_stale:
        print(" ".join(os.path.relpath(p, ROOT) for p in stale(args.notebooks, args.executed)))
        return 0
    try:
        report = build_sources(args.executed, args.out, args.notebooks.resolve())
    except SiteError as e:
        print(f"make site: {e}", file=sys.stderr)
        return 1
    for stem, c in report.items():
        print(
            f"{stem:24s} widgets {c['widgets']}  cells with progress bars {c['progress_cells']}  "
            f"hidden solutions {c['solutions']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
