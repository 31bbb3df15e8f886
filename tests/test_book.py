"""The book runner (faceedit_nb.book): parameters, profiles, errors, the execution cache, the build.

Every test works on a tiny notebook in a tmp dir, so it is meaningful whatever notebooks/ holds.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from faceedit_nb import book
from faceedit_nb.book import BookError, Layout

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(path: Path, params: str = "n = 3\nscale = 0.5\nlabel = 'x'", body: str | None = None,
                  prose: str = "# Tiny\n\nA test notebook.") -> Path:
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell(prose),
        new_code_cell(params, metadata={"tags": ["parameters"]}),
        new_code_cell(body if body is not None else
                      "import os\nresult = n * scale\nprint(label, result)\nopen('written.txt', 'w').write(label)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def layout(tmp_path) -> Layout:
    make_notebook(tmp_path / "notebooks" / "tiny.ipynb")
    make_notebook(tmp_path / "notebooks" / "sub" / "other.ipynb", params="steps = 1",
                  body="def uses_the_package():\n    import pkg.mod\nprint('steps', steps)")
    (tmp_path / "notebooks" / ".ipynb_checkpoints").mkdir()
    make_notebook(tmp_path / "notebooks" / ".ipynb_checkpoints" / "tiny-checkpoint.ipynb")
    (tmp_path / "notebooks" / "profiles.yml").write_text(
        "tiny:\n  smoke:\n    n: 1\n  paper:\n    n: 100\n    label: paper\nsub/other:\n  smoke: {steps: 0}\n")
    # A stand-in package: its files are hashed like faceedit_nb/**/*.py, but nobody edits it mid-test.
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    return Layout(notebooks_dir=tmp_path / "notebooks", book_dir=tmp_path / "book",
                  build_dir=tmp_path / "build", package_dir=tmp_path / "pkg")


def outputs_text(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


# --- discovery and parameters ----------------------------------------------------------------------------
def test_find_notebooks_names_and_skips_checkpoints(layout):
    assert list(book.find_notebooks(layout.notebooks_dir)) == ["sub/other", "tiny"]


@pytest.mark.parametrize("source, expected", [
    ("n = 3\nlr: float = 1e-4\n# comment\nsize = (64, 64)", {"n": 3, "lr": 1e-4, "size": (64, 64)}),
    ("a = b = -1\nname = 'x'\nopts = {'k': [1, None, True]}", {"a": -1, "b": -1, "name": "x",
                                                                "opts": {"k": [1, None, True]}}),
])
def test_parse_parameters_accepts_literals(source, expected):
    assert book.parse_parameters(source, "nb") == expected


@pytest.mark.parametrize("source, message", [
    ("n = 3\nm = n * 2", "not a literal"),
    ("import torch\nn = 1", "only literal assignments"),
    ("x.y = 1", "plain names"),
    ("%matplotlib inline\nn = 1", "not plain Python"),
    ("# nothing", "declares no parameter"),
])
def test_parse_parameters_rejects_code(source, message):
    with pytest.raises(BookError, match=message):
        book.parse_parameters(source, "nb")


def test_parameters_cell_must_be_unique(tmp_path):
    nb = new_notebook(cells=[new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
                             new_code_cell("b = 1", metadata={"tags": ["parameters"]})])
    with pytest.raises(BookError, match="exactly one code cell tagged 'parameters'"):
        book.declared_parameters(nb, "two")
    with pytest.raises(BookError, match="exactly one"):
        book.declared_parameters(new_notebook(cells=[new_code_cell("a = 1")]), "none")


def test_profile_overrides_and_cpu_defaults(layout):
    nbs = book.find_notebooks(layout.notebooks_dir)
    profiles = book.load_profiles(layout.profiles_file, nbs)
    declared = book.declared_parameters(book.read_notebook(nbs["tiny"]), "tiny")
    assert book.profile_overrides("tiny", declared, profiles, "smoke") == {"n": 1}
    assert book.profile_overrides("tiny", declared, profiles, "cpu") == {}
    assert book.profile_overrides("tiny", declared, profiles, "paper") == {"n": 100, "label": "paper"}


def test_unknown_parameter_is_a_clear_error(layout):
    layout.profiles_file.write_text("tiny:\n  smoke:\n    n: 1\n    epochs: 5\n")
    with pytest.raises(BookError) as err:
        book.run("smoke", layout=layout, prepare_only=True)
    msg = str(err.value)
    assert "'tiny'" in msg and "'epochs'" in msg and "n, scale, label" in msg


def test_wrong_type_is_a_clear_error(layout):
    layout.profiles_file.write_text("tiny:\n  smoke:\n    scale: 1e-4\n")  # YAML 1.1 reads 1e-4 as a string
    with pytest.raises(BookError, match="scale = '1e-4'"):
        book.run("smoke", layout=layout, prepare_only=True)


def test_the_runner_names_the_nearest_parameter_and_lists_the_valid_ones(layout):
    layout.profiles_file.write_text("tiny:\n  smoke:\n    scalee: 0.1\n")
    with pytest.raises(BookError, match=r"sets parameter 'scalee', which the notebook does not declare \(did you mean "
                                        r"'scale'\?\); declared parameters: n, scale, label"):
        book.run("smoke", layout=layout, prepare_only=True)
    layout.profiles_file.write_text("tiny:\n  smoke:\n    n: abc\n")
    with pytest.raises(BookError) as err:
        book.run("smoke", layout=layout, prepare_only=True)
    msg = str(err.value)
    assert "sets n = 'abc' (str) but the default is 3 (int)" in msg and "declared parameters: n, scale, label" in msg
    assert "1.0e-4" not in msg  # the YAML float hint only where a float is declared
    layout.profiles_file.write_text("tiny:\n  smoke:\n    scale: 2\n")  # an int for a float is fine
    assert book.run("smoke", layout=layout, prepare_only=True, only=["tiny"])[0].status == "prepared"


# --- the notebooks' own check of what papermill injects (faceedit_nb.parameters) -----------------------------
DECLARED_CELL = "size = 64        # pixels\nn_test = 320\nlr = 0.001\nlabel = 'x'\nsizes = [64, 128]\nextra = None"
CHECK_CALL = "from faceedit_nb.parameters import check_parameters\n\ncheck_parameters()"


@pytest.mark.parametrize("injected, words", [
    ("sizee = 32", ["'sizee' is not a parameter of this notebook (did you mean 'size'?)"]),
    ('n_test = "abc"', ["n_test = 'abc' is a str, but the notebook declares n_test = 320, an int"]),
    ("size = 32.0\nsizes = '[64]'", ["size = 32.0 is a float", "sizes = '[64]' is a str", "-y YAML"]),
    ("label = 3", ["label = 3 is an int, but the notebook declares label = 'x', a str", "-r passes a raw string"]),
    ("n_test = True", ["n_test = True is a bool"]),
])
def test_check_parameters_rejects_undeclared_and_mistyped(injected, words):
    from faceedit_nb.parameters import ParameterError, check_parameters
    history = ["", "import faceedit_nb", DECLARED_CELL, "# Parameters\n" + injected + "\n", CHECK_CALL]
    with pytest.raises(ParameterError) as err:
        check_parameters(history=history)
    msg = str(err.value)
    assert msg.startswith("papermill set ") and "this notebook does not accept" in msg
    assert ("Its parameters (the defaults of its parameters cell): size = 64, n_test = 320, lr = 0.001, label = 'x', "
            "sizes = [64, 128], extra = None.") in msg
    for w in words:
        assert w in msg, (w, msg)


def test_check_parameters_accepts_what_is_declared_and_checks_nothing_when_nothing_was_injected():
    from faceedit_nb.parameters import ParameterError, check_parameters
    ok = "# Parameters\nsize = 128\nlr = 1\nsizes = (32,)\nextra = 'anything'\nlabel = 'y'\n"  # int for float
    assert check_parameters(history=["", DECLARED_CELL, ok, CHECK_CALL]) is None
    # the injected values are read from the namespace when given (papermill's cell has run there)
    with pytest.raises(ParameterError, match="n_test = 'abc' is a str"):
        check_parameters({"n_test": "abc"}, history=["", DECLARED_CELL, "# Parameters\nn_test = 1\n", CHECK_CALL])
    assert check_parameters(history=["", DECLARED_CELL, CHECK_CALL]) is None  # run by hand: no papermill cell
    assert check_parameters(history=[CHECK_CALL]) is None
    assert check_parameters() is None  # not in a kernel
    with pytest.raises(ParameterError, match="run the cells in order"):
        check_parameters(history=["", "x = compute()", "# Parameters\nsize = 1\n", CHECK_CALL])


def papermill_notebook(path: Path) -> Path:
    """A notebook laid out like the book's: install, parameters, the check sync_notebooks.py writes, a body."""
    sync = _sync_script()
    nb = new_notebook(cells=[new_markdown_cell("# T"), new_code_cell(DECLARED_CELL, metadata={"tags": ["parameters"]}),
                             new_code_cell("print('ran with', size, n_test)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    sync.sync_check(nb)
    nbformat.write(nbformat.from_dict(nb), str(path))
    return path


def _sync_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_papermill_run_stops_on_an_undeclared_or_mistyped_parameter(tmp_path):
    """``papermill nb.ipynb out.ipynb -p sizee 32`` ran with the default size; ``-p n_test abc`` went on."""
    import papermill as pm
    src = papermill_notebook(tmp_path / "nb.ipynb")
    for params, words in (({"sizee": 32}, "'sizee' is not a parameter of this notebook (did you mean 'size'?)"),
                          ({"n_test": "abc"}, "n_test = 'abc' is a str, but the notebook declares n_test = 320")):
        with pytest.raises(pm.PapermillExecutionError) as err:
            pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters=params, kernel_name="python3",
                                progress_bar=False, cwd=str(tmp_path))
        assert err.value.ename == "ParameterError" and words in err.value.evalue
        assert "ran with" not in outputs_text(tmp_path / "out.ipynb")
    pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters={"size": 32, "lr": 1}, kernel_name="python3",
                        progress_bar=False, cwd=str(tmp_path))
    assert "ran with 32 320" in outputs_text(tmp_path / "out.ipynb")


def test_sync_puts_one_check_right_after_the_parameters_cell():
    sync = _sync_script()
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "execution_count": None, "id": "p", "metadata": {"tags": ["parameters"]}, "outputs": [],
         "source": ["a = 1\n", "b = 2"]},
        {"cell_type": "code", "execution_count": None, "id": "body", "metadata": {}, "outputs": [], "source": ["a\n"]},
        {"cell_type": "code", "execution_count": None, "id": "c", "metadata": {"tags": ["check-parameters"]},
         "outputs": [], "source": "old"}]}
    changes = sync.sync_check(nb)
    assert [c["id"] for c in nb["cells"]] == ["p", "c", "body"] and len(changes) == 3
    assert sync.source(nb["cells"][1]) == sync.CHECK_CELL and nb["cells"][1]["metadata"]["tags"] == sync.CHECK_TAGS
    assert sync.sync_check(nb) == []
    del nb["cells"][1]
    assert sync.sync_check(nb) == ["no parameter check after the parameters cell: added one"]
    added = nb["cells"][1]
    assert added["id"] == "check-parameters" and isinstance(added["source"], list)  # laid out like its neighbours


