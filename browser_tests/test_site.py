"""The course website (``make site``) in a real Chromium: run by ``make site-test``.

The built ``site/`` is served from 127.0.0.1 and every request that leaves this machine is refused and counted,
so the test also proves the site loads nothing from outside (MathJax, fonts, widget scripts are all local).
It checks that

* the index and every lesson page load with no console error, no failed request and no outside request;
* every lesson page shows at least one rendered figure and no error output or traceback;
* the search page finds a term from lesson 2 and lists lesson 2 among its results;
* a display-math block is rendered by MathJax (lesson 2);
* an exercise solution is hidden until its toggle is clicked, and then shows its code (every lesson with one);
* a prose "Answer" opens on click.

Screenshots go to ``artifacts/site/``. The site folder is ``$MMLAB_SITE_DIR`` (``make site-test`` sets it; the
test fails when it has no index). Without the variable and without a built ``site/``, e.g. in
``make browser-test``, the module is skipped.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("MMLAB_SITE_DIR") or ROOT / "site").resolve()
ARTIFACTS = ROOT / "artifacts" / "site"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LESSONS = sorted(p.stem for p in (SITE / "lessons").glob("[0-9][0-9]_*.html"))  # the pages the site has
SEARCH_TERM = "einsum"  # lesson 2 ("outer products and einsum"); not in lesson 0's pages

if not (SITE / "index.html").is_file():
    if os.environ.get("MMLAB_SITE_DIR"):
        raise pytest.UsageError(f"no built site in {SITE} (index.html missing): run `make site` first")
    pytest.skip("no built site/ (run `make site-test`)", allow_module_level=True)

# What a lesson page shows: rendered figures, and outputs that are errors or tracebacks.
PAGE_CHECK_JS = """
() => {
  const imgs = [...document.querySelectorAll('.cell_output img, .output img')];
  const figures = imgs.filter(img => img.complete && img.naturalWidth > 50 && img.naturalHeight > 50).length;
  const problems = [];
  for (const el of document.querySelectorAll('.cell_output .output.error, .cell_output .output.traceback')) {
    problems.push('error output: ' + (el.textContent || '').trim().slice(0, 300));
  }
  for (const el of document.querySelectorAll('.cell_output')) {
    const text = el.textContent || '';
    if (/Traceback \\(most recent call last\\)/.test(text)) problems.push('traceback: ' + text.slice(0, 300));
    if (/^\\s*(interactive|HBox|VBox)\\(children=/.test(text))
      problems.push('a widget shown as text: ' + text.slice(0, 120));
  }
  return {figures, problems, title: document.title};
}
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def site_url():
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture()
def page(browser, site_url):
    """A fresh page that records console errors, page errors, failed requests and requests to other hosts."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.problems = []

    def route(r):
        if urlparse(r.request.url).hostname not in ("127.0.0.1", None):
            pg.problems.append(f"request to another host: {r.request.url}")
            return r.abort()
        return r.continue_()

    pg.route("**/*", route)
    pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console error: {m.text}"))
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.on(
        "requestfailed",
        lambda r: "request to another host" not in " ".join(pg.problems)
        and pg.problems.append(f"request failed: {r.url} ({r.failure})"),
    )
    yield pg
    context.close()


def _open(page, url: str) -> None:
    page.goto(url, wait_until="load")  # the pages are static: every script, style and image has loaded by now


def test_index(page, site_url, shots):
    _open(page, f"{site_url}/index.html")
    links = page.eval_on_selector_all(".bd-sidebar a.reference.internal", "els => els.map(e => e.getAttribute('href'))")
    page.screenshot(path=str(shots / "index.png"), full_page=False)
    assert not page.problems, page.problems
    lesson_links = [h for h in links if h.startswith("lessons/")]
    assert [h.split("/")[1].split(".")[0] for h in lesson_links] == LESSONS, f"navigation not in course order: {links}"
    assert LESSONS, "no lesson pages"
    assert "api.html" in links and "references.html" in links
    table = page.inner_text("table")
    assert "Open in Colab" in table and "efficient fusion" in table


def test_every_lesson_has_a_page():
    assert LESSONS == NOTEBOOKS, "the site's lesson pages and notebooks/NN_*.ipynb differ: run `make site` again"
    assert all(_has_solution(s) for s in LESSONS), "every lesson has a hidden solution for the page test to open"


def _open_solution(page, shots, stem: str) -> None:
    """The lesson's first solution cell: its code hidden until the toggle is clicked, then shown."""
    cell = page.locator(".cell.tag_solution").first
    assert cell.count(), f"{stem}: no solution cell on the page"
    code = cell.locator(".cell_input pre").first
    assert not code.is_visible(), f"{stem}: the solution's code is visible before a click"
    toggle = cell.locator("details.hide.above-input > summary").first
    toggle.scroll_into_view_if_needed()
    toggle.click()
    code.wait_for(state="visible", timeout=5_000)
    assert "def " in code.inner_text() or "=" in code.inner_text()
    cell.screenshot(path=str(shots / f"{stem}_solution_open.png"))


@pytest.mark.parametrize("stem", LESSONS)
def test_lesson_page(page, site_url, shots, stem):
    _open(page, f"{site_url}/lessons/{stem}.html")
    # images are decoded lazily: scroll to the end once so that every figure has loaded
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(300)
    state = page.evaluate(PAGE_CHECK_JS)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / f"{stem}.png"), full_page=False)
    assert not page.problems, page.problems
    assert state["figures"] >= 1, f"{stem}: no rendered figure on the page"
    assert not state["problems"], state["problems"]
    links = page.eval_on_selector_all(".mmlab-lesson-links a", "els => els.map(e => e.getAttribute('href'))")
    assert any("colab.research.google.com" in h for h in links), links
    download = page.get_attribute(".mmlab-lesson-links a[download]", "href")
    assert download and download.endswith(f"{stem}.ipynb"), links
    assert page.request.get(f"{site_url}/lessons/{download}").ok, f"download link {download} is broken"
    if "interact(" in (ROOT / "notebooks" / f"{stem}.py").read_text():
        assert page.locator(".mmlab-widget-note").count() >= 1, f"{stem}: no note on how to run the widget live"
    if _has_solution(stem):  # on the same page load: a hidden solution opens on click
        _open_solution(page, shots, stem)
        assert not page.problems, page.problems


