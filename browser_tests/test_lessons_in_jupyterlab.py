"""Each lesson as a learner meets it: opened in JupyterLab in a real Chromium, Run All, then the main widget.

For every ``notebooks/NN_*.ipynb``: open it, click *Run ▸ Run All Cells*, wait until every code cell has
run and the kernel is idle, then check that

* no cell raised and the page shows no traceback or widget error,
* at least one matplotlib figure is rendered,
* dragging the first slider of the lesson's first ``interact`` widget changes the figure it draws.

A screenshot per lesson goes to ``artifacts/browser/``; the kernel is shut down after each lesson, and the
lesson's files must be left untouched (autosave is off).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
POLL_MS = 250  # how often the page's state is read while the kernel works (each read is a few ms of page time)

# State of the notebook at `path` as JupyterLab's models see it: kernel status and, per code cell, whether it
# ran (execution count), is queued or running ([*]) and which errors it holds.
NOTEBOOK_STATE_JS = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  let panel = null;
  for (const w of app.shell.widgets('main')) if (w.context && w.context.path === path) panel = w;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const session = panel.sessionContext.session;
  const kernel = session ? session.kernel : null;
  const cells = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    const src = cell.model.sharedModel.getSource();
    const prompt = cell.node.querySelector('.jp-InputPrompt');
    const errors = cell.model.outputs.toJSON()
      .filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`);
    cells.push({index, empty: src.trim() === '', count: cell.model.executionCount,
                pending: prompt ? prompt.textContent.includes('*') : false,
                head: src.split('\\n').find(l => l.trim() && !l.startsWith('#')) || src.split('\\n')[0],
                errors});
  });
  return {kernel: kernel ? kernel.status : 'none', active: app.shell.currentWidget === panel, cells};
}
"""

# What the page shows: rendered figures, and every output that is a traceback, a widget error, or an object that
# JupyterLab could only show as text (a matplotlib Figure whose PNG display was never registered, a widget
# whose front-end extension is missing).
PAGE_CHECK_JS = """
() => {
  const figures = [...document.querySelectorAll('.jp-RenderedImage img')]
    .filter(img => img.complete && img.naturalWidth > 0).length;
  const problems = [];
  for (const out of document.querySelectorAll('.jp-OutputArea-output')) {
    if (out.querySelector('.jp-OutputArea-output')) continue;  // a widget's output area: check its own outputs
    const text = (out.textContent || '').trim();
    const mime = out.getAttribute('data-mime-type') || '';
    let why = null;
    if (/Traceback \\(most recent call last\\)/.test(text) || mime.includes('error')) why = 'traceback';
    else if (/Error displaying widget|Failed to (load|create) (model|view)/.test(text)) why = 'widget error';
    else if (mime === 'text/plain' && /^<Figure size [\\d.]+x[\\d.]+ with \\d+ Axes>$/.test(text))
      why = 'a matplotlib Figure shown as text, not as an image';
    else if (mime === 'text/plain' && /^(interactive|[A-Z]\\w*(Slider|Box|Output|Dropdown|Progress))\\(/.test(text))
      why = 'a widget shown as text (its front-end is not loaded)';
    if (why) problems.push(`${why} [${mime}]: ` + (text.length > 700 ? '...' + text.slice(-700) : text));
  }
  return {figures, problems};
}
"""

# The first interact widget: its first slider (handle, track, readout) and the figure in its output.
WIDGET_JS = """
() => {
  const box = document.querySelector('.widget-interact');
  if (!box) return {found: false};
  const slider = box.querySelector('.widget-slider');
  const img = box.querySelector('.jp-RenderedImage img');
  const readout = slider ? slider.querySelector('.widget-readout') : null;
  const label = slider ? slider.querySelector('.widget-label') : null;
  return {found: true, slider: !!slider, src: img ? img.src : null,
          value: readout ? (readout.value !== undefined ? readout.value : readout.textContent) : null,
          label: label ? label.textContent : null};
}
"""

SCROLL_TO_CELL_JS = """
([path, index]) => {
  for (const w of window.jupyterapp.shell.widgets('main'))
    if (w.context && w.context.path === path) w.content.widgets[index].node.scrollIntoView();
}
"""