@pytest.mark.parametrize("name", list(book.find_notebooks(ROOT / "notebooks")))
def test_every_notebook_checks_its_parameters_right_after_the_parameters_cell(name):
    nb = book.read_notebook(ROOT / "notebooks" / f"{name}.ipynb")
    cell = nb.cells[book.parameters_cell_index(nb, name) + 1]
    assert cell.cell_type == "code" and cell.source.rstrip().endswith("check_parameters()"), \
        f"{name}: run python scripts/sync_notebooks.py"
    assert {"check-parameters", "hide-cell"} <= set(cell.metadata.get("tags", []))


def test_profiles_file_structure_is_checked(layout):
    layout.profiles_file.write_text("tinny:\n  smoke: {n: 1}\n")
    with pytest.raises(BookError, match="unknown notebook 'tinny'.*sub/other, tiny"):
        book.run("smoke", layout=layout, prepare_only=True)
    layout.profiles_file.write_text("tiny:\n  smok: {n: 1}\n")
    with pytest.raises(BookError, match="unknown profile 'smok'"):
        book.run("smoke", layout=layout, prepare_only=True)


def test_unknown_only_name_lists_the_valid_ones(layout, capsys):
    with pytest.raises(BookError, match=r"unknown notebook 'nope'.*valid names: sub/other, tiny"):
        book.run("smoke", layout=layout, only=["nope"], prepare_only=True)
    # the same through the command line: exit code 2 and the message on stderr
    code = book.main(["--profile", "smoke", "--only", "nope", "--prepare-only",
                      "--notebooks-dir", str(layout.notebooks_dir), "--book-dir", str(layout.book_dir),
                      "--build-dir", str(layout.build_dir)])
    assert code == 2
    assert "valid names: sub/other, tiny" in capsys.readouterr().err


