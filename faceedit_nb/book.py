"""Execute the book's notebooks with papermill and build the HTML book with jupyter-book.

Usage::

    python -m faceedit_nb.book --profile cpu                  # execute every notebook, build book/_build/html
    python -m faceedit_nb.book --profile paper --only baselines/stargan --no-build
    python -m faceedit_nb.book --profile smoke --prepare-only # inject parameters only (for nbval)

How it works
------------
* **Notebooks.** Every ``*.ipynb`` under ``notebooks/`` (recursively, ``.ipynb_checkpoints`` skipped) is a
  chapter source. Its *name* is its path relative to ``notebooks/`` without ``.ipynb``
  (``synthfaces``, ``baselines/stargan``). Sources are stored without outputs.
* **Parameters.** Each notebook has exactly one code cell tagged ``parameters`` that holds literal
  assignments only (``image_size = 64``); derived values belong in the next cell. The profiles are:

  - ``smoke``: seconds per notebook, for tests (``make test`` runs them under nbval);
  - ``cpu``: the notebook's own defaults (what the book shows, minutes on a laptop CPU);
  - ``paper``: the papers' settings (a GPU and hours).

  ``notebooks/profiles.yml`` maps ``{notebook name: {smoke: {...}, cpu: {...}, paper: {...}}}``; every
  section is optional (``cpu:`` overrides are rarely needed). A parameter that the notebook does not
  declare, or a value whose type does not match the declared default, is an error, here before anything
  runs, and in the notebook itself when papermill is run by hand: the cell right after the parameters
  cell (written by ``scripts/sync_notebooks.py``) calls :func:`faceedit_nb.parameters.check_parameters`.
* **Execution.** papermill runs the notebook with ``kernel_name="python3"`` into
  ``book/notebooks/<name>.ipynb``. The kernel's working directory is the folder of that *output*
  notebook (``book/notebooks/...`` or ``build/<profile>/...``; nbval also starts kernels in the
  notebook's folder), so files a notebook writes with relative paths land beside its executed copy,
  never in ``notebooks/``, and the outputs of two profiles never clobber each other. Trained models
  go to the model cache (:mod:`faceedit_nb.cache`), whose location does not depend on the cwd.
* **Cache.** The executed notebook's metadata ``faceedit_nb.hash`` is a SHA-256 of the source's code
  cells, the parameters, the profile and every ``faceedit_nb`` file the notebook can run: the modules
  its cells import and, transitively, theirs (:func:`notebook_dependencies`; all files when a cell
  cannot be parsed). When the existing output
  has the same hash the notebook is not executed again; only its markdown cells and cell tags are
  refreshed from the source. Execution writes to a temporary file that is renamed into place on
  success; on failure the previous output is deleted (so the book cannot show stale results) and the
  failed notebook is kept as ``<name>.failed.ipynb`` for inspection.
* **What the reader sees.** Each executed notebook gets a box under its title with the profile and the
  settings it ran with (:func:`profile_box`), and papermill's injected-parameters cell is collapsed
  (:func:`decorate`; both are redone when the prose is refreshed).
* **Results.** Every glued value of every executed chapter goes to ``book/_build/results.json``
  (``{chapter: {name: value}}``, :func:`write_results`), and the chapters' ``claims_json`` glue
  (:func:`faceedit_nb.claims.glue_claims`) to ``book/_generated/claims.md``, which the claims overview page
  ``book/claims.md`` includes (:func:`write_claims_page`).
* **Book.** ``jupyter-book build book/ -W --keep-going`` (warnings are errors; their count is printed)
  after checking that every notebook in ``book/_toc.yml`` has been executed. ``_config.yml`` sets
  ``execute_notebooks: 'off'``: papermill has already executed everything. Then :func:`check_html` reads
  the pages for what a reader would see broken and no warning reports (a table shown as pipe text, a
  role left as text, a broken internal link or image, a script from the network): an error when strict.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Sequence

import nbformat
import yaml

from . import parameters as nb_parameters
from .progress import Monitor

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("smoke", "cpu", "paper")
KERNEL_NAME = "python3"
RUNNER_VERSION = 1  # bump to invalidate every executed notebook
# Chapters that read the other chapters' glued values (the leaderboard): executed after all the others, with
# their parameter ``results`` set to a file of those values; their execution hash includes the values.
READS_RESULTS = ("leaderboard",)
CHAPTER_RESULTS = ".chapter-results.json"  # that file, in the output folder beside the executed chapters
META_KEY = "faceedit_nb"
PROGRESS_EVERY = 30.0  # seconds between progress lines while a chapter runs (issue: at most 30)


class BookError(Exception):
    """A user-facing error of the runner (bad notebook, bad profiles.yml, unknown name...)."""


@dataclasses.dataclass
class Layout:
    """Where things are. Defaults are the repository's folders; tests point them at a tmp dir."""

    notebooks_dir: Path = REPO_ROOT / "notebooks"
    book_dir: Path = REPO_ROOT / "book"
    build_dir: Path = REPO_ROOT / "build"
    package_dir: Path = REPO_ROOT / "faceedit_nb"
    profiles_file: Path | None = None  # default: <notebooks_dir>/profiles.yml

    def __post_init__(self) -> None:
        for f in ("notebooks_dir", "book_dir", "build_dir", "package_dir"):
            setattr(self, f, Path(getattr(self, f)).resolve())
        self.profiles_file = (Path(self.profiles_file).resolve() if self.profiles_file is not None
                              else self.notebooks_dir / "profiles.yml")

    def output_dir(self, profile: str, prepare_only: bool) -> Path:
        """Default output folder: ``build/<profile>`` for prepared notebooks, else ``book/notebooks``."""
        return self.build_dir / profile if prepare_only else self.book_dir / "notebooks"


