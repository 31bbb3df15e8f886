"""Running a chapter at the paper profile on a GPU: where its runs are kept, what they cost, how to resume them.

    from faceedit_nb import paper_scale
    paper_scale.note("secgan", storage)   # a series' GPU-hour estimates and the Colab steps, as Markdown

(A chapter's ``storage`` parameter itself goes to :func:`faceedit_nb.storage.use_storage`.)

The estimates come from ``faceedit_nb/paper_costs.py`` (a module, so that a chapter showing them runs again
when they change), written by the paper-profile dry run
(``python -m faceedit_nb.dryrun --update``): every model measured on a CPU at its paper size, its FLOPs per
iteration times the paper's iterations over a stated share of the GPU's peak (:mod:`faceedit_nb.dryrun`). They
are estimates: no GPU measured them. ``tests/test_dryrun.py`` fails when a paper config changed since its row was
measured, so the page never shows the cost of another model than the one the chapter trains.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

from .storage import COLAB_STORAGE

__all__ = ["COSTS_FILE", "load_costs", "series_costs", "note"]

COSTS_FILE = Path(__file__).with_name("paper_costs.py")



def load_costs(path: str | os.PathLike | None = None) -> dict:
    """The dry run's record: ``{"measured": {...}, "gpus": {...}, "efficiency": {...}, "rows": [...]}``."""
    if path is None:
        from .paper_costs import COSTS
        return COSTS
    try:
        tree = ast.parse(Path(path).read_text())
        return next(ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COSTS")
    except (OSError, ValueError, SyntaxError, StopIteration) as exc:
        raise FileNotFoundError(f"no readable paper-profile dry run at {path} ({type(exc).__name__}: {exc}); "
                                "write it with: python -m faceedit_nb.dryrun --update") from exc


def series_costs(series: str, costs: dict | None = None) -> list[dict]:
    """The rows of the models a chapter or series trains (``series`` as in :func:`faceedit_nb.dryrun.series_of`),
    each with its estimated ``hours`` per GPU at the profile (SynthFaces) and ``paper_data_hours`` on the paper's
    own data set (an epoch schedule's; else the same)."""
    costs = costs if costs is not None else load_costs()
    rows = []
    for r in costs["rows"]:
        if r["series"] != series:
            continue
        per_iteration = {g: r["flops_per_iteration"] / (peak * costs["efficiency"][g]) / 3600
                         for g, peak in costs["gpus"].items()}
        on_paper_data = r.get("paper_data_iterations") or r["iterations"]
        rows.append({**r, "hours": {g: r["iterations"] * h for g, h in per_iteration.items()},
                     "paper_data_hours": {g: on_paper_data * h for g, h in per_iteration.items()}})
    if not rows:
        known = sorted({r["series"] for r in costs["rows"]})
        raise KeyError(f"the dry run holds no model of {series!r}; it has {', '.join(known)}")
    return rows


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:,.1f} h" if hours < 48 else f"{hours:,.0f} h ({hours / 24:,.1f} days)"


def note(series: str, storage: str = "", *, chapter: str = "", costs: dict | None = None):
    """What a chapter's models cost at the paper profile, and how to train them on Colab and resume there, as
    Markdown (``IPython.display.Markdown``)."""
    from IPython.display import Markdown
    costs = costs if costs is not None else load_costs()
    rows = series_costs(series, costs)
    eff = costs["efficiency"]
    epochs = any(r.get("paper_data_iterations") for r in rows)

    def cell(r, key, fmt):  # the profile's figure, then the paper's data's where the schedule is in epochs
        if not r.get("paper_data_iterations"):
            return fmt(r[key])
        return f"{fmt(r[key])} / {fmt(r['paper_data_' + key])}"
    what = " (SynthFaces / the paper's data)" if epochs else ""
    lines = [f"| model | parameters | GFLOP / iteration | iterations{what} | T4 (est.) | A100 (est.) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['params'] / 1e6:.1f} M | {r['flops_per_iteration'] / 1e9:,.0f} | "
                     f"{cell(r, 'iterations', lambda n: f'{n:,}')} | "
                     f"{cell(r, 'hours', lambda h: _duration(h['T4']))} | "
                     f"{cell(r, 'hours', lambda h: _duration(h['A100']))} |")
    total = {g: sum(r["hours"][g] for r in rows) for g in costs["gpus"]}
    full = {g: sum(r["paper_data_hours"][g] for r in rows) for g in costs["gpus"]}
    t4, a100 = _duration(total["T4"]), _duration(total["A100"])
    if epochs:
        t4, a100 = f"{t4} / {_duration(full['T4'])}", f"{a100} / {_duration(full['A100'])}"
    lines.append(f"| **all {len(rows)}** | | | | **{t4}** | **{a100}** |")
    sources = sorted({r["paper_data"] for r in rows if r.get("paper_data")})
    name = chapter or "this notebook"
    where = storage or COLAB_STORAGE
    implied = sorted(c["implied_efficiency"] for c in costs.get("calibration", []))
    calibration = f"{implied[0]:.0%}-{implied[-1]:.0%}" if implied else "(not measured)"
    gan = [r["label"] for r in rows if r["kind"] not in ("oracle", "hier-parser", "lssl-parser", "critic-curve")]
    several = "" if not gan else (
        f"**On several GPUs**: `torchrun --nproc_per_node 4 -m faceedit_nb.parallel --model \"{gan[0]}\" --profile "
        f"paper --storage {where}` trains that model data-parallel into the same storage, with the config this "
        "chapter asks for (README, \"Paper scale\"); the chapter then loads it.")
    epoch_text = ("" if not epochs else
                  " These methods train for a number of epochs: on SynthFaces' 3,200 training faces the paper "
                  "profile runs far fewer iterations than the paper did on its own data (after the slash: "
                  + "; ".join(sources) + ").")
    text = "\n".join(lines) + f"""

Estimated from a dry run on a CPU ({costs['measured']['when']}: every model built at its paper size, its FLOPs per
training iteration counted by torch), at {eff['T4']:.0%} of a T4's fp16 tensor peak and {eff['A100']:.0%} of an
A100's bf16 peak. Two papers' own StarGAN training times imply {calibration} of their GPUs' fp32 peak with our
FLOP count, and mixed precision usually runs convolutional GANs 2-4x faster than fp32, not at the tensor cores'
8x (T4) or 16x (A100). Estimates, not measurements; the oracles and parsers the models need have their own rows
in the README's table.{epoch_text}

**On Colab** (a T4 on the free tier; sessions end after a few hours):
1. Open {name} with the Colab badge at the top, choose a GPU runtime, and mount Google Drive:
   `from google.colab import drive; drive.mount("/content/drive")`.
2. In the parameters cell set `profile = "paper"` and `storage = "{where}"`, then run all cells. The models
   train in `storage`: its `runs/` folder holds each run's snapshots (every 1,000 iterations: weights,
   optimisers and random states), its `models/` folder the finished models.
3. When the session ends, open a new one, mount Drive again and run the same cells with the same `storage`: each
   model resumes from its last snapshot; finished models are loaded, not trained again.

{several}"""
    return Markdown(text)