def _reveal_first_solution(page) -> str:
    """Click the first collapsed input (a solution cell, source_hidden) as a learner would; return its code."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    index = page.evaluate(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')]"
        ".findIndex(c => c.querySelector('.jp-InputPlaceholder'))"
    )
    assert index >= 0, "no collapsed cell on the page"
    cell = cells.nth(index)  # by position: once opened, it no longer matches "has a placeholder"
    cell.scroll_into_view_if_needed(timeout=10_000)
    cell.locator(".jp-InputPlaceholder").first.click()
    editor = cell.locator(".jp-InputArea-editor .cm-content").first
    editor.wait_for(state="visible", timeout=10_000)
    return editor.inner_text()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def _wait_for_run_all(page, rel: str, timeout: float) -> dict:
    """Poll until the kernel is idle and no cell is queued, and every cell ran (or one raised): twice in a row,
    since the kernel is briefly idle between cells."""
    deadline, stable, state = time.monotonic() + timeout, 0, None
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE_JS, rel)
        if state is None:
            raise AssertionError(f"{rel}: the notebook panel disappeared")
        if state["kernel"] in ("dead", "autorestarting", "restarting"):
            raise AssertionError(f"{rel}: the kernel died ({state['kernel']}) — out of memory?")
        code = [c for c in state["cells"] if not c["empty"]]
        errored = any(c["errors"] for c in code)
        finished = all(c["count"] is not None for c in code) or errored
        done = state["kernel"] == "idle" and finished and not any(c["pending"] for c in code)
        stable = stable + 1 if done else 0
        if stable >= 2:
            return state
        page.wait_for_timeout(POLL_MS)
    waiting = [c for c in (state or {}).get("cells", []) if c["pending"] or c["count"] is None]
    where = f"cell {waiting[0]['index']} ({waiting[0]['head']!r})" if waiting else "?"
    raise AssertionError(f"{rel}: Run All did not finish within {timeout:.0f} s; still at {where}")


def _wait_for_kernel(page, rel: str, timeout: float) -> None:
    """Wait until the notebook is open with an idle kernel; fail at once on a dialog (e.g. no kernelspec)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            raise AssertionError(f"{rel}: JupyterLab shows a dialog: {dialog.first.inner_text()!r}")
        state = page.evaluate(NOTEBOOK_STATE_JS, rel)
        if state and state["kernel"] == "idle":
            return
        page.wait_for_timeout(300)
    raise AssertionError(f"{rel}: the notebook's kernel was not ready within {timeout:.0f} s")


def _drag_first_slider(page) -> None:
    """Drag the first slider's handle by about a third of its track, as a learner would with the mouse."""
    slider = page.locator(".widget-interact").first.locator(".widget-slider").first
    handle = slider.locator(".noUi-handle").first
    h = None
    for _ in range(20):  # cells that scroll into view are laid out only then (content-visibility): wait until still
        handle.scroll_into_view_if_needed()
        page.wait_for_timeout(100)
        h, before = handle.bounding_box(), h
        if h is not None and h == before:
            break
    track = slider.locator(".noUi-target").first.bounding_box()
    assert h and track, "the slider is not visible"
    x, y = h["x"] + h["width"] / 2, h["y"] + h["height"] / 2
    shift = max(40.0, track["width"] / 3)
    target = x + shift if x + shift <= track["x"] + track["width"] else x - shift
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(target, y, steps=6)
    page.mouse.up()


def _wait_for_new_figure(page, rel: str, before: dict, timeout: float) -> dict:
    """Wait until the kernel has answered the slider (idle for a few polls) and return the widget's state."""
    deadline, idle_polls, now = time.monotonic() + timeout, 0, before
    while time.monotonic() < deadline:
        page.wait_for_timeout(POLL_MS)
        now = page.evaluate(WIDGET_JS)
        kernel = (page.evaluate(NOTEBOOK_STATE_JS, rel) or {}).get("kernel")
        idle_polls = idle_polls + 1 if kernel == "idle" else 0
        changed = now["src"] and now["src"] != before["src"]
        if (changed and idle_polls >= 2) or idle_polls * POLL_MS >= 3000:  # no new figure after 3 s idle: done
            return now
    return now


# Close every open document without saving (autosave is off; a dirty notebook would ask), then open `path`.
OPEN_NEXT_JS = """
async (path) => {
  const app = window.jupyterapp;
  for (const w of [...app.shell.widgets('main')]) {
    if (w.context && w.context.model) w.context.model.dirty = false;
    w.dispose();
  }
  await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
}
"""


class LabPage:
    """One JupyterLab page for the lessons, as a learner opens one lesson after another in the same tab: the
    front end loads once (about 3 s of CPU per load on 2 cores). After a lesson fails, the next one gets a
    fresh browser context, so that one failure cannot leak into the next lesson's result."""

    def __init__(self, browser, lab):
        self.browser, self.lab, self.context, self.page = browser, lab, None, None
        self.errors: list[str] = []
        self.healthy = False

    def open(self, rel: str) -> None:
        self.errors.clear()
        if self.page is not None and self.healthy:
            self.page.evaluate(OPEN_NEXT_JS, rel)
        else:
            self.close()
            self.context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
            self.page = self.context.new_page()
            self.page.on("pageerror", lambda e: self.errors.append(str(e)))
            self.page.goto(f"{self.lab.url}/lab/tree/{rel}?reset&token={self.lab.token}", wait_until="domcontentloaded")
        self.healthy = False  # until this lesson passes

    def close(self) -> None:
        if self.context is not None:
            self.context.close()
        self.context = self.page = None