@dataclasses.dataclass
class Result:
    name: str
    status: str  # "ran" | "reused" | "prepared" | "failed"
    seconds: float
    output: Path
    detail: str = ""


# --- discovering notebooks and their parameters ----------------------------------------------------------
def find_notebooks(notebooks_dir: str | os.PathLike) -> dict[str, Path]:
    """``{name: path}`` of every source notebook, sorted by name."""
    root = Path(notebooks_dir)
    found = {}
    if root.is_dir():
        for path in root.rglob("*.ipynb"):
            rel = path.relative_to(root)
            if any(part == ".ipynb_checkpoints" or part.startswith(".") for part in rel.parts):
                continue
            found[rel.with_suffix("").as_posix()] = path
    return dict(sorted(found.items()))


def read_notebook(path: str | os.PathLike) -> nbformat.NotebookNode:
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # invalid JSON, not a notebook
        raise BookError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from exc


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def parameters_cell_index(nb: nbformat.NotebookNode, name: str) -> int:
    """Index of the one code cell tagged ``parameters``; an error unless there is exactly one."""
    hits = [i for i, c in enumerate(nb.cells) if "parameters" in _tags(c)]
    code_hits = [i for i in hits if nb.cells[i].cell_type == "code"]
    if len(hits) != 1 or len(code_hits) != 1:
        raise BookError(f"notebook {name!r}: needs exactly one code cell tagged 'parameters', "
                        f"found {len(code_hits)} code cell(s) and {len(hits) - len(code_hits)} other cell(s)")
    return code_hits[0]


def parse_parameters(source: str, name: str = "<cell>") -> dict[str, Any]:
    """The assignments of a parameters cell, ``{name: value}``; only literal assignments are allowed
    (:func:`faceedit_nb.parameters.parse_parameters`, which the notebooks' own check uses too)."""
    try:
        return nb_parameters.parse_parameters(source, name)
    except nb_parameters.ParameterError as exc:
        raise BookError(str(exc)) from exc


def declared_parameters(nb: nbformat.NotebookNode, name: str) -> dict[str, Any]:
    """The defaults declared in a notebook's parameters cell."""
    return parse_parameters(nb.cells[parameters_cell_index(nb, name)].source, name)


def load_profiles(path: str | os.PathLike | None, notebooks: Iterable[str]) -> dict[str, dict[str, dict]]:
    """Read and check the structure of profiles.yml (notebook names and profile names)."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise BookError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BookError(f"{path}: expected a mapping {{notebook: {{profile: {{parameter: value}}}}}}")
    valid = sorted(notebooks)
    out: dict[str, dict[str, dict]] = {}
    for nb_name, sections in data.items():
        if nb_name not in valid:
            raise BookError(f"{path}: unknown notebook {nb_name!r}; notebooks are: {', '.join(valid) or '(none)'}")
        sections = sections or {}
        if not isinstance(sections, dict):
            raise BookError(f"{path}: {nb_name}: expected a mapping of profiles {PROFILES}")
        out[nb_name] = {}
        for profile, params in sections.items():
            if profile not in PROFILES:
                raise BookError(f"{path}: {nb_name}: unknown profile {profile!r}; profiles are {', '.join(PROFILES)}")
            params = params or {}
            if not isinstance(params, dict):
                raise BookError(f"{path}: {nb_name}.{profile}: expected a mapping parameter: value")
            out[nb_name][profile] = params
    return out


_type_ok = nb_parameters.type_ok  # an int for a float, a tuple for a list; the default's type otherwise


def profile_overrides(name: str, declared: dict[str, Any], profiles: dict, profile: str) -> dict[str, Any]:
    """The parameters that ``profile`` injects into notebook ``name`` (checked against its declarations)."""
    if profile not in PROFILES:
        raise BookError(f"unknown profile {profile!r}; profiles are {', '.join(PROFILES)}")
    overrides = dict(profiles.get(name, {}).get(profile, {}))
    for key, value in overrides.items():
        if key not in declared:
            near = difflib.get_close_matches(key, list(declared), n=1)
            raise BookError(f"notebook {name!r}: profile {profile!r} sets parameter {key!r}, which the notebook "
                            f"does not declare" + (f" (did you mean {near[0]!r}?)" if near else "")
                            + f"; declared parameters: {', '.join(declared)}")
        if not _type_ok(declared[key], value):
            raise BookError(f"notebook {name!r}: profile {profile!r} sets {key} = {value!r} "
                            f"({type(value).__name__}) but the default is {declared[key]!r} "
                            f"({type(declared[key]).__name__})" + ("; in YAML write floats like 1.0e-4"
                                                                    if isinstance(declared[key], float) else "")
                            + f"; declared parameters: {', '.join(declared)}")
    return overrides


def lint_source(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """Problems of a *source* notebook: stored outputs or execution counts, a bad parameters cell."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"{name}: cell {i} stores outputs (strip them: python scripts/strip_notebooks.py)")
        if cell.get("execution_count") is not None:
            problems.append(f"{name}: cell {i} stores an execution count (python scripts/strip_notebooks.py)")
    try:
        declared_parameters(nb, name)
    except BookError as exc:
        problems.append(str(exc))
    return problems


# --- the execution cache ---------------------------------------------------------------------------------
def package_fingerprint(package_dir: str | os.PathLike) -> list[list[str]]:
    """``[[relative path, sha256]]`` of every ``*.py`` file of the package."""
    root = Path(package_dir)
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return [[p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()] for p in files]