def test_search_finds_lesson_2(page, site_url, shots):
    _open(page, f"{site_url}/search.html?q={SEARCH_TERM}")
    page.wait_for_selector("#search-results ul.search li", timeout=20_000)
    hrefs = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
    page.screenshot(path=str(shots / "search.png"))
    assert not page.problems, page.problems
    assert any("02_fusion" in h for h in hrefs), f"search for {SEARCH_TERM!r} did not list lesson 2: {hrefs}"


def test_math_renders(page, site_url, shots):
    _open(page, f"{site_url}/lessons/02_fusion.html")
    page.wait_for_selector("mjx-container[display='true']", timeout=20_000)
    block = page.locator("mjx-container[display='true']").first
    block.scroll_into_view_if_needed()
    box = block.bounding_box()
    block.screenshot(path=str(shots / "math_block.png"))
    assert box and box["width"] > 40 and box["height"] > 10, box
    assert not page.locator("mjx-merror").count(), "MathJax reported an error in a formula"
    assert not page.problems, page.problems


def _has_solution(stem: str) -> bool:
    import json

    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    return any("solution" in c.get("metadata", {}).get("tags", []) for c in cells)


def test_prose_answer_opens(page, site_url):
    _open(page, f"{site_url}/lessons/02_fusion.html")
    answer = page.locator("details:has(> summary:text-is('Answer'))").first
    assert answer.count(), "no prose Answer on lesson 2's page"
    assert answer.get_attribute("open") is None
    answer.locator("summary").click()
    assert answer.get_attribute("open") is not None