# --- prepare-only (what make test feeds to nbval) -----------------------------------------------------------
def test_prepare_only_injects_parameters_without_executing(layout):
    results = book.run("smoke", layout=layout, prepare_only=True)
    assert {r.status for r in results} == {"prepared"}
    out = layout.build_dir / "smoke" / "tiny.ipynb"
    nb = nbformat.read(str(out), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "n = 1" in injected[0].source
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert (layout.build_dir / "smoke" / "sub" / "other.ipynb").is_file()
    assert not (layout.book_dir / "notebooks").exists()  # the book's folder is untouched


# --- execution and the cache -------------------------------------------------------------------------------
def test_cache_reuses_then_reexecutes_when_parameters_change(layout):
    first = book.run("smoke", layout=layout, only=["tiny"], build=False)
    out = layout.book_dir / "notebooks" / "tiny.ipynb"
    assert [r.status for r in first] == ["ran"]
    assert "x 0.5" in outputs_text(out)
    meta = json.loads(out.read_text())["metadata"]["faceedit_nb"]
    assert meta["profile"] == "smoke" and meta["parameters"] == {"n": 1, "scale": 0.5, "label": "x"}
    # the kernel ran in the output folder: files it writes land there, never in notebooks/
    assert (out.parent / "written.txt").read_text() == "x"
    assert not (layout.notebooks_dir / "written.txt").exists()

    stamp = out.stat().st_mtime_ns
    second = book.run("smoke", layout=layout, only=["tiny"], build=False)
    assert [r.status for r in second] == ["reused"]
    assert out.stat().st_mtime_ns == stamp  # not even rewritten

    layout.profiles_file.write_text("tiny:\n  smoke:\n    n: 1\n    label: changed\n")
    third = book.run("smoke", layout=layout, only=["tiny"], build=False)
    assert [r.status for r in third] == ["ran"]
    assert "changed 0.5" in outputs_text(out)

    # another profile is another hash
    assert [r.status for r in book.run("cpu", layout=layout, only=["tiny"], build=False)] == ["ran"]


def test_two_workers_run_chapters_at_the_same_time_and_keep_the_toc_order(layout):
    # each chapter writes when it started and ended; with 2 workers the two runs overlap in time
    body = ("import time, pathlib\nt0 = time.time()\ntime.sleep(3)\n"
            "pathlib.Path(f'span-{label}.txt').write_text(f'{t0} {time.time()}')\nprint(label)")
    make_notebook(layout.notebooks_dir / "tiny.ipynb", body=body)
    make_notebook(layout.notebooks_dir / "sub" / "other.ipynb", params="label = 'other'", body=body)
    omp = os.environ.get("OMP_NUM_THREADS")
    results = book.run("cpu", layout=layout, build=False, workers=2)
    assert [r.name for r in results] == list(book.find_notebooks(layout.notebooks_dir))  # the toc's order
    assert all(r.status == "ran" for r in results)
    out = layout.book_dir / "notebooks"
    (a0, a1), (b0, b1) = (map(float, (out / "sub" / "span-other.txt").read_text().split()),
                          map(float, (out / "span-x.txt").read_text().split()))
    assert a0 < b1 and b0 < a1  # the two chapters' runs overlapped
    assert os.environ.get("OMP_NUM_THREADS") == omp  # the kernels' thread count is not left behind
    # the second time both are reused, also with workers
    assert [r.status for r in book.run("cpu", layout=layout, build=False, workers=2)] == ["reused", "reused"]
    with pytest.raises(book.BookError, match="workers must be at least 1"):
        book.run("cpu", layout=layout, build=False, workers=0)


def test_prose_edits_are_refreshed_without_reexecution(layout):
    book.run("cpu", layout=layout, only=["tiny"], build=False)
    out = layout.book_dir / "notebooks" / "tiny.ipynb"
    src = layout.notebooks_dir / "tiny.ipynb"
    nb = nbformat.read(str(src), as_version=4)
    nb.cells[0].source = "# Tiny, retitled"
    nb.cells.append(new_markdown_cell("A closing remark."))
    nbformat.write(nb, str(src))
    res = book.run("cpu", layout=layout, only=["tiny"], build=False)
    assert [r.status for r in res] == ["reused"] and "prose refreshed" in res[0].detail
    executed = nbformat.read(str(out), as_version=4)
    assert executed.cells[0].source == "# Tiny, retitled"
    assert executed.cells[-1].source == "A closing remark."
    assert "x 1.5" in outputs_text(out)  # outputs kept


def test_code_edit_reexecutes(layout):
    book.run("cpu", layout=layout, only=["tiny"], build=False)
    make_notebook(layout.notebooks_dir / "tiny.ipynb", body="print('new code', n)")
    assert [r.status for r in book.run("cpu", layout=layout, only=["tiny"], build=False)] == ["ran"]
    assert "new code 3" in outputs_text(layout.book_dir / "notebooks" / "tiny.ipynb")


def test_package_code_is_part_of_the_hash(layout):
    pkg = layout.package_dir
    book.run("smoke", layout=layout, only=["sub/other"], build=False)
    assert [r.status for r in book.run("smoke", layout=layout, only=["sub/other"], build=False)] == ["reused"]
    (pkg / "unrelated.py").write_text("Y = 1\n")  # a module the notebook does not import: reused
    assert [r.status for r in book.run("smoke", layout=layout, only=["sub/other"], build=False)] == ["reused"]
    (pkg / "mod.py").write_text("X = 2\n")
    assert [r.status for r in book.run("smoke", layout=layout, only=["sub/other"], build=False)] == ["ran"]


def test_failed_execution_leaves_no_stale_output(layout):
    book.run("cpu", layout=layout, only=["tiny"], build=False)
    out = layout.book_dir / "notebooks" / "tiny.ipynb"
    assert out.is_file()
    make_notebook(layout.notebooks_dir / "tiny.ipynb", body="raise ValueError('on purpose')")
    with pytest.raises(BookError, match="1 notebook\\(s\\) failed: tiny"):
        book.run("cpu", layout=layout, only=["tiny"], build=False)
    assert not out.exists()
    failed = out.with_name("tiny.failed.ipynb")
    assert failed.is_file() and "on purpose" in failed.read_text()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary files


# --- the book --------------------------------------------------------------------------------------------
def test_toc_entries_are_checked_before_building(layout):
    layout.book_dir.mkdir()
    (layout.book_dir / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: notebooks/tiny\n      - file: notebooks/missing\n")
    (layout.book_dir / "intro.md").write_text("# Intro\n")
    assert book.toc_files(layout.book_dir) == ["intro", "notebooks/tiny", "notebooks/missing"]
    errors = book.check_book_inputs(layout, "cpu")
    assert any("notebooks/missing.ipynb does not exist" in e for e in errors)
    assert any("notebooks/tiny" in e and "has not been executed" in e for e in errors)


def copy_book_config(book_dir: Path) -> None:
    """The repository's book configuration (everything but its pages) into ``book_dir``."""
    book_dir.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "references.bib", "bibliography.md", "claims.md"):
        shutil.copy(ROOT / "book" / name, book_dir / name)
    for folder in ("_ext", "_static"):
        shutil.copytree(ROOT / "book" / folder, book_dir / folder, ignore=shutil.ignore_patterns("__pycache__"))


TABLE_BODY = ("from myst_nb import glue\nfrom faceedit_nb import viz\nglue('ratio', n * scale, display=False)\n"
              "glue('claims_json', '[{\"claim\": \"A above B\", \"paper\": \"+5\", \"ours\": \"+1 [-1, +3]\", "
              "\"detectable\": \"4\", \"verdict\": \"inconclusive\"}]', display=False)\n"
              "viz.markdown_table([('a', 1.5), ('b | c', 2.25)], ['name', 'value'])")


def test_book_builds_offline_with_the_real_config(layout):
    """The repository's _config.yml + a tiny toc build with -W: the Colab button opens the source, Markdown
    tables render as tables, maths comes from the build, the profile box, results.json and the claims
    page are there, and the HTML check finds nothing."""
    copy_book_config(layout.book_dir)
    make_notebook(layout.notebooks_dir / "tiny.ipynb", body=TABLE_BODY,
                  prose="# Tiny\n\nThe ratio is {glue:text}`ratio:.2f`; $x^2$.")
    (layout.book_dir / "intro.md").write_text("# Intro\n\nSee {cite:p}`choi2018stargan` and $x^2$.\n")
    (layout.book_dir / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: Foundations\n    chapters:\n"
        "      - file: notebooks/tiny\n      - file: notebooks/sub/other\n"
        "  - caption: Back matter\n    chapters:\n      - file: claims\n      - file: bibliography\n")
    book.run("smoke", layout=layout)
    html = layout.book_dir / "_build" / "html"
    page = (html / "notebooks" / "tiny.html").read_text()
    assert "https://colab.research.google.com/github/faceedit-nb/faceedit-nb/blob/main/notebooks/tiny.ipynb" in page
    assert "The ratio is 0.50" in re.sub(r"<[^>]+>", "", page)
    assert "Choi" in (html / "intro.html").read_text()
    # the table is a table (myst-nb's default CommonMark rendering shows it as pipe text)
    assert "<table" in page and "b | c" in page and "| name |" not in page
    # the profile box, and papermill's injected cell collapsed
    assert "faceedit-profile" in page and "<code class=\"docutils literal notranslate\"><span class=\"pre\">n</span>" in page
    executed = nbformat.read(str(layout.book_dir / "notebooks" / "tiny.ipynb"), as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "hide-cell" in injected[0].metadata["tags"]
    # MathJax from the build, not from a CDN
    assert "_static/mathjax/tex-mml-chtml.js" in page and "cdn.jsdelivr" not in page
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    # every glued value, per chapter
    results = json.loads((layout.book_dir / "_build" / "results.json").read_text())
    assert results["tiny"]["ratio"] == 0.5 and "sub/other" in results
    # the claims page, from the chapters' claims_json
    claims = (html / "claims.html").read_text()
    assert "A above B" in claims and "inconclusive" in claims and "tiny.html" in claims
    assert book.check_html(html) == []
    # second run: nothing executed again
    assert {r.status for r in book.run("smoke", layout=layout, build=False)} == {"reused"}


def test_strict_build_fails_on_what_a_reader_would_see(layout):
    """A missing glue key fails the build (a warning); a role in backticks (no warning) fails the check."""
    copy_book_config(layout.book_dir)
    (layout.book_dir / "intro.md").write_text("# Intro\n")
    (layout.book_dir / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/tiny\n  - file: claims\n")
    make_notebook(layout.notebooks_dir / "tiny.ipynb", body=TABLE_BODY,
                  prose="# Tiny\n\nA number: {glue:text}`no_such_key`.")
    with pytest.raises(BookError, match="jupyter-book build failed"):
        book.run("smoke", layout=layout)
    make_notebook(layout.notebooks_dir / "tiny.ipynb", body=TABLE_BODY,
                  prose="# Tiny\n\nA number: `{glue:text}ratio`.")
    with pytest.raises(BookError, match="problem"):
        book.run("smoke", layout=layout)
    problems = book.check_html(layout.book_dir / "_build" / "html")
    assert any("unresolved MyST role" in p and "{glue:text}ratio" in p for p in problems), problems
    # and with nothing wrong, no claims anywhere: the claims page still builds
    make_notebook(layout.notebooks_dir / "tiny.ipynb", prose="# Tiny\n")
    book.run("smoke", layout=layout)
    assert "No chapter has measured a claim yet" in (layout.book_dir / "_build" / "html" / "claims.html").read_text()


def test_command_line_entry_point(layout):
    proc = subprocess.run([sys.executable, "-m", "faceedit_nb.book", "--profile", "paper", "--prepare-only",
                           "--notebooks-dir", str(layout.notebooks_dir), "--book-dir", str(layout.book_dir),
                           "--build-dir", str(layout.build_dir)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "2 prepared" in proc.stdout
    nb = nbformat.read(str(layout.build_dir / "paper" / "tiny.ipynb"), as_version=4)
    assert any("label = \"paper\"" in c.source or "label = 'paper'" in c.source for c in nb.cells)


def test_package_fingerprint_covers_every_py_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "__pycache__").mkdir()
    for rel in ("a.py", "sub/b.py", "__pycache__/c.py", "notes.txt"):
        (tmp_path / rel).write_text(rel)
    assert [f for f, _ in book.package_fingerprint(tmp_path)] == ["a.py", "sub/b.py"]
    assert book.Layout().package_dir == ROOT / "faceedit_nb"
    assert "book.py" in [f for f, _ in book.package_fingerprint(ROOT / "faceedit_nb")]


def test_notebook_dependencies_follow_imports_transitively(tmp_path):
    pkg = tmp_path / "faceedit_nb"
    (pkg / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "a.py": "from .sub import b\n", "sub/__init__.py": "", "sub/b.py":
             "def f():\n    from ..c import g\n", "c.py": "", "d.py": "import faceedit_nb.e\n", "e.py": "",
             "unused.py": ""}
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    nb = new_notebook(cells=[new_code_cell("try:\n    import x\nexcept ImportError:\n    %pip install x"),
                             new_code_cell("from faceedit_nb import a\nimport faceedit_nb.d as d\n!ls")])
    deps = book.notebook_dependencies(nb, pkg)
    assert deps == ["__init__.py", "a.py", "c.py", "d.py", "e.py", "sub/__init__.py", "sub/b.py"]
    # a change to a module the notebook cannot reach leaves its execution hash alone
    full = book.package_fingerprint(pkg)
    used = [e for e in full if e[0] in deps]
    before = book.execution_hash(nb, {}, "cpu", used)
    (pkg / "unused.py").write_text("x = 1\n")
    assert book.execution_hash(nb, {}, "cpu", [e for e in book.package_fingerprint(pkg) if e[0] in deps]) == before
    (pkg / "c.py").write_text("y = 2\n")
    assert book.execution_hash(nb, {}, "cpu", [e for e in book.package_fingerprint(pkg) if e[0] in deps]) != before
    # a cell that does not parse: every file counts
    assert book.notebook_dependencies(new_notebook(cells=[new_code_cell("def (:")]), pkg) is None


def test_a_chapter_that_reads_results_runs_last_with_the_others_values(layout):
    # "leaderboard" sorts before "tiny", yet runs after it, reading the value tiny glued
    make_notebook(layout.notebooks_dir / "tiny.ipynb",
                  body="from myst_nb import glue\nglue('doubled', n * 2, display=False)")
    make_notebook(layout.notebooks_dir / "leaderboard.ipynb", params="results = ''",
                  body="import json\nvalues = json.load(open(results))\nprint('read', sorted(values), "
                       "values['tiny']['doubled'])")
    (layout.notebooks_dir / "sub" / "other.ipynb").unlink()
    layout.profiles_file.write_text("tiny:\n  smoke: {n: 1}\n")
    results = book.run("cpu", layout=layout, build=False, workers=2)
    assert [(r.name, r.status) for r in results] == [("leaderboard", "ran"), ("tiny", "ran")]  # toc order kept
    out = layout.book_dir / "notebooks"
    assert "read ['tiny'] 6" in outputs_text(out / "leaderboard.ipynb")  # n = 3 by default
    meta = json.loads((out / "leaderboard.ipynb").read_text())["metadata"]["faceedit_nb"]
    assert meta["parameters"]["results"] == str(out / book.CHAPTER_RESULTS)
    assert [r.status for r in book.run("cpu", layout=layout, build=False)] == ["reused", "reused"]
    # a change in another chapter's values re-runs the reader too
    layout.profiles_file.write_text("tiny:\n  cpu:\n    n: 5\n")
    again = book.run("cpu", layout=layout, build=False)
    assert [r.status for r in again] == ["ran", "ran"]
    assert "read ['tiny'] 10" in outputs_text(out / "leaderboard.ipynb")
    # only the reader: the values of the chapters executed before
    assert [r.status for r in book.run("cpu", layout=layout, build=False, only=["leaderboard"], force=True)] == ["ran"]
    assert "read ['tiny'] 10" in outputs_text(out / "leaderboard.ipynb")
    # prepared (nbval), not executed: its parameter stays the notebook's own
    prepared = book.run("cpu", layout=layout, prepare_only=True, out=layout.build_dir / "prep")
    assert [r.status for r in prepared] == ["prepared", "prepared"]