def _module_file(root: Path, parts: Sequence[str]) -> Path | None:
    """The file of package module ``parts`` (relative to the package root), or None if there is none."""
    base = root.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def notebook_dependencies(nb: nbformat.NotebookNode, package_dir: str | os.PathLike) -> list[str] | None:
    """The package files a notebook's code can run: the ``faceedit_nb`` modules its cells import, their
    parent packages' ``__init__.py`` and, transitively, every module those files import (function-level
    imports included). Relative paths, sorted; None when a cell cannot be parsed (then every file counts)."""
    root = Path(package_dir)
    name = root.name
    files: set[Path] = set()
    todo: list[tuple[str, ...]] = []

    def want(parts: tuple[str, ...]) -> None:
        for k in range(len(parts) + 1):  # the package itself, each parent package, the module
            f = _module_file(root, parts[:k]) if k else root / "__init__.py"
            if f is not None and f.is_file() and f not in files:
                files.add(f)
                todo.append(parts[:k])

    def scan(tree: ast.AST, package: tuple[str, ...] | None) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    mod = alias.name.split(".")
                    if mod[0] == name:
                        want(tuple(mod[1:]))
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside the package
                    if package is None:
                        continue
                    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                    mod = base + tuple((node.module or "").split(".")) if node.module else base
                elif node.module and node.module.split(".")[0] == name:
                    mod = tuple(node.module.split(".")[1:])
                else:
                    continue
                mod = tuple(m for m in mod if m)
                want(mod)
                for alias in node.names:  # ``from pkg import module``
                    if _module_file(root, mod + (alias.name,)) is not None:
                        want(mod + (alias.name,))

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                        else line for line in cell.source.splitlines())  # IPython magics and shell escapes
        try:
            scan(ast.parse(src), None)
        except SyntaxError:
            return None
    while todo:
        parts = todo.pop()
        f = _module_file(root, parts) if parts else root / "__init__.py"
        is_pkg = f.name == "__init__.py"
        try:
            scan(ast.parse(f.read_text()), parts if is_pkg else parts[:-1])
        except SyntaxError:
            return None
    return sorted(p.relative_to(root).as_posix() for p in files)


def execution_hash(nb: nbformat.NotebookNode, parameters: dict[str, Any], profile: str,
                   package: list[list[str]], inputs: str = "") -> str:
    """Hash of everything an execution depends on: code cells, parameters, profile, package code, and the
    text of what it reads besides (``inputs``: the other chapters' values, for :data:`READS_RESULTS`)."""
    payload = {
        "runner": RUNNER_VERSION,
        "kernel": KERNEL_NAME,
        "profile": profile,
        "parameters": parameters,
        "code": [c.source for c in nb.cells if c.cell_type == "code"],
        "package": package,
        **({"inputs": inputs} if inputs else {}),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stored_meta(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()).get("metadata", {}).get(META_KEY, {}))
    except (OSError, ValueError, AttributeError):
        return {}


# --- what the runner adds to an executed notebook --------------------------------------------------------
GENERATED_TAG = "faceedit-nb-generated"  # cells the runner adds; removed and rebuilt on every refresh
PROFILE_WORDS = {
    "smoke": "a test run with tiny images and a few iterations: it shows that the chapter runs, and every "
             "number on this page is meaningless",
    "cpu": "the book's own settings: minutes on a laptop CPU, models trained once and cached",
    "paper": "the papers' settings (image size, iterations, batch size): hours on a GPU",
}


def _setting(name: str, value: Any) -> str:
    return f"`{name} = {value!r}`" if "`" not in repr(value) else f"{name} = {value!r}"


def profile_box(meta: dict[str, Any]) -> str:
    """The small box at the top of an executed chapter: the profile and the settings it ran with."""
    profile = meta.get("profile", "?")
    params = dict(sorted((meta.get("parameters") or {}).items()))  # sorted: stored metadata is key-sorted
    overrides = meta.get("overrides")
    if overrides is None:  # executed before the runner recorded them
        set_by_profile, defaults = [], list(params)
    else:
        set_by_profile = [k for k in params if k in overrides]
        defaults = [k for k in params if k not in overrides]
    parts = []
    if set_by_profile:
        parts.append(", ".join(_setting(k, params[k]) for k in set_by_profile)
                     + " (from `notebooks/profiles.yml`)")
    if defaults:
        parts.append(", ".join(_setting(k, params[k]) for k in defaults)
                     + (" (the notebook's defaults)" if set_by_profile or overrides is not None else ""))
    when = str(meta.get("executed", ""))[:16].replace("T", " ")
    seconds = meta.get("seconds")
    ran = f"Executed {when}" + (f" in {seconds:,.0f} s" if isinstance(seconds, (int, float)) else "") + "."
    return "\n".join([
        f":::{{admonition}} Profile `{profile}`",
        ":class: note faceedit-profile",
        f"This page was produced with the **{profile}** profile: {PROFILE_WORDS.get(profile, 'a custom profile')}. "
        f"Settings: {'; '.join(parts) or 'none'}. {ran} "
        f"Other profiles: `python -m faceedit_nb.book --profile cpu` (see *How to run it* in the introduction).",
        ":::",
    ])


