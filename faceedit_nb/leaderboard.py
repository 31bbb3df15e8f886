"""One leaderboard of every method of the book, read from what the chapters measured (never retrained).

Each chapter that evaluates editors glues its rows under the name ``leaderboard`` (:func:`glue_entries`):
one entry per editor, protocol and metric, with a 95 % interval, the test faces it was measured on, the
training minutes and the profile. ``make book`` writes every chapter's glued values to
``book/_build/results.json``; the runner hands the chapters' values to ``notebooks/leaderboard.ipynb``
(executed after all the others), which gathers the entries (:func:`collect`) and shows one table per
protocol and test set (:func:`board`, :func:`html_table`).

How the intervals are measured (:func:`interval`), from the per-edit records of
:func:`faceedit_nb.metrics.evaluate`, resampling **faces** (the edits of one face are drawn together):

* hit rates (EEA, attribute accuracy) and per-edit means (ED, identity distance, ground-truth L1 and SSIM):
  the ratio of the resampled sums, a percentile interval of ``n_boot`` draws;
* FID (own features): both sets re-drawn by face and the FID recomputed (:func:`faceedit_nb.claims.fid_interval`);
* ground-truth mIoU: the resampled faces' parser confusions summed, the mIoU recomputed.

Entries are comparable only on the same faces with the same protocol: the board keeps one table per
``(protocol, faces)`` pair and says which chapters measured on other faces.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from . import claims as C
from .metrics.image import iou_per_class
from .metrics.table import METRIC_NAMES, _fmt

__all__ = ["METRICS", "HIGHER_IS_BETTER", "REFERENCES", "GLUE_NAME", "SOURCES", "interval", "entries",
           "glue_entries", "describe", "load_results", "collect", "missing_chapters", "board", "best", "html_table", "forest"]

# The leaderboard's metrics, in its column order, and which way is better.
METRICS = ("eea", "attribute_accuracy", "ed", "id_distance", "fid_own", "gt_l1", "gt_ssim", "gt_miou")
HIGHER_IS_BETTER = {"eea": True, "attribute_accuracy": True, "ed": False, "id_distance": False, "fid_own": False,
                    "gt_l1": False, "gt_ssim": True, "gt_miou": True}
# what ranks each protocol's table (another protocol: the first of these it has)
RANK_BY = {"expression": "eea", "expression_aus": "eea", "aus": "ed", "attributes": "attribute_accuracy",
           "stargan": "attribute_accuracy"}
_RANK_FALLBACK = ("eea", "attribute_accuracy", "ed")
# calibration editors: shown in every table, never ranked
REFERENCES = ("identity editor", "doing nothing", "ground truth", "ground truth (re-render)")
GLUE_NAME = "leaderboard"
# the chapters that glue leaderboard entries (the board says which of them it did not find)
SOURCES = ("baselines/stargan", "baselines/ganimation", "baselines/attgan", "seg_hierarchical/04_results",
           "secgan/04_results", "relative_au/04_results", "lssl/04_results", "defgan/04_results")
_PER_EDIT = {"eea": ("eea_hit", "eea_face"), "attribute_accuracy": ("attribute_accuracy_hit", "face"),
             "ed": ("ed", "face"), "id_distance": ("id_distance", "face"), "gt_l1": ("gt_l1", "face"),
             "gt_ssim": ("gt_ssim", "face")}


def _draw_counts(n_faces: int, n_boot: int, seed: int) -> torch.Tensor:
    """``(n_boot, n_faces)``: how often each face is drawn in each bootstrap resample of the faces."""
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(n_faces, (n_boot, n_faces), generator=gen)
    return torch.zeros(n_boot, n_faces, dtype=torch.float64).scatter_add_(
        1, picks, torch.ones(n_boot, n_faces, dtype=torch.float64))


def _face_index(faces: torch.Tensor) -> tuple[torch.Tensor, int]:
    ids, inverse = torch.as_tensor(faces).flatten().unique(return_inverse=True)
    return inverse, len(ids)


def _mean_interval(values, faces, n_boot: int, seed: int) -> tuple[float, float, float]:
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    inverse, n_faces = _face_index(faces)
    if len(v) != len(inverse) or len(v) == 0:
        raise ValueError(f"one face per value is needed: {len(v)} values, {len(inverse)} faces")
    sums = torch.zeros(n_faces, dtype=torch.float64).index_add_(0, inverse, v)
    counts = torch.zeros(n_faces, dtype=torch.float64).index_add_(0, inverse, torch.ones_like(v))
    w = _draw_counts(n_faces, n_boot, seed)
    draws = (w @ sums) / (w @ counts).clamp(min=1)
    lo, hi = np.percentile(draws.numpy(), [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def _miou(confusion: torch.Tensor) -> float:
    return float(iou_per_class(confusion).nanmean())


def _miou_interval(confusions, faces, n_boot: int, seed: int) -> tuple[float, float, float]:
    conf = torch.as_tensor(confusions).double()
    inverse, n_faces = _face_index(faces)
    per_face = torch.zeros(n_faces, *conf.shape[1:], dtype=torch.float64).index_add_(0, inverse, conf)
    w = _draw_counts(n_faces, n_boot, seed)
    draws = np.array([_miou(torch.einsum("f,fij->ij", w[r], per_face)) for r in range(n_boot)])
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return _miou(per_face.sum(0)), float(lo), float(hi)


def interval(table, metric: str, *, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float] | None:
    """``(value, low, high)`` of ``metric`` in an evaluation table (:func:`faceedit_nb.metrics.evaluate`), a 95 %
    percentile interval over ``n_boot`` resamples of the test faces; None when the table has no such figure.
    The value is the table's own figure (recomputed from the per-edit records: a test checks they agree)."""
    if metric not in METRICS:
        raise ValueError(f"unknown leaderboard metric {metric!r}; metrics: {METRICS}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval; got {n_boot}")
    edits = getattr(table, "edits", None) or {}
    if metric == "fid_own":
        return C.fid_interval(table, n_boot=min(n_boot, 200), seed=seed) if "own" in edits else None
    if metric == "gt_miou":
        if "gt_confusion" not in edits:
            return None
        return _miou_interval(edits["gt_confusion"], edits["face"], min(n_boot, 200), seed)
    key, face_key = _PER_EDIT[metric]
    if key not in edits or len(edits[key]) == 0:
        return None
    return _mean_interval(edits[key].float(), edits[face_key], n_boot, seed)


