#!/usr/bin/env python3
"""Keep what every notebook repeats in step with ``book/_config.yml``: the install cell and the Colab badge.

The repository's URL and branch are configured once, in ``book/_config.yml`` (``repository.url``,
``repository.branch``). Each source notebook repeats them twice, because a notebook opened on Colab has
nothing else to read them from:

* its **install cell** (the first code cell, tagged ``install``): when ``faceedit_nb`` cannot be imported
  (Colab, a fresh environment), it pip-installs the package from the repository checkout the notebook
  sits in, else from ``git+<repository.url>@<branch>``;
* its **Colab badge** in the first markdown cell.

Usage::

    python scripts/sync_notebooks.py           # rewrite the install cells and badges of notebooks/**.ipynb
    python scripts/sync_notebooks.py --check   # only report notebooks that differ (exit 1); tested
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
TAGS = ["install", "hide-cell"]
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"']+?/notebooks/[^)\s\"']+?\.ipynb")
MARKER = "# Installs the book's package where it is missing"

INSTALL_CELL = '''\
# Installs the book's package where it is missing (Colab, a fresh environment): from the checkout this
# notebook sits in, else from the book's repository. Written by scripts/sync_notebooks.py from
# book/_config.yml (repository.url and branch): change them there, not here.
import importlib
import importlib.util

if importlib.util.find_spec("faceedit_nb") is None:
    import pathlib
    import subprocess
    import sys

    checkout = next((d for d in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
                     if (d / "pyproject.toml").is_file() and (d / "faceedit_nb" / "__init__.py").is_file()), None)
    source = str(checkout) if checkout else "{git}"
    print(f"installing faceedit_nb from {{'this checkout' if checkout else source}} ...")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)
    importlib.invalidate_caches()'''


def repository(config_file: Path = ROOT / "book" / "_config.yml") -> tuple[str, str]:
    """``(url, branch)`` of the book's repository, from ``_config.yml``."""
    repo = (yaml.safe_load(config_file.read_text()) or {}).get("repository") or {}
    url, branch = str(repo.get("url", "")).rstrip("/"), str(repo.get("branch", "main"))
    if not url.startswith("https://github.com/"):
        raise SystemExit(f"{config_file}: repository.url must be a https://github.com/<owner>/<name> URL; got {url!r}")
    return url, branch


def install_source(url: str, branch: str) -> str:
    return INSTALL_CELL.format(git=f"git+{url}@{branch}")


def badge_url(url: str, branch: str, name: str) -> str:
    return f"https://colab.research.google.com/github/{url[len('https://github.com/'):]}/blob/{branch}/notebooks/{name}.ipynb"


def install_cell_index(nb: nbformat.NotebookNode) -> int | None:
    """The install cell: the code cell tagged ``install``, else the first code cell that imports nothing
    but tries ``faceedit_nb`` (older notebooks); None if there is none."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for i in code:
        if "install" in nb.cells[i].get("metadata", {}).get("tags", []):
            return i
    if code and "faceedit_nb" in nb.cells[code[0]].source and ("pip install" in nb.cells[code[0]].source
                                                               or MARKER in nb.cells[code[0]].source):
        return code[0]
    return None


def sync(nb: nbformat.NotebookNode, name: str, url: str, branch: str) -> list[str]:
    """Bring ``nb`` in step (in place); returns what was out of step."""
    changes = []
    i = install_cell_index(nb)
    if i is None:
        changes.append("no install cell (a code cell tagged 'install'): added one")
        first_code = next((k for k, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
        cell = nbformat.v4.new_code_cell(install_source(url, branch), metadata={"tags": list(TAGS)})
        nb.cells.insert(first_code, cell)
    else:
        cell = nb.cells[i]
        if cell.source != install_source(url, branch):
            changes.append(f"cell {i}: the install cell differs from the one _config.yml's repository gives")
            cell.source = install_source(url, branch)
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        missing = [t for t in TAGS if t not in tags]
        if missing:
            changes.append(f"cell {i}: the install cell lacks the tags {missing}")
            tags.extend(missing)
    want = badge_url(url, branch, name)
    first_md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first_md is not None:
        found = BADGE.findall(first_md.source)
        if not found:
            changes.append("the first markdown cell has no Colab badge: added one")
            lines = first_md.source.split("\n")
            badge = f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({want})"
            first_md.source = "\n".join(lines[:1] + ["", badge] + lines[1:])
        elif any(u != want for u in found):
            changes.append(f"the Colab badge points to {found[0]}, not {want}")
            first_md.source = BADGE.sub(want, first_md.source)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report notebooks out of step; change nothing")
    parser.add_argument("--config", type=Path, default=ROOT / "book" / "_config.yml")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every notebooks/**/*.ipynb)")
    args = parser.parse_args(argv)
    url, branch = repository(args.config)
    notebooks_dir = ROOT / "notebooks"
    paths = args.paths or sorted(p for p in notebooks_dir.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    stale = 0
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        try:
            name = path.resolve().relative_to(notebooks_dir).with_suffix("").as_posix()
        except ValueError:
            name = path.stem
        changes = sync(nb, name, url, branch)
        if changes:
            stale += 1
            for change in changes:
                print(f"{path}: {change}")
            if not args.check:
                nbformat.write(nb, str(path))
    if args.check and stale:
        print(f"{stale} notebook(s) out of step with {args.config}: run python scripts/sync_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