def decorate(nb: nbformat.NotebookNode, meta: dict[str, Any] | None = None) -> nbformat.NotebookNode:
    """An executed notebook as the book shows it (idempotent): the profile box under the title, and
    papermill's injected-parameters cell collapsed (``hide-cell``). Returns a new notebook."""
    nb = copy.deepcopy(nb)
    meta = meta if meta is not None else dict(nb.metadata.get(META_KEY, {}))
    cells = [c for c in nb.cells if GENERATED_TAG not in _tags(c)]
    for cell in cells:
        tags = _tags(cell)
        if "injected-parameters" in tags and "hide-cell" not in tags:
            cell.setdefault("metadata", {})["tags"] = tags + ["hide-cell"]
    if meta.get("profile"):
        box = nbformat.v4.new_markdown_cell(profile_box(meta), metadata={"tags": [GENERATED_TAG]})
        box["id"] = "faceedit-nb-profile"
        title = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"
                      and c.source.lstrip().startswith("# ")), None)
        cells.insert(0 if title is None else title + 1, box)
    nb.cells = cells
    if nb.get("nbformat_minor", 5) < 5:  # cell ids exist from nbformat 4.5 on
        for cell in nb.cells:
            cell.pop("id", None)
    return nb


def refresh_prose(source: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """Copy markdown/raw cells and code-cell tags from the source into a reused executed notebook.

    The code cells are known to be the same (the hash says so); the executed copy keeps its outputs and
    papermill's injected-parameters cell. Returns the new notebook, or None if nothing changed.
    """
    kept = [c for c in executed.cells if GENERATED_TAG not in _tags(c)]
    executed_code = [c for c in kept if c.cell_type == "code" and "injected-parameters" not in _tags(c)]
    injected = [c for c in kept if "injected-parameters" in _tags(c)]
    if len(executed_code) != sum(c.cell_type == "code" for c in source.cells):
        return None
    cells, it = [], iter(executed_code)
    for cell in source.cells:
        if cell.cell_type == "code":
            out = next(it)
            out = copy.deepcopy(out)
            meta = {k: v for k, v in out.get("metadata", {}).items() if k in ("papermill", "execution")}
            meta.update(copy.deepcopy(cell.get("metadata", {})))
            out["metadata"] = nbformat.from_dict(meta)
            cells.append(out)
            if "parameters" in _tags(cell):
                cells.extend(copy.deepcopy(injected))
        else:
            cells.append(copy.deepcopy(cell))
    def key(cs):
        return [(c.cell_type, c.get("source"), sorted(_tags(c))) for c in cs]

    new = copy.deepcopy(executed)
    new.cells = cells
    new = decorate(new)
    if key(new.cells) == key(executed.cells):
        return None
    return new


def _atomic_write_nb(nb: nbformat.NotebookNode, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.writing-{os.getpid()}.ipynb")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, path)


# --- running ---------------------------------------------------------------------------------------------
def _short_error(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def execute_one(name: str, src: Path, dst: Path, overrides: dict[str, Any], profile: str, digest: str,
                parameters: dict[str, Any], *, timeout: int | None = None, monitor: bool = True) -> Result:
    """Execute ``src`` into ``dst`` with papermill (cwd = ``dst``'s folder), atomically. ``monitor``: print
    its progress (off when the caller monitors several chapters at once: the progress folder is process-wide)."""
    import papermill as pm

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.running-{os.getpid()}.ipynb")
    failed = dst.with_name(f"{dst.stem}.failed.ipynb")
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        try:
            # the kernel (and the training processes it starts) report progress; a line at most every 30 s
            with contextlib.ExitStack() as stack:
                if monitor:
                    progress_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="faceedit-progress-"))
                    stack.enter_context(Monitor(progress_dir, every=PROGRESS_EVERY, label="  ", heartbeat=name))
                pm.execute_notebook(str(src), str(tmp), parameters=overrides, kernel_name=KERNEL_NAME,
                                    cwd=str(dst.parent), progress_bar=False, log_output=False,
                                    execution_timeout=timeout)
        except Exception as exc:
            seconds = time.perf_counter() - start
            dst.unlink(missing_ok=True)  # no stale "good" output survives a failed run
            if tmp.exists():
                os.replace(tmp, failed)
            return Result(name, "failed", seconds, failed, _short_error(exc))
        seconds = time.perf_counter() - start
        nb = nbformat.read(str(tmp), as_version=4)
        nb.metadata[META_KEY] = {
            "hash": digest, "profile": profile, "parameters": parameters,
            "overrides": overrides, "executed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(seconds, 2),
        }
        nbformat.write(decorate(nb), str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)  # interrupted: leave nothing half-written behind
    return Result(name, "ran", seconds, dst)


def prepare_one(name: str, src: Path, dst: Path, overrides: dict[str, Any]) -> Result:
    """Inject the parameters only (papermill ``prepare_only=True``)."""
    import papermill as pm

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.preparing-{os.getpid()}.ipynb")
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(tmp), parameters=overrides, kernel_name=KERNEL_NAME,
                            prepare_only=True, progress_bar=False, log_output=False)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return Result(name, "prepared", time.perf_counter() - start, dst)


def toc_files(book_dir: str | os.PathLike) -> list[str]:
    """Every ``root``/``file`` entry of ``_toc.yml``, in order."""
    toc_path = Path(book_dir) / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text()) or {}
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    return files


def _strip_ext(entry: str) -> str:
    for ext in (".ipynb", ".md", ".rst"):
        if entry.endswith(ext):
            return entry[: -len(ext)]
    return entry


