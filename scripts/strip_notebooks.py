#!/usr/bin/env python3
"""Strip outputs, execution counts and run-time metadata from source notebooks.

Usage::

    python scripts/strip_notebooks.py                 # strip every notebook under notebooks/
    python scripts/strip_notebooks.py path/to/x.ipynb # strip the given notebooks
    python scripts/strip_notebooks.py --check         # exit 1 and list notebooks that need stripping

Source notebooks are stored without outputs (the book shows the executed copies that
``python -m faceedit_nb.book`` produces); tests/test_notebook_hygiene.py fails otherwise.
Cell tags (``parameters``, ``hide-input``, ``nbval-ignore-output``...) and ids are kept.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
# Metadata written by running a notebook, never part of its source.
CELL_KEYS = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
NOTEBOOK_KEYS = ("papermill", "widgets", "faceedit_nb", "execution")


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip ``nb`` in place and return it."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
    for key in NOTEBOOK_KEYS:
        nb.metadata.pop(key, None)
    return nb


def notebooks(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: every notebook under notebooks/)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook needs stripping")
    args = parser.parse_args(argv)
    dirty = []
    for path in notebooks(args.paths):
        text = path.read_text(encoding="utf-8")
        before = nbformat.writes(nbformat.reads(text, as_version=4))  # compare content, not JSON layout
        after = nbformat.writes(strip(nbformat.reads(text, as_version=4)))
        if after != before:
            dirty.append(path)
            if not args.check:
                path.write_text(after + "\n", encoding="utf-8")
    verb = "needs stripping" if args.check else "stripped"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
