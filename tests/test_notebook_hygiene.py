"""Source notebooks are stored clean, are parameterised the one supported way, and are all in the book.

The checks themselves are first tested on tmp fixtures (so they cannot pass vacuously), then run on
every notebook under notebooks/.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from faceedit_nb import book

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = book.Layout()
SOURCES = book.find_notebooks(LAYOUT.notebooks_dir)


def load_strip_script():
    spec = importlib.util.spec_from_file_location("strip_notebooks", ROOT / "scripts" / "strip_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean_notebook() -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_markdown_cell("# Title"),
        new_code_cell("size = 64\nsteps = 10", metadata={"tags": ["parameters"]}),
        new_code_cell("print(size * steps)", metadata={"tags": ["nbval-ignore-output"]}),
    ])


def dirty_notebook() -> nbformat.NotebookNode:
    nb = clean_notebook()
    nb.cells[2].outputs = [new_output("stream", name="stdout", text="640\n")]
    nb.cells[2].execution_count = 3
    nb.cells[1].execution_count = 2
    nb.cells[2].metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    nb.metadata["papermill"] = {"parameters": {}}
    return nb


# --- the checks, on fixtures ------------------------------------------------------------------------------
def test_lint_accepts_a_clean_notebook():
    assert book.lint_source(clean_notebook(), "clean") == []


def test_lint_flags_outputs_and_execution_counts():
    problems = book.lint_source(dirty_notebook(), "dirty")
    assert any("cell 2 stores outputs" in p for p in problems)
    assert any("cell 1 stores an execution count" in p for p in problems)


def test_lint_flags_a_bad_parameters_cell():
    nb = clean_notebook()
    nb.cells[1].source = "size = 64\nhalf = size // 2"
    assert any("not a literal" in p for p in book.lint_source(nb, "derived"))
    nb.cells[1].metadata = {}
    assert any("exactly one" in p for p in book.lint_source(nb, "untagged"))


def test_strip_script_cleans_and_checks(tmp_path):
    strip = load_strip_script()
    path = tmp_path / "dirty.ipynb"
    nbformat.write(dirty_notebook(), str(path))
    assert strip.main(["--check", str(path)]) == 1
    assert strip.main([str(path)]) == 0
    assert strip.main(["--check", str(path)]) == 0
    nb = nbformat.read(str(path), as_version=4)
    assert book.lint_source(nb, "stripped") == []
    assert nb.cells[2].metadata["tags"] == ["nbval-ignore-output"]  # tags survive
    assert "papermill" not in nb.metadata and "execution" not in nb.cells[2].metadata


# --- the repository's notebooks ---------------------------------------------------------------------------
def test_the_book_has_notebooks():
    assert SOURCES, f"no notebook under {LAYOUT.notebooks_dir}; book/_toc.yml expects notebooks/synthfaces.ipynb"


@pytest.mark.parametrize("name", list(SOURCES))
def test_source_notebook_is_clean_and_parameterised(name):
    problems = book.lint_source(book.read_notebook(SOURCES[name]), name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", list(SOURCES))
def test_papermill_reads_every_declared_parameter(name):
    """papermill's own parser (``--help-notebook``, and its "unknown parameter" warning) must see every name the
    parameters cell declares: a comment it cannot parse (e.g. one holding " = ") hides the parameter."""
    from papermill.translators import PythonTranslator
    nb = book.read_notebook(SOURCES[name])
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    seen = {p.name for p in PythonTranslator.inspect(cell)}
    declared = set(book.declared_parameters(nb, name))
    assert declared <= seen, f"papermill cannot parse: {declared - seen}"


@pytest.mark.parametrize("profile", book.PROFILES)
def test_profiles_only_set_declared_parameters(profile):
    profiles = book.load_profiles(LAYOUT.profiles_file, SOURCES)  # unknown notebook / profile names raise
    for name, path in SOURCES.items():
        declared = book.declared_parameters(book.read_notebook(path), name)
        book.profile_overrides(name, declared, profiles, profile)  # raises BookError naming the parameter


def test_every_notebook_is_in_the_toc_and_every_entry_exists():
    entries = [book._strip_ext(e) for e in book.toc_files(LAYOUT.book_dir)]
    assert entries and entries[0] == "intro"
    missing_from_toc = [n for n in SOURCES if f"notebooks/{n}" not in entries]
    assert not missing_from_toc, f"notebooks not listed in book/_toc.yml: {missing_from_toc}"
    dangling = []
    for entry in entries:
        if entry.startswith("notebooks/"):
            if entry[len("notebooks/"):] not in SOURCES:
                dangling.append(f"{entry} (no notebooks/{entry[len('notebooks/'):]}.ipynb)")
        elif not (LAYOUT.book_dir / f"{entry}.md").is_file():
            dangling.append(f"{entry} (no book/{entry}.md)")
    assert not dangling, f"book/_toc.yml entries without a source: {dangling}"
    assert len(entries) == len(set(entries)), "duplicate entries in book/_toc.yml"