def check_book_inputs(layout: Layout, profile: str) -> list[str]:
    """Errors that would break the build: toc entries with no page. Prints notebooks of other profiles."""
    errors, notebooks = [], find_notebooks(layout.notebooks_dir)
    for entry in toc_files(layout.book_dir):
        entry = _strip_ext(entry)
        if entry.startswith("notebooks/"):
            name = entry[len("notebooks/"):]
            executed = layout.book_dir / f"{entry}.ipynb"
            if name not in notebooks:
                errors.append(f"_toc.yml lists {entry}, but notebooks/{name}.ipynb does not exist")
            elif not executed.is_file():
                errors.append(f"_toc.yml lists {entry}, but {executed} has not been executed "
                              f"(run `python -m faceedit_nb.book --profile {profile}` without --only)")
            else:
                other = _stored_meta(executed).get("profile")
                if other != profile:
                    print(f"note: {executed.relative_to(layout.book_dir)} was executed with profile {other!r}, "
                          f"not {profile!r}")
        elif not any((layout.book_dir / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb", ".rst")):
            errors.append(f"_toc.yml lists {entry}, but there is no {entry}.md in {layout.book_dir}")
    return errors


# --- results: every glued value of every chapter ---------------------------------------------------------
_WRAPPED = re.compile(r"^(?:np|numpy|torch)?\.?(?:float\d*|int\d*|bool_?|str_|tensor)\((.*?)(?:, dtype=[\w.]+)?\)$",
                      re.S)


def _glue_value(data: dict[str, Any], prefix: str) -> Any:
    """A glued output's value: numbers and strings as such, a Markdown table as its text."""
    if f"{prefix}text/markdown" in data:
        return data[f"{prefix}text/markdown"]
    text = data.get(f"{prefix}text/plain")
    if text is None:
        return None  # a figure: nothing to compare
    text = "".join(text) if isinstance(text, list) else str(text)
    for candidate in (text, *(m.group(1) for m in [_WRAPPED.match(text.strip())] if m)):
        try:
            value = ast.literal_eval(candidate.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if text.strip() in ("nan", "inf", "-inf"):
        return None
    return text


def glued_values(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """``{name: value}`` of every ``myst_nb.glue`` in an executed notebook (figures left out)."""
    values: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            scrap = out.get("metadata", {}).get("scrapbook")
            if not scrap or "name" not in scrap:
                continue
            value = _glue_value(out.get("data", {}), scrap.get("mime_prefix", ""))
            if value is not None or scrap["name"] not in values:
                values[scrap["name"]] = value
    return {k: v for k, v in values.items() if v is not None}


def _executed(notebooks_dir: Path, order: Sequence[str] = ()) -> list[tuple[str, Path]]:
    """``(name, executed notebook)`` of every executed chapter in ``notebooks_dir``, ``order`` first (in its
    order), then the rest by name; failed and running copies ignored."""
    found = {p.relative_to(notebooks_dir).with_suffix("").as_posix(): p
             for p in sorted(notebooks_dir.rglob("*.ipynb"))
             if not p.name.startswith(".") and not p.name.endswith(".failed.ipynb")} if notebooks_dir.is_dir() else {}
    names = [n for n in order if n in found] + sorted(n for n in found if n not in order)
    return [(n, found[n]) for n in names]


def _chapters(layout: Layout) -> list[tuple[str, Path]]:
    """``(name, executed notebook)`` of every executed chapter in the book's folder, in toc order."""
    order = [e[len("notebooks/"):] for e in map(_strip_ext, toc_files(layout.book_dir))
             if e.startswith("notebooks/")] if (layout.book_dir / "_toc.yml").is_file() else []
    return _executed(layout.book_dir / "notebooks", order)


def chapter_results(notebooks_dir: Path, *, order: Sequence[str] = (), exclude: Sequence[str] = ()) -> dict:
    """``{chapter: {glue name: value}}`` of the executed chapters in ``notebooks_dir`` (:func:`_executed`'s
    order; ``exclude`` left out)."""
    return {n: glued_values(read_notebook(p)) for n, p in _executed(Path(notebooks_dir), order) if n not in exclude}


def write_chapter_results(values: dict, path: Path) -> str:
    """Write ``values`` (:func:`chapter_results`, chapters in their order) to ``path`` atomically; returns the
    text written."""
    text = json.dumps(values, indent=1, ensure_ascii=False, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return text


def write_results(layout: Layout) -> Path:
    """``book/_build/results.json``: ``{chapter: {glue name: value}}`` of every executed chapter."""
    out = layout.book_dir / "_build" / "results.json"
    write_chapter_results({name: glued_values(read_notebook(path)) for name, path in _chapters(layout)}, out)
    return out


# --- the claims overview page --------------------------------------------------------------------------
CLAIMS_FRAGMENT = Path("_generated") / "claims.md"  # included by book/claims.md
VERDICT_ORDER = ("reproduced", "contradicted", "inconclusive", "not testable here")


def _cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def chapter_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


def claims_fragment(chapters: Sequence[tuple[str, str, list[dict]]]) -> str:
    """The generated part of the claims page from ``(name, title, claims records)`` per chapter."""
    with_claims = [(n, t, c) for n, t, c in chapters if c]
    if not with_claims:
        return ("No chapter has measured a claim yet: the list grows as each paper's series lands in the "
                "book.\n")
    counts = {v: sum(r.get("verdict") == v for _, _, c in with_claims for r in c) for v in VERDICT_ORDER}
    lines = ["| chapter | claims | " + " | ".join(VERDICT_ORDER) + " |", "|---|---|" + "---|" * len(VERDICT_ORDER)]
    for name, title, claims in with_claims:
        row = [f"{{doc}}`{title} </notebooks/{name}>`", str(len(claims))]
        row += [str(sum(r.get("verdict") == v for r in claims)) for v in VERDICT_ORDER]
        lines.append("| " + " | ".join(row) + " |")
    lines.append(f"| **all chapters** | **{sum(len(c) for _, _, c in with_claims)}** | "
                 + " | ".join(f"**{counts[v]}**" for v in VERDICT_ORDER) + " |")
    out = ["## Verdicts per chapter", "", *lines, ""]
    for name, title, claims in with_claims:
        out += [f"## {title}", "", f"From {{doc}}`/notebooks/{name}`:", "",
                "| claim | paper's figure | ours (95 % interval) | detectable effect | verdict |",
                "|---|---|---|---|---|"]
        for r in claims:
            verdict = r.get("verdict_text") or r.get("verdict", "")
            if verdict.startswith(r.get("verdict", "")):  # "inconclusive (why)": **inconclusive**: why
                rest = verdict[len(r.get("verdict", "")):].strip(" :")
                if rest.startswith("(") and rest.endswith(")"):
                    verdict = f"{r.get('verdict', '')}: {rest[1:-1]}"
            out.append("| " + " | ".join(_cell(r.get(k, "–")) for k in ("claim", "paper", "ours", "detectable"))
                       + f" | **{_cell(r.get('verdict', '?'))}**"
                       + (f": {_cell(verdict[len(r.get('verdict', '')):].lstrip(' :'))}"
                          if verdict.startswith(r.get("verdict", "")) and len(verdict) > len(r.get("verdict", ""))
                          else "") + " |")
        out.append("")
    return "\n".join(out)


def write_claims_page(layout: Layout) -> Path:
    """Write the generated part of the claims overview page from the chapters' ``claims_json`` glue."""
    chapters = []
    for name, path in _chapters(layout):
        nb = read_notebook(path)
        raw = glued_values(nb).get("claims_json")
        try:
            records = json.loads(raw) if isinstance(raw, str) else []
        except ValueError as exc:
            raise BookError(f"{name}: its claims_json glue is not JSON ({exc})") from exc
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise BookError(f"{name}: claims_json must be a list of records (faceedit_nb.claims.glue_claims)")
        chapters.append((name, chapter_title(nb, name), records))
    out = layout.book_dir / CLAIMS_FRAGMENT
    out.parent.mkdir(parents=True, exist_ok=True)
    text = ("<!-- Generated by `python -m faceedit_nb.book` from the chapters' claims_json glue; "
            "do not edit. -->\n\n" + claims_fragment(chapters))
    if not out.is_file() or out.read_text() != text:
        out.write_text(text)
    return out


# --- checking the built HTML -----------------------------------------------------------------------------
_ROLE = re.compile(r"\{(?:glue|cite|doc|ref|numref|eq|term|download|math)(?::[a-z-]+)?\}")


def check_html(html_dir: str | os.PathLike, pages: Iterable[str] | None = None) -> list[str]:
    """What a reader would see broken in the built book: raw Markdown tables (a paragraph of ``|`` text),
    MyST roles left as text (``{glue:text}`` ...), internal links to missing pages or anchors, missing
    images, and scripts or styles loaded from the network. ``pages``: paths relative to ``html_dir``
    (default: every page except Sphinx's own)."""
    from bs4 import BeautifulSoup

    root = Path(html_dir)
    if pages is None:
        pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                       if not p.relative_to(root).parts[0].startswith("_") and p.name not in ("genindex.html",
                                                                                               "search.html"))
    problems: list[str] = []
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            soup = BeautifulSoup(path.read_text(errors="replace"), "html.parser")
            ids[path] = {t["id"] for t in soup.find_all(id=True)} | {t["name"] for t in soup.find_all("a", attrs={"name": True})}
        return ids[path]

    for rel in pages:
        path = root / rel
        soup = BeautifulSoup(path.read_text(errors="replace"), "html.parser")
        article = soup.find("article") or soup.body or soup
        for p in article.find_all("p"):
            text = p.get_text(" ", strip=True)
            if text.startswith("|") and text.count("|") >= 3:
                problems.append(f"{rel}: a Markdown table shown as text: {text[:80]!r}")
        for tag, attr in (("a", "href"), ("img", "src"), ("script", "src"), ("link", "href")):
            for el in soup.find_all(tag):
                url = el.get(attr)
                if not url or url.startswith(("mailto:", "data:", "javascript:")):
                    continue
                if re.match(r"^[a-z][a-z0-9+.-]*:|^//", url, re.I):
                    badge = tag == "img" and el.find_parent("a", href=re.compile(r"^https?:")) is not None
                    if (tag in ("script", "img") and not badge) or (tag == "link" and "stylesheet" in (el.get("rel") or [])):
                        problems.append(f"{rel}: <{tag}> loads {url} from the network")
                    continue  # a link out, or a badge on one: the network is needed to follow it anyway
                target, _, fragment = url.partition("#")
                target = target.partition("?")[0]
                dest = (path.parent / target).resolve() if target else path
                if target and not dest.exists():
                    what = "image" if tag == "img" else "link" if tag == "a" else tag
                    problems.append(f"{rel}: broken {what} {url}")
                elif tag == "a" and fragment and dest.suffix == ".html" and fragment not in anchors(dest):
                    problems.append(f"{rel}: link to a missing anchor {url}")
        for pre in article.find_all(["pre", "script", "style"]):
            pre.extract()
        for m in _ROLE.finditer(article.get_text(" ")):
            context = article.get_text(" ")[max(0, m.start() - 30): m.end() + 30].replace("\n", " ")
            problems.append(f"{rel}: an unresolved MyST role: ...{context}...")
    return problems


@dataclasses.dataclass
class BuildReport:
    seconds: float
    warnings: list[str]


def build_book(book_dir: str | os.PathLike, *, strict: bool = True, quiet: bool = False) -> BuildReport:
    """``jupyter-book build <book_dir>`` (``-W --keep-going`` when strict). Its output is echoed and its
    warnings (and errors) collected; raises BookError when the build fails."""
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(book_dir),
           "--builder", "html"]
    if strict:
        cmd += ["-W", "--keep-going"]
    if quiet:
        cmd += ["-q"]
    start = time.perf_counter()
    warnings: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            if re.search(r"\b(WARNING|ERROR|CRITICAL|SEVERE):", line):
                warnings.append(line.strip())
    sys.stdout.flush()
    print(f"jupyter-book build: warnings: {len(warnings)}", flush=True)
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}, {len(warnings)} warning(s)); see the "
                        "messages above" + (" (warnings are errors: -W)" if strict else ""))
    return BuildReport(time.perf_counter() - start, warnings)


