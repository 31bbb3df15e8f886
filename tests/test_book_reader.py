"""The book as a reader sees it: the checks of the built HTML, the values the runner extracts, the claims
page, and the source notebooks' reader-facing conventions (install cell, summary, hidden plumbing).

The checks are first tested on small fixtures (so that they can fail), then run on notebooks/.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from faceedit_nb import book

ROOT = Path(__file__).resolve().parents[1]
SOURCES = book.find_notebooks(ROOT / "notebooks")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- check_html on fixtures ------------------------------------------------------------------------------
PAGE = """<html><head><link rel="stylesheet" href="_static/a.css?v=1"><script src="_static/a.js?v=2"></script>
</head><body><article>{body}</article></body></html>"""


def write_site(tmp_path: Path, body: str) -> Path:
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "a.css").write_text("")
    (tmp_path / "_static" / "a.js").write_text("")
    (tmp_path / "img.png").write_bytes(b"png")
    (tmp_path / "other.html").write_text(PAGE.format(body='<h2 id="there">There</h2>'))
    (tmp_path / "page.html").write_text(PAGE.format(body=body))
    return tmp_path


def test_check_html_accepts_a_clean_page(tmp_path):
    body = ('<p>Fine.</p><table><tr><td>a | b</td></tr></table><img src="img.png"><a href="other.html#there">x</a>'
            '<a href="https://example.org/x"><img src="https://example.org/badge.svg"></a>'
            '<pre>glue("x", 1)  # {glue:text}`x` in a code cell is code</pre>')
    assert book.check_html(write_site(tmp_path, body)) == []


@pytest.mark.parametrize("body, expected", [
    ("<p>| a | b |\n|---|---|\n| 1 | 2 |</p>", "Markdown table shown as text"),
    ("<p>See <code>{glue:text}sh1_profile</code>.</p>", "unresolved MyST role"),
    ("<p>See {cite:p}`x`.</p>", "unresolved MyST role"),
    ('<a href="missing.html">x</a>', "broken link missing.html"),
    ('<a href="other.html#nowhere">x</a>', "missing anchor other.html#nowhere"),
    ('<img src="_images/none.png">', "broken image _images/none.png"),
    ('<script src="https://cdn.example.org/mathjax.js"></script>', "from the network"),
])
def test_check_html_finds_what_a_reader_would_see(tmp_path, body, expected):
    problems = book.check_html(write_site(tmp_path, body))
    assert any(expected in p for p in problems), problems


# --- values the runner reads from executed notebooks -------------------------------------------------------
def glue_output(name: str, data: dict) -> nbformat.NotebookNode:
    prefix = "application/papermill.record/"
    return new_output("display_data", data={prefix + k: v for k, v in data.items()},
                      metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})


def test_glued_values_reads_numbers_strings_and_tables():
    cell = new_code_cell("...")
    cell.outputs = [glue_output("n", {"text/plain": "64"}), glue_output("f", {"text/plain": "np.float64(0.25)"}),
                    glue_output("t", {"text/plain": "tensor(0.5000)"}), glue_output("s", {"text/plain": "'mouth'"}),
                    glue_output("md", {"text/plain": "<IPython.core.display.Markdown object>",
                                       "text/markdown": "| a |\n|---|\n| 1 |"}),
                    glue_output("nan", {"text/plain": "nan"}),
                    glue_output("fig", {"image/png": "iVBOR..."}),
                    new_output("stream", name="stdout", text="not a glue\n")]
    values = book.glued_values(new_notebook(cells=[cell]))
    assert values == {"n": 64, "f": 0.25, "t": 0.5, "s": "mouth", "md": "| a |\n|---|\n| 1 |"}


def test_claims_fragment_lists_each_chapter_and_counts_verdicts():
    records = [{"claim": "ours | above StarGAN", "paper": "+5.1 points", "ours": "+2 [+1, +3]", "detectable": "1.5",
                "verdict": "reproduced", "verdict_text": "reproduced"},
               {"claim": "parts matter", "paper": "-", "ours": "+0.1 [-1, +1]", "detectable": "2",
                "verdict": "inconclusive", "verdict_text": "inconclusive (the paper's +3 is above the detectable 2)"}]
    text = book.claims_fragment([("a/one", "One", records), ("b", "Empty", [])])
    assert "{doc}`One </notebooks/a/one>`" in text and "Empty" not in text
    assert "ours \\| above StarGAN" in text  # a pipe inside a cell does not split it
    assert "| **all chapters** | **2** | **1** | **0** | **1** | **0** |" in text
    assert "**inconclusive**: the paper's +3 is above the detectable 2 |" in text
    assert "No chapter has measured a claim yet" in book.claims_fragment([("b", "Empty", [])])


def test_profile_box_states_profile_and_settings():
    meta = {"profile": "smoke", "parameters": {"size": 32, "seed": 0}, "overrides": {"size": 32},
            "executed": "2026-12-04T12:00:00+0000", "seconds": 7.7}
    nb = new_notebook(cells=[new_markdown_cell("# Title\n\nIntro."), new_code_cell("size = 64\nseed = 0"),
                             new_code_cell("# Parameters\nsize = 32\n", metadata={"tags": ["injected-parameters"]})])
    nb.metadata[book.META_KEY] = meta
    out = book.decorate(nb)
    box = out.cells[1]
    assert box.cell_type == "markdown" and book.GENERATED_TAG in box.metadata["tags"]
    assert "**smoke** profile" in box.source and "`size = 32` (from `notebooks/profiles.yml`)" in box.source
    assert "`seed = 0` (the notebook's defaults)" in box.source and "meaningless" in box.source
    assert "hide-cell" in out.cells[3].metadata["tags"]
    assert book.decorate(out).cells == out.cells  # idempotent


# --- the repository's notebooks ------------------------------------------------------------------------------
def test_install_cells_and_badges_follow_config():
    sync = load_script("sync_notebooks")
    url, branch = sync.repository()
    assert url == "https://github.com/faceedit-nb/faceedit-nb"
    assert sync.main(["--check"]) == 0, "run: python scripts/sync_notebooks.py"


def test_sync_rewrites_a_stale_install_cell(tmp_path):
    sync = load_script("sync_notebooks")
    nb = new_notebook(cells=[
        new_markdown_cell("# T\n\n[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                          "(https://colab.research.google.com/github/old/repo/blob/dev/notebooks/t.ipynb)"),
        new_code_cell('try:\n    import faceedit_nb\nexcept ImportError:\n    %pip install -q "git+https://x/y"')])
    changes = sync.sync(nb, "t", "https://github.com/me/fork", "v2")
    assert len(changes) == 3
    assert "git+https://github.com/me/fork@v2" in nb.cells[1].source
    assert nb.cells[1].metadata["tags"] == ["install", "hide-cell"]
    assert "github/me/fork/blob/v2/notebooks/t.ipynb" in nb.cells[0].source
    assert sync.sync(nb, "t", "https://github.com/me/fork", "v2") == []


def test_install_cell_installs_from_the_checkout_it_sits_in(tmp_path, monkeypatch):
    """Run the cell where faceedit_nb is not importable: it pip-installs the enclosing checkout."""
    sync = load_script("sync_notebooks")
    source = sync.install_source("https://github.com/faceedit-nb/faceedit-nb", "main")
    calls = []
    checkout = tmp_path / "repo"
    (checkout / "faceedit_nb").mkdir(parents=True)
    (checkout / "faceedit_nb" / "__init__.py").write_text("")
    (checkout / "pyproject.toml").write_text("")
    (checkout / "notebooks").mkdir()
    import importlib.util as iu
    import subprocess
    real_find_spec = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: None if name == "faceedit_nb" else real_find_spec(name, *a))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    for cwd, expected in ((checkout / "notebooks", str(checkout)),
                          (tmp_path, "git+https://github.com/faceedit-nb/faceedit-nb@main")):
        monkeypatch.chdir(cwd)
        calls.clear()
        exec(compile(source, "<install cell>", "exec"), {})
        assert calls == [[sys.executable, "-m", "pip", "install", "-q", expected]]


def test_the_package_declares_what_the_notebooks_import():
    """``pip install`` of the checkout (Colab, a fresh environment) brings every third-party module that the
    package and the notebooks import at module level."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {re.split(r"[<>=!~ \[;]", d)[0].lower().replace("_", "-") for d in deps}
    provided = importlib.metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    modules: dict[str, str] = {}

    def scan(tree: ast.AST, where: str, top_level_only: bool) -> None:
        nodes = tree.body if top_level_only else ast.walk(tree)
        for node in nodes:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "faceedit_nb" and not top.startswith("_"):
                    modules.setdefault(top, where)

    for path in sorted((ROOT / "faceedit_nb").rglob("*.py")):
        if path.name != "book.py":  # the runner: a development tool (pyproject's [book] extra)
            scan(ast.parse(path.read_text()), str(path.relative_to(ROOT)), top_level_only=True)
    for name, path in SOURCES.items():
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type == "code":
                code = "\n".join(l[:len(l) - len(l.lstrip())] + "pass" if l.lstrip().startswith(("%", "!")) else l
                                 for l in cell.source.splitlines())
                scan(ast.parse(code), f"notebooks/{name}", top_level_only=False)
    missing = {m: w for m, w in modules.items()
               if not any(d.lower().replace("_", "-") in declared for d in provided.get(m, [m]))}
    assert not missing, f"imported but not in pyproject's dependencies: {missing}"


def headings(nb: nbformat.NotebookNode) -> dict[str, str]:
    """``{heading: text under it}`` of the level-2 headings of the markdown cells."""
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    parts = re.split(r"^## +(.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def plumbing(cell) -> str | None:
    """Why a code cell is plumbing (it only glues values, or only assembles a table), else None."""
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return None
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if not body:
        return None

    def name(call):
        f = call.func
        return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""

    if all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and name(n.value) == "glue" for n in body):
        return "it only glues values"
    last = body[-1]
    if (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and name(last.value) in ("markdown_table", "glue_claims", "claims_table")
            and not any(isinstance(n, (ast.For, ast.While, ast.With)) for n in body)
            and len(body) <= 3):
        return "it assembles a table"
    return None


HIDDEN = {"hide-input", "hide-cell", "remove-input", "remove-cell"}


def test_plumbing_detection():
    assert plumbing(new_code_cell("glue('a', 1, display=False)\nglue('b', 2, display=False)")) == "it only glues values"
    assert plumbing(new_code_cell("viz.markdown_table(rows, ['a'])")) == "it assembles a table"
    assert plumbing(new_code_cell("x = train(cfg)\nglue('a', x, display=False)")) is None


@pytest.mark.parametrize("name", list(SOURCES))
def test_chapter_reads_well(name):
    """Each chapter ends with "What this chapter showed" (three points) beside "What to try next", and its
    plumbing (install, glue-only and table-assembly cells) is hidden or collapsed."""
    nb = nbformat.read(str(SOURCES[name]), as_version=4)
    sections = headings(nb)
    assert "What this chapter showed" in sections, f"{name}: no '## What this chapter showed' section"
    assert "What to try next" in sections, f"{name}: no '## What to try next' section"
    points = re.findall(r"^[-*] ", sections["What this chapter showed"], flags=re.M)
    assert len(points) == 3, f"{name}: the summary has {len(points)} points, not three"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        why = "it is the install cell" if "install" in tags else plumbing(cell)
        assert not why or tags & HIDDEN, f"{name}: cell {i} should be hidden or collapsed ({why}): {cell.source[:60]!r}"