def entries(tables: Mapping[str, object], *, chapter: str, faces: str, profile: str,
            minutes: Mapping[str, float] | None = None, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """The leaderboard entries of one chapter: every metric of :data:`METRICS` that each evaluation table
    has, with its interval. ``tables``: editor name -> table (each table's protocol is read from it);
    ``faces``: the test set the tables were measured on (:func:`describe` of it); ``minutes``: training
    wall minutes per editor (references and editors not trained here: leave out)."""
    minutes = dict(minutes or {})
    unknown = sorted(set(minutes) - set(tables))
    if unknown:
        raise ValueError(f"minutes for editors without a table: {unknown}; tables: {sorted(tables)}")
    out = []
    for name, table in tables.items():
        protocol = table.meta.get("protocol")
        if protocol is None:
            raise ValueError(f"{name}: not an evaluation table (no meta['protocol']); pass evaluate()'s result")
        for metric in METRICS:
            got = interval(table, metric, n_boot=n_boot, seed=seed)
            if got is None:
                continue
            value, lo, hi = got
            out.append({"method": name, "protocol": protocol, "metric": metric, "value": value, "low": lo,
                        "high": hi, "n_edits": int(table.meta.get("n_edits", 0)), "faces": faces,
                        "chapter": chapter, "profile": profile, "reference": name in REFERENCES,
                        "train_minutes": minutes.get(name)})
    return out


def glue_entries(rows: Sequence[dict]) -> None:
    """Glue a chapter's entries (:func:`entries`) under :data:`GLUE_NAME`, as JSON text (not displayed)."""
    from myst_nb import glue
    glue(GLUE_NAME, json.dumps(list(rows), allow_nan=False), display=False)


def load_results(path: str | Path = "") -> tuple[dict, str]:
    """The chapters' glued values ``{chapter: {name: value}}`` and a sentence saying where they came from.
    ``path``: a results file (``make book`` hands the leaderboard one); ``""``: the book's last
    ``book/_build/results.json``. A missing file gives no values and a sentence that names the fix."""
    # the repository's folder, as book.REPO_ROOT (not imported: the runner imports every method's package)
    file = Path(path) if path else Path(__file__).resolve().parents[1] / "book" / "_build" / "results.json"
    if not file.is_file():
        return {}, (f"no chapter results at {file}: run `make book` (or `python -m faceedit_nb.book`) first, "
                    "which executes every chapter and then this one; the board below is empty")
    values = json.loads(file.read_text())
    if not isinstance(values, dict):
        raise ValueError(f"{file} is not a results file ({{chapter: {{name: value}}}}); rebuild it with make book")
    return values, f"the glued values of {len(values)} executed chapters ({file.name})"


def collect(results: Mapping[str, Mapping]) -> list[dict]:
    """Every chapter's entries from ``results`` (``{chapter: {glue name: value}}``, as in results.json)."""
    out = []
    for chapter, values in results.items():
        text = (values or {}).get(GLUE_NAME)
        if text is None:
            continue
        rows = json.loads(text) if isinstance(text, str) else text
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "metric" in r for r in rows):
            raise ValueError(f"{chapter}: its {GLUE_NAME!r} value is not a list of entries; re-run the chapter")
        out += rows
    return out