def _prune(out_dir: Path, keep: set[Path]) -> None:
    """Remove executed notebooks whose source no longer exists (default output folders only)."""
    if not out_dir.is_dir():
        return
    for path in out_dir.rglob("*.ipynb"):
        if path.name.endswith(".failed.ipynb") and path.with_name(path.name.replace(".failed", "")) in keep:
            continue
        if path not in keep:
            print(f"removing stale {path}")
            path.unlink()


def _report(res: Result) -> None:
    shown = f"{res.seconds:6.1f} s" if res.status != "reused" else "   cache"
    print(f"  {res.status:8s} {shown}  {res.name}" + (f"  ({res.detail})" if res.detail else ""), flush=True)
    if res.status == "failed":
        print(f"           failed notebook kept at {res.output}", flush=True)


def _plan_one(plan: tuple, dst: Path, profile: str, package: list, layout: Layout, *, prepare_only: bool,
              force: bool, timeout: int | None, inputs: str = ""):
    """What running one notebook takes: a finished :class:`Result` (prepared, or reused from the cache of
    executed chapters) or a function that executes it."""
    name, src, nb, declared, overrides = plan
    if prepare_only:
        return prepare_one(name, src, dst, overrides)
    parameters = {**declared, **overrides}
    deps = notebook_dependencies(nb, layout.package_dir)
    used = package if deps is None else [entry for entry in package if entry[0] in deps]
    digest = execution_hash(nb, parameters, profile, used, inputs)
    stored = _stored_meta(dst) if dst.is_file() else {}
    if not force and stored.get("hash") == digest:
        detail = f"executed {stored.get('executed', '?')} in {stored.get('seconds', '?')} s"
        try:
            refreshed = refresh_prose(nb, read_notebook(dst))
        except BookError:
            refreshed = None
        if refreshed is not None:
            _atomic_write_nb(refreshed, dst)
            detail += ", prose refreshed"
        return Result(name, "reused", 0.0, dst, detail)
    if not overrides and profile != "cpu":
        print(f"note: {name} has no {profile!r} parameters in profiles.yml: using its defaults")
    return functools.partial(_execute_chapter, name, src, dst, overrides, profile, digest, parameters,
                             timeout=timeout)


