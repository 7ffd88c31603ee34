"""Sphinx configuration of the course website (``make site``; sources laid out by ``site_src/build.py``).

Sphinx with myst-nb and the book theme: lessons are the executed notebooks (``nb_execution_mode = "off"``: the
site never runs a cell), the API page is autodoc over ``mmlab``'s docstrings, search is Sphinx's own index (a
static file, no server), and MathJax 3 comes from the ``sphinx-mathjax-offline`` package, so that math renders
without any CDN: the built site loads nothing from outside itself.
"""

from __future__ import annotations

project = "mmlab — a practical multimodal ML course"
author = "the mmlab course authors"
copyright = "the mmlab course authors (MIT licence)"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3.2 files copied into _static/mathjax; sets mathjax_path to them
    "sphinx_copybutton",
]

# --- notebooks: render what was executed, never execute
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 4
myst_dmath_double_inline = True
nb_ipywidgets_js = {}  # no widget JavaScript from a CDN (the pages keep the widgets' default figures)
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

# --- API page
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False  # not torch.nn.Module's "Define the computation performed at every call"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_mock_imports: list[str] = []

exclude_patterns = ["_build", "_static/**", "**.ipynb_checkpoints"]

# --- HTML
html_theme = "sphinx_book_theme"
html_title = "mmlab course"
html_static_path = ["_static"]
html_css_files = ["mmlab.css"]
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "repository_url": "https://github.com/mmlab-course/mmlab",
    "use_repository_button": True,
    "use_download_button": False,  # each lesson links its notebook without outputs instead
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
# the theme logs a console error when no colour mode is set ("Got invalid theme mode"): follow the reader's system
html_context = {"default_mode": "auto"}