def missing_chapters(results: Mapping[str, Mapping]) -> list[str]:
    """The chapters of :data:`SOURCES` whose entries are not in ``results`` (not executed, or failed)."""
    return [c for c in SOURCES if GLUE_NAME not in (results.get(c) or {})]


def _rank_metric(protocol: str, metrics: set[str]) -> str | None:
    if RANK_BY.get(protocol) in metrics:
        return RANK_BY[protocol]
    return next((m for m in _RANK_FALLBACK if m in metrics), None)


def _same_figures(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k][i], b[k][i], rel_tol=1e-9, abs_tol=1e-12)
                                        for k in a for i in range(3))


def _methods(rows: Sequence[dict]) -> list[dict]:
    """The rows of one table as methods with ``{metric: (value, low, high)}``; a method that several chapters
    measured with the same figures (the same model on the same faces) is one row naming every chapter."""
    by_chapter: dict[tuple[str, str], dict] = {}
    for r in rows:
        m = by_chapter.setdefault((r["method"], r["chapter"]), {
            "method": r["method"], "chapter": r["chapter"], "reference": r["reference"], "profile": r["profile"],
            "train_minutes": r["train_minutes"], "metrics": {}})
        m["metrics"][r["metric"]] = (r["value"], r["low"], r["high"])
    merged: list[dict] = []
    for m in by_chapter.values():
        twin = next((o for o in merged if o["method"] == m["method"] and _same_figures(o["metrics"], m["metrics"])),
                    None)
        if twin is None:
            merged.append(m)
        else:
            twin["chapter"] += f", {m['chapter']}"
    return merged