def _execute_chapter(name: str, *args, monitor: bool = True, **kw) -> Result:
    print(f"running {name} ...", flush=True)
    return execute_one(name, *args, monitor=monitor, **kw)


def _run_jobs(jobs: list, workers: int) -> list[Result]:
    """The results of ``jobs`` (a Result, or a function returning one) in their order, executing up to
    ``workers`` at once (in processes: papermill changes the process's working folder to start a kernel);
    each is reported as it finishes."""
    results: list[Result | None] = [job if isinstance(job, Result) else None for job in jobs]
    for res in results:
        if res is not None:
            _report(res)
    pending = [(k, job) for k, job in enumerate(jobs) if not isinstance(job, Result)]
    if workers == 1 or len(pending) < 2:
        for k, job in pending:
            results[k] = job()
            _report(results[k])
        return results
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads is None:  # the kernels inherit it: no more threads than cores in all
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    try:
        return _run_parallel(pending, results, workers)
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def _run_parallel(pending: list, results: list, workers: int) -> list[Result]:
    """``_run_jobs``' pending jobs, ``workers`` at a time, each in a process of its own (which starts the
    chapter's kernel); one monitor prints the progress of all of them."""
    import multiprocessing
    with tempfile.TemporaryDirectory(prefix="faceedit-progress-") as progress_dir:
        futures: dict = {}

        def running() -> str:
            return ", ".join(sorted(pending[k][1].args[0] for f, k in futures.items() if f.running()))

        # the progress folder reaches the workers and their kernels through the environment, set by the monitor
        with Monitor(progress_dir, every=PROGRESS_EVERY, label="  ", heartbeat=running), \
                ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures.update({pool.submit(job, monitor=False): j for j, (_, job) in enumerate(pending)})
            for future in as_completed(futures):
                k = pending[futures[future]][0]
                results[k] = future.result()
                _report(results[k])
    return results


def _execute(plans: list, out_dir: Path, profile: str, package: list, layout: Layout, *, order: list[str],
             prepare_only: bool, force: bool, timeout: int | None, workers: int) -> list[Result]:
    """Run (or prepare) ``plans``: every chapter but :data:`READS_RESULTS` first, then those, given the others'
    glued values (none when a chapter failed: the run stops there). Results in the plans' order."""
    def plan(p, **kw):
        return _plan_one(p, out_dir / f"{p[0]}.ipynb", profile, package, layout, prepare_only=prepare_only,
                         force=force, timeout=timeout, **kw)

    first = [p for p in plans if p[0] not in READS_RESULTS]
    results = _run_jobs([plan(p) for p in first], workers)
    last = [p for p in plans if p[0] in READS_RESULTS]
    if last and prepare_only:
        results += _run_jobs([plan(p) for p in last], workers)
    elif last and not any(r.status == "failed" for r in results):
        values = chapter_results(out_dir, order=order, exclude=READS_RESULTS)
        inputs = write_chapter_results(values, out_dir / CHAPTER_RESULTS)
        last = [(n, src, nb, declared, {**overrides, "results": str(out_dir / CHAPTER_RESULTS)})
                for n, src, nb, declared, overrides in last]
        results += _run_jobs([plan(p, inputs=inputs) for p in last], workers)
    place = {p[0]: k for k, p in enumerate(plans)}
    return sorted(results, key=lambda r: place[r.name])  # the toc's order, whatever ran first


