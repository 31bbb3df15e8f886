#!/usr/bin/env python3
"""Keep what every notebook repeats in step: the install cell, the Colab badge, the parameter check.

The repository's URL and branch are configured once, in ``book/_config.yml`` (``repository.url``,
``repository.branch``). Each source notebook repeats them twice, because a notebook opened on Colab has
nothing else to read them from:

* its **install cell** (the first code cell, tagged ``install``): when ``faceedit_nb`` cannot be imported
  (Colab, a fresh environment), it pip-installs the package from the repository checkout the notebook
  sits in, else from ``git+<repository.url>@<branch>``;
* its **Colab badge** in the first markdown cell.

And every notebook has the same **parameter check** right after its ``parameters`` cell (tagged
``check-parameters``): :func:`faceedit_nb.parameters.check_parameters` stops the notebook when papermill
set a parameter the parameters cell does not declare, or a value of the wrong type.

Notebooks are read and written as JSON, as they are stored (key order, cell ids and the layout of each
cell's source are kept); only the cells out of step change.

Usage::

    python scripts/sync_notebooks.py           # rewrite the install cells and badges of notebooks/**.ipynb
    python scripts/sync_notebooks.py --check   # only report notebooks that differ (exit 1); tested
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TAGS = ["install", "hide-cell"]
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"']+?/notebooks/[^)\s\"']+?\.ipynb")
MARKER = "# Installs the book's package where it is missing"
CHECK_TAGS = ["check-parameters", "hide-cell"]
CHECK_CELL = '''\
# Stops here if papermill set a parameter that the parameters cell above does not declare, or a value of
# the wrong type (papermill nb.ipynb out.ipynb -p sizee 32). Written by scripts/sync_notebooks.py.
from faceedit_nb.parameters import check_parameters

check_parameters()'''

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


def source(cell) -> str:
    """A cell's source as one string (stored as a string or as a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def set_source(cell, text: str) -> None:
    """Set a cell's source, stored the way it was (a list of lines or one string)."""
    cell["source"] = text.splitlines(True) if isinstance(cell.get("source"), list) else text


def tags_of(cell) -> list[str]:
    return cell.setdefault("metadata", {}).setdefault("tags", [])


def new_code_cell(nb, text: str, tags: list[str], cell_id: str) -> dict:
    """A code cell laid out like the notebook's others (sorted keys, as nbformat writes them; the source
    as a list of lines if the notebook's code cells store it so), with an id unique in the notebook."""
    taken = {c.get("id") for c in nb["cells"]}
    unique = cell_id if cell_id not in taken else next(f"{cell_id}-{k}" for k in range(2, 999)
                                                       if f"{cell_id}-{k}" not in taken)
    as_list = any(isinstance(c.get("source"), list) for c in nb["cells"] if c.get("cell_type") == "code")
    cell = {"cell_type": "code", "execution_count": None, "id": unique, "metadata": {"tags": list(tags)},
            "outputs": [], "source": text.splitlines(True) if as_list else text}
    if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 5) < 5:
        del cell["id"]  # cell ids exist from nbformat 4.5 on
    return cell


def install_cell_index(nb) -> int | None:
    """The install cell: the code cell tagged ``install``, else the first code cell that imports nothing
    but tries ``faceedit_nb`` (older notebooks); None if there is none."""
    code = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    for i in code:
        if "install" in nb["cells"][i].get("metadata", {}).get("tags", []):
            return i
    first = source(nb["cells"][code[0]]) if code else ""
    if code and "faceedit_nb" in first and ("pip install" in first or MARKER in first):
        return code[0]
    return None


def sync_install(nb, url: str, branch: str) -> list[str]:
    changes = []
    i = install_cell_index(nb)
    if i is None:
        changes.append("no install cell (a code cell tagged 'install'): added one")
        first_code = next((k for k, c in enumerate(nb["cells"]) if c["cell_type"] == "code"), len(nb["cells"]))
        nb["cells"].insert(first_code, new_code_cell(nb, install_source(url, branch), TAGS, "install"))
        return changes
    cell = nb["cells"][i]
    if source(cell) != install_source(url, branch):
        changes.append(f"cell {i}: the install cell differs from the one _config.yml's repository gives")
        set_source(cell, install_source(url, branch))
    tags = tags_of(cell)
    missing = [t for t in TAGS if t not in tags]
    if missing:
        changes.append(f"cell {i}: the install cell lacks the tags {missing}")
        tags.extend(missing)
    return changes


def sync_check(nb) -> list[str]:
    """The parameter check: right after the parameters cell (none without one: the runner reports that)."""
    cells = nb["cells"]
    params = [i for i, c in enumerate(cells)
              if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1:
        return []
    found = [i for i, c in enumerate(cells) if CHECK_TAGS[0] in c.get("metadata", {}).get("tags", [])]
    changes = []
    if not found:
        changes.append("no parameter check after the parameters cell: added one")
        cells.insert(params[0] + 1, new_code_cell(nb, CHECK_CELL, CHECK_TAGS, "check-parameters"))
        return changes
    cell = cells[found[0]]
    for extra in reversed(found[1:]):
        changes.append(f"cell {extra}: a second parameter check: removed")
        del cells[extra]
    if found[0] != params[0] + 1:
        changes.append(f"cell {found[0]}: the parameter check is not right after the parameters cell: moved there")
        cells.remove(cell)
        cells.insert(next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])) + 1,
                     cell)
    if source(cell) != CHECK_CELL:
        changes.append("the parameter check differs from scripts/sync_notebooks.py's")
        set_source(cell, CHECK_CELL)
    missing = [t for t in CHECK_TAGS if t not in tags_of(cell)]
    if missing:
        changes.append(f"the parameter check lacks the tags {missing}")
        tags_of(cell).extend(missing)
    return changes


def sync_badge(nb, name: str, url: str, branch: str) -> list[str]:
    want = badge_url(url, branch, name)
    first_md = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    if first_md is None:
        return []
    text = source(first_md)
    found = BADGE.findall(text)
    if not found:
        lines = text.split("\n")
        badge = f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({want})"
        set_source(first_md, "\n".join(lines[:1] + ["", badge] + lines[1:]))
        return ["the first markdown cell has no Colab badge: added one"]
    if any(u != want for u in found):
        set_source(first_md, BADGE.sub(want, text))
        return [f"the Colab badge points to {found[0]}, not {want}"]
    return []


def sync(nb, name: str, url: str, branch: str) -> list[str]:
    """Bring ``nb`` (a notebook as a dict: read with json or nbformat) in step, in place; returns what was
    out of step."""
    return sync_install(nb, url, branch) + sync_check(nb) + sync_badge(nb, name, url, branch)


def write_json(nb, path: Path) -> None:
    """As the notebooks are stored: ``json.dump(nb, indent=1, ensure_ascii=False)`` and a newline."""
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


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
        nb = json.loads(path.read_text(encoding="utf-8"))
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
                write_json(nb, path)
    if args.check and stale:
        print(f"{stale} notebook(s) out of step with {args.config}: run python scripts/sync_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