def board(rows: Sequence[dict]) -> list[dict]:
    """One table per ``(protocol, faces)``: ``{"protocol", "faces", "rank_by", "metrics", "rows"}``, each row a
    method with its chapter(s), training minutes and ``{metric: (value, low, high)}``, ranked by the protocol's
    main metric (:data:`RANK_BY`; equal figures share a rank; the references last, unranked). A method two
    chapters measured with different figures keeps both rows (the chapter tells them apart)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r["faces"]), []).append(r)
    tables = []
    for (protocol, faces), group in groups.items():
        methods = _methods(group)
        present = {k for m in methods for k in m["metrics"]}
        key = _rank_metric(protocol, present)
        sign = -1.0 if key and HIGHER_IS_BETTER[key] else 1.0

        def order(m, key=key, sign=sign):
            v = m["metrics"].get(key, (math.nan,))[0] if key else math.nan
            return (m["reference"], math.isnan(v), sign * v if not math.isnan(v) else 0.0, m["method"])

        ranked = sorted(methods, key=order)
        place, previous = 0, None
        for k, m in enumerate(r for r in ranked if not r["reference"] and key in r["metrics"]):
            value = m["metrics"][key][0]
            place = place if value == previous else k + 1  # equal figures share a rank (1, 1, 3)
            m["rank"], previous = place, value
        for m in ranked:
            m.setdefault("rank", None)
        tables.append({"protocol": protocol, "faces": faces, "rank_by": key,
                       "metrics": [k for k in METRICS if k in present], "rows": ranked})
    return sorted(tables, key=lambda t: (t["protocol"], -len(t["rows"])))


def best(table: dict) -> str:
    """One sentence: the top-ranked method of a :func:`board` table with its figure and interval."""
    top = next((r for r in table["rows"] if r["rank"] == 1), None)
    if top is None:
        return f"{table['protocol']}: no ranked method"
    metric = table["rank_by"]
    text = f"{table['protocol']}: {top['method']} ({METRIC_NAMES[metric]} {_cell(top['metrics'][metric], metric)[1]}"
    nothing = next((r for r in table["rows"] if r["method"] in ("identity editor", "doing nothing")
                    and metric in r["metrics"]), None)
    if nothing is not None:  # what the top figure has to beat to show an edit at all
        text += f"; doing nothing: {_cell(nothing['metrics'][metric], metric)[1]}"
    return text + ")"


def forest(table: dict, ax=None):
    """The ranking metric of a :func:`board` table per method with its 95 % interval (references in grey)."""
    import matplotlib.pyplot as plt
    ax = ax or plt.gca()
    metric = table["rank_by"]
    rows = [r for r in table["rows"] if metric in r["metrics"]]
    scale = 100 if metric in ("eea", "attribute_accuracy") else 1
    for y, r in enumerate(rows):
        v, lo, hi = (scale * x for x in r["metrics"][metric])
        ax.errorbar(v, y, xerr=[[v - lo], [hi - v]], fmt="o", capsize=3, color="0.6" if r["reference"] else "C0")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['method']} ({r['chapter']})" if not r["reference"] else r["method"] for r in rows],
                       fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(METRIC_NAMES[metric] + (" (%)" if scale == 100 else "") + (", higher is better"
                  if HIGHER_IS_BETTER[metric] else ", lower is better"), fontsize=9)
    ax.set_title(table["protocol"], fontsize=10)
    return ax


def _cell(v: tuple[float, float, float] | None, metric: str) -> tuple[str, str]:
    """(sort key, shown text) of one figure."""
    if v is None:
        return "", ""
    value, lo, hi = v
    if metric in ("eea", "attribute_accuracy"):
        def f(x):
            return f"{100 * x:.1f}"
    else:
        def f(x):
            return _fmt(x, ".2f" if metric == "fid_own" else ".3f")
    return f"{value:.6g}", f"{f(value)} [{f(lo)}, {f(hi)}]"


def describe(dataset) -> str:
    """The test set in words, the ``faces`` of :func:`entries`: two entries are comparable only when equal."""
    names = ("split", "size", "n", "n_identities", "seed", "au_mode", "background")
    if not all(hasattr(dataset, k) for k in names):
        return repr(dataset)
    d = {k: getattr(dataset, k) for k in names}
    return (f"SynthFaces {d['split']}: {d['n']} faces of {d['n_identities']} people, {d['size']} px, seed {d['seed']}, "
            f"{d['background']} backdrop, AUs {d['au_mode']}")


_SORT_SCRIPT = """<script>
(function () {
  document.querySelectorAll("table.faceedit-leaderboard").forEach(function (t) {
    t.querySelectorAll("th").forEach(function (th, col) {
      th.style.cursor = "pointer";
      th.addEventListener("click", function () {
        var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var up = th.getAttribute("data-dir") !== "up";
        th.setAttribute("data-dir", up ? "up" : "down");
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
          if (x === "" || y === "") { return (x === "") - (y === ""); }  // blanks last, either way
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
          return up ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
</script>"""


def html_table(table: dict, *, script: bool = True) -> str:
    """A sortable HTML table of one :func:`board` table (click a column title to sort; the script is inline:
    the book works offline). EEA and attribute accuracy in %, each figure with its 95 % interval."""
    metrics = table["metrics"]
    head = ["rank", "method", "chapter", "training (min)"] + [METRIC_NAMES.get(m, m) + (" %" if m in (
        "eea", "attribute_accuracy") else "") + (" ↑" if HIGHER_IS_BETTER[m] else " ↓") for m in metrics]
    out = ['<table class="faceedit-leaderboard">', "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for r in table["rows"]:
        minutes = r["train_minutes"]
        shown = "reference" if r["reference"] else str(r["rank"]) if r["rank"] else "unranked"
        cells = [("" if r["rank"] is None else str(r["rank"]), shown),
                 (r["method"], r["method"]), (r["chapter"], r["chapter"]),
                 ("" if minutes is None else f"{minutes:.6g}",
                  "" if minutes is None else f"{minutes:.1f}" if minutes >= 1 else f"{minutes:.2g}")]
        cells += [_cell(r["metrics"].get(m), m) for m in metrics]
        out.append("<tr>" + "".join(f'<td data-sort="{html.escape(k)}">{html.escape(t)}</td>' for k, t in cells)
                   + "</tr>")
    out.append("</tbody></table>")
    if script:
        out.append(_SORT_SCRIPT)
    return "\n".join(out)
