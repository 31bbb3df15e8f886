"""Figures shared by the book's chapters: image grids, parsing masks in colour, landmarks, heatmaps."""
from __future__ import annotations

import re
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import labels as L
from .config import departures

# One colour per CelebAMask-HQ class (labels.PARSING_CLASSES order); left and right parts share a hue.
PARSING_PALETTE = torch.tensor([
    [0, 0, 0], [230, 190, 160], [255, 140, 0], [120, 120, 255], [0, 200, 255], [0, 120, 255],
    [150, 80, 20], [110, 50, 10], [255, 200, 200], [255, 160, 160], [120, 0, 40], [230, 30, 70],
    [250, 90, 120], [90, 60, 30], [128, 128, 0], [255, 255, 0], [200, 200, 200], [250, 220, 190],
    [60, 140, 60]], dtype=torch.float32) / 255


def to_numpy_image(img: torch.Tensor) -> np.ndarray:
    """A 3 x H x W image in [-1, 1] as an H x W x 3 array in [0, 1]."""
    return ((img.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def mask_to_rgb(mask: torch.Tensor) -> torch.Tensor:
    """A label map (H x W or B x H x W, canonical order) as colour images in [-1, 1] (3 x H x W)."""
    rgb = PARSING_PALETTE[mask.long().cpu()]
    return (rgb.movedim(-1, -3) * 2 - 1)


def image_grid(images: torch.Tensor, nrow: int, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, size: float = 1.3, title: str | None = None):
    """Show a batch of images (B x 3 x H x W in [-1, 1]) in rows of ``nrow``; returns the figure."""
    n = len(images)
    rows = (n + nrow - 1) // nrow
    fig, axes = plt.subplots(rows, nrow, figsize=(size * nrow, size * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if k < n:
            ax.imshow(to_numpy_image(images[k]), interpolation="nearest")
    if col_labels is not None:
        for ax, lab in zip(axes[0], col_labels):
            ax.set_title(lab, fontsize=8)
    if row_labels is not None:
        for ax, lab in zip(axes[:, 0], row_labels):
            ax.set_ylabel(lab, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.2)
    return fig


def edit_grid(editors: dict, dataset, idx, targets, target_names: Sequence[str], label: str = "expression",
              size: float = 1.05):
    """Each face's edits by each editor, with SynthFaces' ground truth under them; returns the figure.

    For the faces ``idx`` of ``dataset``: one row per entry of ``editors`` (``{row label: editor}``, an editor
    as in :mod:`faceedit_nb.metrics`: ``(images, source_labels, target_labels) -> images``), then a row
    "ground truth" (:func:`faceedit_nb.metrics.ground_truth_editor`, the re-render). Columns: the input,
    then one per target; ``targets`` maps the faces' source labels (sample key ``label``) to the list of
    target labels, one per column, named by ``target_names``.
    """
    from .metrics.editors import ground_truth_editor

    idx = torch.as_tensor(idx)
    batch = dataset.batch(idx)
    x, src = batch["image"], batch[label]
    columns = targets(src)
    rows = {}
    for name, editor in {**editors, "ground truth": ground_truth_editor(dataset)}.items():
        kw = {"indices": idx} if getattr(editor, "wants_indices", False) else {}
        rows[name] = torch.stack([x] + [editor(x, src, t, **kw) for t in columns], 1)
    grid = torch.stack(list(rows.values()), 1).flatten(0, 2)  # face, editor, column
    return image_grid(grid, nrow=1 + len(columns), size=size, col_labels=["input", *target_names],
                      row_labels=[name for _ in range(len(idx)) for name in rows])


def show_landmarks(ax, landmarks: torch.Tensor, size: float = 4.0, colour: str = "lime"):
    """Draw 68 iBUG landmarks (pixels) on an axis, the groups joined by lines."""
    lm = landmarks.detach().cpu().numpy()
    for name, (lo, hi) in L.LANDMARK_GROUPS.items():
        closed = name in ("right_eye", "left_eye", "outer_lips", "inner_lips")
        idx = list(range(lo, hi)) + ([lo] if closed else [])
        ax.plot(lm[idx, 0], lm[idx, 1], "-", color=colour, lw=0.6)
    ax.scatter(lm[:, 0], lm[:, 1], s=size, c=colour, linewidths=0)


def parsing_legend(fig, classes: Sequence[str] = L.PARSING_CLASSES, ncol: int = 7):
    """A legend of the parsing colours under a figure."""
    handles = [plt.Rectangle((0, 0), 1, 1, color=PARSING_PALETTE[i].tolist()) for i in range(len(classes))]
    fig.legend(handles, classes, loc="lower center", ncol=ncol, fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, -0.02))


def difference_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean absolute difference of two image batches (B x H x W), for heatmaps."""
    return (a - b).abs().mean(-3)


def markdown_table(rows: Sequence[Sequence], headers: Sequence[str], floatfmt: str = ".3f"):
    """A Markdown table for notebooks (rendered by Jupyter and by the book)."""
    from IPython.display import Markdown

    def fmt(v):  # a bare "|" would end the cell: escaped (one already escaped is kept)
        return re.sub(r"(?<!\\)\|", r"\\|", format(v, floatfmt) if isinstance(v, float) else str(v))

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def departures_table(cfg, profile: str):
    """A chapter's settings table: every field where ``cfg`` departs from its paper profile
    (:func:`faceedit_nb.config.departures`), with the paper's value, this run's, and the measured reason for
    a cpu-profile choice (else what the field is). Floats are written in full (``g``: 1e-04, not 0.000)."""
    def fmt(v):
        return format(v, "g") if isinstance(v, float) else v
    rows = [(f"`{r['field']}`", fmt(r["paper"]), fmt(r["value"]), r["why"] or r["meaning"]) for r in departures(cfg)]
    return markdown_table(rows, ["setting", "paper", f"this run ({profile})", "what it is, or why"])


def learning_curve(trained, key: str, *, references: dict | None = None, ax=None, label: str | None = None,
                   ylabel: str | None = None, lower_is_better: bool = False):
    """A method's learning curve: figure ``eval/<key>`` of its training stats against training minutes (the
    engine's clock), with horizontal lines for ``references`` (``{"ground truth": {key: v}, ...}``, e.g.
    :func:`faceedit_nb.methods.curve_references`). Returns the axes."""
    rows = [r for r in trained.stats if f"eval/{key}" in r]
    if not rows:
        raise KeyError(f"no learning curve 'eval/{key}' in the training stats; the config's curve_every is "
                       f"{getattr(trained.config, 'curve_every', '?')} (0: none was measured)")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["elapsed"] / 60 for r in rows], [r[f"eval/{key}"] for r in rows], "o-", label=label or key)
    styles = {"ground truth": ("tab:green", "--"), "doing nothing": ("grey", ":")}
    for name, values in (references or {}).items():
        if key in values:
            colour, style = styles.get(name, ("black", "-."))
            ax.axhline(values[key], color=colour, ls=style, lw=1.2, label=name)
    ax.set_xlabel("training minutes")
    ax.set_ylabel((ylabel or key) + (" (lower is better)" if lower_is_better else ""))
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return ax
