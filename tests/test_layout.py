"""The package layout: one module per method under faceedit_nb/papers, shared plumbing in methods.py, and a
change to one method re-executing only the chapters that use it (the execution cache's import walk)."""
import ast
import shutil
from pathlib import Path

import pytest

from faceedit_nb import book

PKG = Path(book.REPO_ROOT) / "faceedit_nb"
NOTEBOOKS = Path(book.REPO_ROOT) / "notebooks"


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
    return out


def test_papers_package_imports_nothing():
    assert _imports(PKG / "papers" / "__init__.py") == []


def test_shared_plumbing_never_imports_a_method():
    for name in ("methods.py", "claims.py", "train.py", "cache.py"):
        bad = [m for m in _imports(PKG / name) if "papers" in m]
        assert not bad, f"{name} imports {bad}"


def test_a_paper_imports_another_paper_only_to_extend_it():
    # allowed parents: a variant may import the method it extends (and the series its global generator)
    allowed = {"seg_hierarchical": {"stargan"}, "relative_au": {"ganimation"}, "defgan": {"ganimation"},
               "secgan": {"stargan", "attgan"}, "lssl": {"stargan"}}
    papers = {p.stem if p.is_file() else p.name: p for p in (PKG / "papers").iterdir()
              if p.name != "__init__.py" and not p.name.startswith("__")}
    for name, path in papers.items():
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        used = set()
        for f in files:
            for m in _imports(f):
                if "nets" in m.split("."):  # the networks' modules (nets/stargan.py ...) are not papers
                    continue
                for other in papers:
                    if other != name and (m.endswith("." + other) or f".{other}." in m + "."):
                        used.add(other)
        assert used <= allowed.get(name, set()), f"{name} imports {sorted(used)}"


def _used(notebook: str, package_dir: Path) -> list:
    nb = book.read_notebook(NOTEBOOKS / f"{notebook}.ipynb")
    deps = book.notebook_dependencies(nb, package_dir)
    assert deps is not None, f"{notebook}: a cell could not be parsed"
    return [entry for entry in book.package_fingerprint(package_dir) if entry[0] in deps]


@pytest.mark.parametrize("changed, chapters_kept, chapters_rerun", [
    ("papers/attgan.py", ["baselines/stargan", "baselines/ganimation", "seg_hierarchical/02_training"],
     ["baselines/attgan"]),
    ("papers/seg_hierarchical/losses.py", ["baselines/stargan", "baselines/ganimation", "baselines/attgan"],
     ["seg_hierarchical/02_training", "seg_hierarchical/04_results"]),
    ("papers/ganimation.py", ["baselines/stargan", "baselines/attgan", "seg_hierarchical/02_training"],
     ["baselines/ganimation", "seg_hierarchical/04_results"]),
])
def test_changing_one_method_reexecutes_only_the_chapters_that_use_it(tmp_path, changed, chapters_kept,
                                                                       chapters_rerun):
    copy = tmp_path / "faceedit_nb"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = {c: _used(c, copy) for c in chapters_kept + chapters_rerun}
    with open(copy / changed, "a") as fh:
        fh.write("\n# a change\n")
    for c in chapters_kept:
        assert _used(c, copy) == before[c], f"{c} would re-execute after a change to {changed}"
    for c in chapters_rerun:
        assert _used(c, copy) != before[c], f"{c} would not re-execute after a change to {changed}"
