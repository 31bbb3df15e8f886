"""A notebook's parameters: what its ``parameters`` cell declares, and what may be set from outside.

Every notebook has one code cell tagged ``parameters`` holding literal assignments only (``size = 64``).
papermill (``papermill nb.ipynb out.ipynb -p size 128``) and the book's runner (``python -m
faceedit_nb.book``, from ``notebooks/profiles.yml``) set them by inserting an ``injected-parameters`` cell
right after it. papermill itself accepts any name and any value there: ``-p sizee 32`` ran the notebook at
the default size (papermill only logs "Passed unknown parameter"), and ``-p n_test abc`` failed somewhere
far away, or not at all.

So the cell right after the parameters cell (written by ``scripts/sync_notebooks.py``) calls
:func:`check_parameters`. It reads the parameters cell and papermill's cell from the kernel's input history
(papermill runs them just before it) and stops the notebook on a name the parameters cell does not declare,
or on a value whose type differs from the declared default, listing the valid parameters. The runner makes
the same checks before it runs anything (:func:`faceedit_nb.book.profile_overrides`).

Types: the value must have the default's type, except that an int is fine for a float, a tuple for a list
(and the reverse), and anything goes where the default is ``None``; ``True`` is no int.

Standard library only: the check runs wherever the notebooks run (Colab, a fresh environment).
"""
from __future__ import annotations

import ast
import difflib
from typing import Any, Mapping, Sequence

__all__ = ["ParameterError", "parse_parameters", "type_ok", "parameter_problems", "check_given",
           "check_parameters", "INJECTED_MARKER"]

INJECTED_MARKER = "# Parameters"  # the first line of papermill's injected-parameters cell (Python kernels)
PAPERMILL_HINT = ("papermill -p reads numbers, booleans and None, anything else as a string; -r passes a raw "
                  "string, -y YAML (lists: -y 'name: [1, 2]')")


class ParameterError(ValueError):
    """A parameter that the notebook does not declare, one of the wrong type, or a bad parameters cell."""


def parse_parameters(source: str, name: str = "<cell>") -> dict[str, Any]:
    """The assignments of a parameters cell, ``{name: value}``; only literal assignments are allowed."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"notebook {name!r}: parameters cell is not plain Python ({exc.msg}, line "
                             f"{exc.lineno}); magics and shell escapes do not belong there") from exc
    params: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # a docstring-like comment
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None and node.simple:
            targets, value = [node.target], node.value
        else:
            raise ParameterError(f"notebook {name!r}: parameters cell line {node.lineno}: only literal assignments "
                                 f"(`x = 1`) are allowed, found `{ast.unparse(node)}`")
        if not all(isinstance(t, ast.Name) for t in targets):
            raise ParameterError(f"notebook {name!r}: parameters cell line {node.lineno}: assign to plain names only")
        try:
            literal = ast.literal_eval(value)
        except ValueError as exc:
            raise ParameterError(f"notebook {name!r}: parameter {targets[0].id} = {ast.unparse(value)} is not a "
                                 "literal; keep the parameters cell literal and derive values in the next cell"
                                 ) from exc
        for t in targets:
            params[t.id] = literal
    if not params:
        raise ParameterError(f"notebook {name!r}: the parameters cell declares no parameter")
    return params


def type_ok(default: Any, value: Any) -> bool:
    """Whether ``value`` may replace the declared ``default`` (see the module docstring)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def parameter_problems(declared: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """One phrase per parameter in ``given`` that ``declared`` does not allow: an unknown name (with the
    nearest declared one, if any is close) or a value whose type differs from the default's."""
    out = []
    for key, value in given.items():
        if key not in declared:
            near = difflib.get_close_matches(key, list(declared), n=1)
            out.append(f"{key!r} is not a parameter of this notebook"
                       + (f" (did you mean {near[0]!r}?)" if near else ""))
        elif not type_ok(declared[key], value):
            out.append(f"{key} = {value!r} is {_a(type(value).__name__)}, but the notebook declares {key} = "
                       f"{declared[key]!r}, {_a(type(declared[key]).__name__)}")
    return out


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def check_given(declared: Mapping[str, Any], given: Mapping[str, Any], *, who: str = "papermill") -> None:
    """A :class:`ParameterError` listing every parameter of ``given`` that ``declared`` does not allow, and
    the declared parameters with their defaults."""
    problems = parameter_problems(declared, given)
    if problems:
        valid = ", ".join(f"{k} = {v!r}" for k, v in declared.items())
        raise ParameterError(f"{who} set {'a parameter' if len(problems) == 1 else 'parameters'} this notebook "
                             f"does not accept: {'; '.join(problems)}. Its parameters (the defaults of its "
                             f"parameters cell): {valid}. ({PAPERMILL_HINT})")


def _assigned(source: str) -> dict[str, Any]:
    """``{name: value or None}`` of the assignments in papermill's cell (values when they are literals)."""
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = None
            out.update({t.id: value for t in node.targets if isinstance(t, ast.Name)})
    return out


def check_parameters(namespace: Mapping[str, Any] | None = None, *, history: Sequence[str] | None = None) -> None:
    """Stop the notebook if papermill set a parameter its parameters cell does not declare, or a value of the
    wrong type. Call it in the cell right after the parameters cell.

    ``history``: the sources of the cells run so far, the current one last (default: the kernel's ``In``);
    when the one before the current cell is papermill's injected-parameters cell, the one before that is
    the parameters cell. Without such a cell (run by hand, or nothing injected) there is nothing to check.
    ``namespace``: where the injected values live (default: the kernel's user namespace).
    """
    if history is None:
        shell = _ipython()
        if shell is None:
            return  # not in a kernel: no papermill cell to check
        history = shell.user_ns.get("In") or []
        namespace = shell.user_ns if namespace is None else namespace
    history = list(history)
    if len(history) < 2 or not str(history[-2]).lstrip().startswith(INJECTED_MARKER):
        return
    try:
        declared = parse_parameters(str(history[-3]) if len(history) >= 3 else "", "this notebook")
    except ParameterError as exc:
        raise ParameterError("papermill's injected-parameters cell ran, but the cell run before it is not this "
                             "notebook's parameters cell; run the cells in order (the parameters cell, papermill's "
                             "cell, then this one)") from exc
    given = _assigned(str(history[-2]))
    if namespace is not None:
        given = {k: namespace.get(k, v) for k, v in given.items()}
    check_given(declared, given)


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the package
        return None
    return get_ipython()