@pytest.fixture(scope="module")
def lab_page(browser, lab):
    tab = LabPage(browser, lab)
    yield tab
    tab.close()


def test_lesson_runs_in_jupyterlab(lesson: Path, lab, lab_page, lesson_timeout, lesson_results, artifacts):
    rel = lesson.relative_to(lab.root).as_posix()
    files = [lesson, lesson.with_suffix(".py")]
    digests = [_sha(f) for f in files]
    row = {"lesson": lesson.stem, "result": "failed"}
    lesson_results.append(row)
    shot = artifacts / f"{lesson.stem}.png"
    failing_cell = None
    page = None
    try:
        t0 = time.monotonic()
        lab_page.open(rel)
        page, page_errors = lab_page.page, lab_page.errors
        _wait_for_kernel(page, rel, timeout=120)
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # more room for the screenshot
        page.locator(".jp-Notebook .jp-Cell").first.click()  # focus the notebook, as a learner would
        row["open_s"] = time.monotonic() - t0

        t0 = time.monotonic()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        state = _wait_for_run_all(page, rel, lesson_timeout)
        row["run_s"] = time.monotonic() - t0
        errors = [f"cell {c['index']} ({c['head']!r}): {e}" for c in state["cells"] for e in c["errors"]]
        failing_cell = next((c["index"] for c in state["cells"] if c["errors"]), None)
        assert not errors, f"{rel}: a cell raised:\n" + "\n".join(errors)

        shown = page.evaluate(PAGE_CHECK_JS)
        assert not shown["problems"], f"{rel}: the page shows errors:\n" + "\n---\n".join(shown["problems"])
        assert shown["figures"] >= 1, f"{rel}: no matplotlib figure is rendered on the page"
        row["figures"] = shown["figures"]

        t0 = time.monotonic()
        before = page.evaluate(WIDGET_JS)
        assert before["found"], f"{rel}: no interact widget (the lesson's main widget must be its first interact)"
        assert before["slider"], f"{rel}: the first interact widget has no slider"
        assert before["src"], f"{rel}: the first interact widget shows no figure"
        _drag_first_slider(page)
        after = _wait_for_new_figure(page, rel, before, timeout=120)
        row["widget_s"] = time.monotonic() - t0
        row["slider"] = f"{before['label']}: {before['value']} -> {after['value']}"
        assert after["value"] != before["value"], f"{rel}: dragging the slider did not change its value"
        shown = page.evaluate(PAGE_CHECK_JS)
        assert not shown["problems"], f"{rel}: the widget shows errors:\n" + "\n---\n".join(shown["problems"])
        assert after["src"], f"{rel}: the widget's figure disappeared after moving the slider"
        if after["src"] == before["src"]:  # compared here, not in an assert, to keep the PNGs out of the report
            pytest.fail(f"{rel}: moving slider {row['slider']!r} did not change the widget's figure")
        assert not page_errors, f"{rel}: JavaScript errors in the page: {page_errors}"
        if 'tags=["solution"]' in lesson.with_suffix(".py").read_text():  # a hidden solution opens and renders
            code = _reveal_first_solution(page)
            assert "@title Solution" in code and "def " in code, f"{rel}: the revealed solution shows {code[:80]!r}"
            row["solution"] = "revealed"
        solution = "; a solution revealed" if row.get("solution") else ""
        row["result"] = f"ok ({shown['figures']} figures; {row['slider']}{solution})"
        lab_page.healthy = True
    except BaseException as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()][:2]
        row["result"] = "FAILED: " + " ".join(lines)[:160]
        raise
    finally:
        try:  # show what failed: the cell that raised, else the main widget
            if failing_cell is not None:
                page.evaluate(SCROLL_TO_CELL_JS, [rel, failing_cell])
            else:
                page.locator(".widget-interact").first.scroll_into_view_if_needed(timeout=2000)
        except Exception:  # noqa: BLE001 - a screenshot of whatever is shown is still useful
            pass
        try:
            page.screenshot(path=str(shot))
        except Exception as e:  # noqa: BLE001 - never hide the test's own failure behind the screenshot's
            print(f"no screenshot of {rel}: {e}")
        lab.shutdown_kernels(rel)
        changed = [f.name for f, d in zip(files, digests) if _sha(f) != d]
        if changed:
            pytest.fail(f"the browser test modified {changed}: autosave must stay off")