def run(profile: str, *, only: list[str] | None = None, prepare_only: bool = False,
        out: str | os.PathLike | None = None, build: bool = True, layout: Layout | None = None,
        force: bool = False, timeout: int | None = None, strict: bool = True, workers: int = 1) -> list[Result]:
    """Execute (or prepare) the notebooks for ``profile``, then build the book. Raises BookError.

    ``workers``: chapters executed at once, each in its own kernel (the machine's cores; a chapter's torch
    threads are its ``threads`` parameter, else ``OMP_NUM_THREADS``, set here to cores / workers when unset).
    Results and the book keep the table of contents' order whatever order the chapters finish in."""
    if workers < 1:
        raise BookError(f"workers must be at least 1; got {workers}")
    layout = layout or Layout()
    if profile not in PROFILES:
        raise BookError(f"unknown profile {profile!r}; profiles are {', '.join(PROFILES)}")
    notebooks = find_notebooks(layout.notebooks_dir)
    if only:
        unknown = [n for n in only if n not in notebooks]
        if unknown:
            raise BookError(f"unknown notebook {', '.join(map(repr, unknown))} for --only; valid names: "
                            f"{', '.join(notebooks) or '(none: ' + str(layout.notebooks_dir) + ' has no notebooks)'}")
    selected = {n: notebooks[n] for n in (only or notebooks)}
    profiles = load_profiles(layout.profiles_file, notebooks)

    # Check every selected notebook before running any.
    plans = []
    for name, src in selected.items():
        nb = read_notebook(src)
        declared = declared_parameters(nb, name)
        overrides = profile_overrides(name, declared, profiles, profile)
        plans.append((name, src, nb, declared, overrides))

    default_out = out is None
    out_dir = Path(out).resolve() if out is not None else layout.output_dir(profile, prepare_only)
    if out is not None and not prepare_only and build:
        print(f"note: --out {out_dir} is not the book's folder; not building the book")
        build = False
    package = package_fingerprint(layout.package_dir)
    verb = "preparing" if prepare_only else "executing"
    print(f"{verb} {len(plans)} notebook(s) with profile {profile!r} into {out_dir}")

    total_start = time.perf_counter()
    results = _execute(plans, out_dir, profile, package, layout, order=list(notebooks), prepare_only=prepare_only,
                       force=force, timeout=timeout, workers=workers)

    if default_out and not only:
        _prune(out_dir, {out_dir / f"{n}.ipynb" for n in notebooks})
    counts = {s: sum(r.status == s for r in results) for s in ("ran", "reused", "prepared", "failed")}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "nothing to do"
    print(f"notebooks: {summary} in {time.perf_counter() - total_start:.1f} s")

    failed = [r.name for r in results if r.status == "failed"]
    if failed:
        raise BookError(f"{len(failed)} notebook(s) failed: {', '.join(failed)}; the book was not built")
    if default_out and not prepare_only:
        print(f"glued values of every chapter: {write_results(layout)}")
        write_claims_page(layout)
    if build and not prepare_only:
        errors = check_book_inputs(layout, profile)
        if errors:
            raise BookError("cannot build the book:\n  " + "\n  ".join(errors))
        report = build_book(layout.book_dir, strict=strict)
        html = layout.book_dir / "_build" / "html"
        problems = check_html(html)
        for problem in problems:
            print(f"check: {problem}")
        print(f"book built in {report.seconds:.1f} s: {html / 'index.html'} ({len(report.warnings)} warnings, "
              f"{len(problems)} problems in the HTML)")
        if problems and strict:
            raise BookError(f"the built book has {len(problems)} problem(s) a reader would see; see 'check:' above")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faceedit_nb.book", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, required=True, help="parameter set (see notebooks/profiles.yml)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this notebook (path under notebooks/ without .ipynb); repeatable")
    parser.add_argument("--prepare-only", action="store_true",
                        help="inject parameters without executing (into --out, default build/<profile>/)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default book/notebooks, or build/<profile> "
                                                     "with --prepare-only)")
    parser.add_argument("--no-build", action="store_true", help="execute only; do not run jupyter-book")
    parser.add_argument("--force", action="store_true", help="execute even when the cached output is current")
    parser.add_argument("--timeout", type=int, default=None, metavar="S", help="per-cell timeout in seconds")
    parser.add_argument("--no-strict", action="store_true", help="build without -W (warnings not errors)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="chapters executed at once, each in its own kernel (default 1; make book: 2)")
    parser.add_argument("--dry-run", action="store_true",
                        help="execute nothing: build every model the chapters train at --profile, run two training "
                             "iterations and one evaluation batch of each on this machine, and print what the whole "
                             "runs would cost on a GPU (faceedit_nb.dryrun; --only NAME: models whose label holds NAME)")
    parser.add_argument("--notebooks-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--book-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--build-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--profiles-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dry_run:
        from . import dryrun
        return dryrun.main(["--profile", args.profile] + [a for name in args.only or [] for a in ("--only", name)])

    kw = {k: v for k, v in {"notebooks_dir": args.notebooks_dir, "book_dir": args.book_dir,
                            "build_dir": args.build_dir, "profiles_file": args.profiles_file}.items() if v}
    try:
        run(args.profile, only=args.only, prepare_only=args.prepare_only, out=args.out,
            build=not args.no_build, layout=Layout(**kw), force=args.force, timeout=args.timeout,
            strict=not args.no_strict, workers=args.workers)
    except BookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
