"""Sphinx extension of the book: MathJax from the build itself, so that maths renders without the network.

The book is also read from a local build (``book/_build/html``, offline). Sphinx loads MathJax from a CDN by
default; this extension points ``mathjax_path`` at ``_static/mathjax/tex-mml-chtml.js`` and copies MathJax
3's browser bundle (``es5/``) there from the PyPI package ``django-static-mathjax`` (pinned in
requirements.txt; it imports as ``mathjax`` and needs no Django at build time).
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

ENTRY = "tex-mml-chtml.js"
TARGET = "mathjax"  # under _static/
# Not needed to typeset TeX with the CommonHTML output: the speech rule engine and the other bundles.
SKIP = shutil.ignore_patterns("sre", "*-full*.js", "*-svg*.js", "mml-*.js", "tex-chtml.js", "node-main.js",
                              "latest.js", "svg")


def mathjax_es5() -> Path:
    """The ``es5`` folder of the installed MathJax copy; an error that says what to install."""
    spec = importlib.util.find_spec("mathjax")
    for base in (spec.submodule_search_locations or []) if spec else []:
        es5 = Path(base) / "static" / "mathjax" / "es5"
        if (es5 / ENTRY).is_file():
            return es5
    raise RuntimeError("MathJax is not installed: pip install django-static-mathjax (see requirements.txt); "
                       "the book serves its own copy so that it renders maths offline")


def _config_inited(app, config) -> None:
    mathjax_es5()  # fail early, before the build, when the package is missing
    config.mathjax_path = f"{TARGET}/{ENTRY}"


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src, dst = mathjax_es5(), Path(app.outdir) / "_static" / TARGET
    stamp = dst / ".source"
    if stamp.is_file() and stamp.read_text() == str(src) and (dst / ENTRY).is_file():
        return
    shutil.copytree(src, dst, ignore=SKIP, dirs_exist_ok=True)
    stamp.write_text(str(src))


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
