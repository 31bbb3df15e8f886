"""What DefGAN's chapters measure beyond :func:`faceedit_nb.metrics.evaluate` (whose AU protocol gives FID,
ED and the identity distance of Table 1):

* :func:`expression_edits`: test faces edited to each expression's prototype AUs (the paper's Fig. 3 / 8
  edit "fifty different instances of AUs for each expression" of real faces; here each face's own
  re-render with that expression gives the target AUs).
* :func:`identity_distance_per_expression`: Fig. 3 / 8, 1 - cos of the identity oracle's embeddings of
  input and edit, per target expression, per face (paired across editors: the same faces and targets).
* :func:`stage_progress`: how much of the edit the warp alone achieves, per edit: the AU oracle's distance
  to the target AUs of the input, of the deformed image I*_y and of the final image I_y.
* :func:`single_au_stages`: Fig. 6 / 11 / 12, one AU moved through several intensities, the deformed
  image, the final image and the grid's displacement in pixels.
* :func:`difference_map`: Fig. 5 / 13 / 14, ``|edit - input|`` averaged over channels, on [0, 1].
* :func:`expression_locality`: Fig. 5 / 13 / 14 measured: the share of an expression edit's change that
  falls where SynthFaces' re-render with that expression moves the face.
* :func:`warp_share`, :func:`warp_share_difference`: the warp's share of the edit over many edits, and
  its difference to another model's (or to a reference such as 0.5) with a paired interval over faces.
* :func:`grid_sizes`: how far and how smoothly the grid moves the pixels, per edit (what Eq. 13-14 act on).
* :func:`per_expression_difference`, :func:`locality_difference`: paired differences of two editors'
  per-edit figures (identity distance, locality), bootstrapped over faces.
* :func:`plot_warped_grid`: the grid of Fig. 11 (bottom), a mesh drawn through the points each pixel samples.

The ground-truth edit error and the share of a change inside the AU's true region are
:func:`faceedit_nb.metrics.au_edits.relative_edit_errors` (any AU editor).
"""
from __future__ import annotations

import numpy as np
import torch

from ... import claims as C
from ... import labels as L
from ...metrics.au_edits import REGION_THRESHOLD, apply_editor, locality_share, true_region
from ...metrics.image import l1_error
from .model import DefGANGenerator, grid_to_pixels

__all__ = ["EDITED_EXPRESSIONS", "expression_targets", "expression_edits", "identity_distance_per_expression",
           "stage_progress", "single_au_stages", "difference_map", "trained_generator", "stage_faces", "warp_share",
           "warp_share_difference", "grid_sizes", "per_expression_difference", "expression_locality",
           "locality_difference", "plot_warped_grid"]

# Fig. 3 / 8: the six expressions the paper edits to (happy, disgust, sad, fear, angry, surprise), in RaFD's names
EDITED_EXPRESSIONS = ("angry", "disgusted", "fearful", "happy", "sad", "surprised")


def expression_targets(dataset, indices: torch.Tensor, expression: str) -> torch.Tensor:
    """Target AUs of faces ``indices`` for ``expression``: the AUs of SynthFaces' re-render of each face
    with that expression (its prototype at the face's own intensity), B x 17."""
    return dataset.render_targets(indices, expression=L.EXPRESSIONS.index(expression))["aus"].float()


@torch.no_grad()
def expression_edits(editor, dataset, n: int, *, expressions=EDITED_EXPRESSIONS, batch_size: int = 100):
    """Yield ``(expression, indices, images, edits)`` for the first ``n`` faces of ``dataset`` edited to each
    expression of ``expressions`` (an editor with ``wants_indices``, the ground truth, also gets ``indices``)."""
    for e in expressions:
        for lo in range(0, n, batch_size):
            idx = torch.arange(lo, min(n, lo + batch_size))
            b = dataset.batch(idx)
            target = expression_targets(dataset, idx, e)
            yield e, idx, b["image"], apply_editor(editor, b["image"], b["aus"].float(), target, idx)


@torch.no_grad()
def identity_distance_per_expression(editor, dataset, oracles, n: int, *, expressions=EDITED_EXPRESSIONS,
                                     batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Fig. 3 / 8: per target expression, the ``n`` faces' identity distances ``1 - cos(emb(x), emb(edit))``
    (the identity oracle's unit embeddings), in face order, so that two editors are paired face by face."""
    out: dict[str, list] = {e: [] for e in expressions}
    for e, _, x, edit in expression_edits(editor, dataset, n, expressions=expressions, batch_size=batch_size):
        a, b = oracles.identity_embedding(x), oracles.identity_embedding(edit.clamp(-1, 1))
        out[e].append(1 - (a * b).sum(1))
    return {e: torch.cat(v) for e, v in out.items()}


@torch.no_grad()
def stage_progress(G: DefGANGenerator, dataset, oracles, n: int, *, expressions=EDITED_EXPRESSIONS,
                   batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Per edit (``n`` faces x ``expressions``), the AU oracle's L2 distance to the target AUs of the input
    (``ed_input``), of the deformed image I*_y (``ed_deformed``) and of the final image I_y (``ed_final``).
    ``(ed_input - ed_deformed) / (ed_input - ed_final)`` is the share of the edit the warp alone achieves."""
    rows = {k: [] for k in ("ed_input", "ed_deformed", "ed_final")}
    for e in expressions:
        for lo in range(0, n, batch_size):
            idx = torch.arange(lo, min(n, lo + batch_size))
            b = dataset.batch(idx)
            x, target = b["image"], expression_targets(dataset, idx, e)
            out = G(x, b["aus"].float(), target)
            for key, img in (("ed_input", x), ("ed_deformed", out["deformed"]), ("ed_final", out["output"])):
                rows[key].append((oracles.aus(img.float().clamp(-1, 1)) - target.float()).norm(dim=1))
    return {k: torch.cat(v) for k, v in rows.items()}


@torch.no_grad()
def single_au_stages(G: DefGANGenerator, images: torch.Tensor, source_aus: torch.Tensor, au: str,
                     values=(0.0, 0.25, 0.5, 0.75, 1.0)) -> dict[str, torch.Tensor]:
    """Fig. 6 / 11 / 12: ``images`` with AU ``au`` set to each of ``values`` (the others kept). Returns
    ``deformed`` and ``output`` (V x B x 3 x H x W), ``displacement`` (V x B x H x W, the grid's offset
    length in pixels) and ``offsets`` (V x B x H x W x 2, the offsets (dx, dy) in pixels)."""
    k = L.AUS.index(au)
    deformed, output, offsets = [], [], []
    for v in values:
        target = source_aus.clone().float()
        target[:, k] = v
        out = G(images, source_aus.float(), target)
        deformed.append(out["deformed"].float())
        output.append(out["output"].float())
        offsets.append(grid_to_pixels(out["grid"].float()))
    offsets = torch.stack(offsets)
    return {"deformed": torch.stack(deformed), "output": torch.stack(output), "displacement": offsets.norm(dim=-1),
            "offsets": offsets}


def difference_map(image: torch.Tensor, edit: torch.Tensor) -> torch.Tensor:
    """Fig. 5 / 13 / 14: ``|edit - image|`` averaged over the colour channels, on [0, 1] (B x H x W)."""
    return (edit.float() - image.float()).abs().mean(1) / 2


def trained_generator(trained) -> DefGANGenerator:
    """The generator behind ``trained.editor`` (a :func:`.train.load_defgan` result): its EMA copy if any."""
    return trained.ema.get("G", trained.nets["G"])


def stage_faces(n: int, expressions=EDITED_EXPRESSIONS) -> torch.Tensor:
    """The face index of each edit of :func:`stage_progress` and :func:`expression_edits` (expression by
    expression, face by face)."""
    return torch.arange(n).repeat(len(expressions))


def _face_sums(progress: dict, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per face, the summed progress of the warp (``ed_input - ed_deformed``) and of the whole edit."""
    m = len(progress["ed_input"])
    if n < 1 or m % n:
        raise ValueError(f"{m} edits are not a whole number of edits of each of {n} faces")
    faces = torch.arange(m) % n
    warp = (progress["ed_input"] - progress["ed_deformed"]).double()
    whole = (progress["ed_input"] - progress["ed_final"]).double()
    zeros = torch.zeros(n, dtype=torch.float64)
    return zeros.index_add(0, faces, warp), zeros.index_add(0, faces, whole)


def warp_share(progress: dict) -> float:
    """The share of the edit the warp alone achieves, over all edits of a :func:`stage_progress`:
    ``Σ (ed_input - ed_deformed) / Σ (ed_input - ed_final)``; NaN when the final images are, summed over
    the edits, exactly as far from their targets as the inputs (no edit to share out)."""
    warp, whole = _face_sums(progress, 1)
    return float(warp[0] / whole[0]) if whole[0] != 0 else float("nan")


def warp_share_difference(a: dict, b: dict | None = None, *, n: int, reference: float = 0.5, n_boot: int = 1000,
                          seed: int = 0) -> C.Difference:
    """``warp_share(a) - warp_share(b)`` for two :func:`stage_progress` results of the same ``n`` faces and
    targets (``b=None``: ``warp_share(a) - reference``), with a percentile interval from ``n_boot``
    resamples of the faces, both models' shares recomputed on each draw (paired). A draw whose edits make no
    progress in total gives an infinite share; the interval is then unbounded, never silently narrowed."""
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval; got {n_boot}")
    warp_a, whole_a = _face_sums(a, n)
    if b is not None:
        warp_b, whole_b = _face_sums(b, n)
        if len(b["ed_input"]) != len(a["ed_input"]):
            raise ValueError("the two stage_progress results are not of the same edits")
    gen = torch.Generator().manual_seed(seed)
    draws = torch.randint(n, (n_boot, n), generator=gen)
    weights = torch.zeros(n_boot, n, dtype=torch.float64).scatter_add_(1, draws, torch.ones(n_boot, n,
                                                                                             dtype=torch.float64))

    def shares(warp, whole, w):
        return (w @ warp).numpy() / (w @ whole).numpy()

    ones = torch.ones(1, n, dtype=torch.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if b is None:
            est, boot = shares(warp_a, whole_a, ones)[0] - reference, shares(warp_a, whole_a, weights) - reference
            test = f"bootstrap over {n:,} faces ({n_boot} draws), share minus {reference:g}"
        else:
            est = shares(warp_a, whole_a, ones)[0] - shares(warp_b, whole_b, ones)[0]
            boot = shares(warp_a, whole_a, weights) - shares(warp_b, whole_b, weights)
            test = f"paired bootstrap over {n:,} faces ({n_boot} draws), both shares recomputed"
    boot = np.where(np.isnan(boot), np.inf, boot)   # 0 / 0: no progress in that draw, the share is undefined
    finite = boot[np.isfinite(boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5]) if len(finite) == n_boot else (-np.inf, np.inf)
    se = float(finite.std(ddof=1)) if len(finite) == n_boot else float("inf")
    p = float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
    return C.Difference(float(est), float(lo), float(hi), se, len(a["ed_input"]), test, p)


@torch.no_grad()
def grid_sizes(G: DefGANGenerator, dataset, n: int, *, expressions=EDITED_EXPRESSIONS,
               batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Per edit (``n`` faces x ``expressions``, :func:`stage_faces`'s order), the grid's mean and largest
    offset length in pixels (``mean_px``, ``max_px``) and its roughness (``rough_px2``: the mean squared
    difference of neighbouring pixels' offsets, px², Eq. 14's TV term as a mean)."""
    rows = {k: [] for k in ("mean_px", "max_px", "rough_px2")}
    for e in expressions:
        for lo in range(0, n, batch_size):
            idx = torch.arange(lo, min(n, lo + batch_size))
            b = dataset.batch(idx)
            off = grid_to_pixels(G(b["image"], b["aus"].float(), expression_targets(dataset, idx, e))["grid"].float())
            length = off.norm(dim=-1).flatten(1)
            rough = ((off[:, 1:] - off[:, :-1]).square().sum(-1).flatten(1).mean(1)
                     + (off[:, :, 1:] - off[:, :, :-1]).square().sum(-1).flatten(1).mean(1))
            rows["mean_px"].append(length.mean(1))
            rows["max_px"].append(length.amax(1))
            rows["rough_px2"].append(rough)
    return {k: torch.cat(v) for k, v in rows.items()}


def per_expression_difference(a: dict, b: dict, *, n_boot: int = 1000, seed: int = 0) -> dict[str, C.Difference]:
    """Per expression and over all (key ``"all"``), the mean of ``a`` minus that of ``b`` (two
    :func:`identity_distance_per_expression` results of the same faces and targets), by a paired bootstrap
    over faces (:func:`faceedit_nb.claims.paired_bootstrap`; a face's edits are drawn together)."""
    if list(a) != list(b) or any(a[e].shape != b[e].shape for e in a):
        raise ValueError("the two results are not of the same faces and expressions")
    out = {e: C.paired_bootstrap(a[e], b[e], n_boot=n_boot, seed=seed) for e in a}
    faces = torch.cat([torch.arange(len(a[e])) for e in a])
    out["all"] = C.paired_bootstrap(torch.cat(list(a.values())), torch.cat(list(b.values())), clusters=faces,
                                    n_boot=n_boot, seed=seed)
    return out


@torch.no_grad()
def expression_locality(editor, dataset, n: int, *, expressions=EDITED_EXPRESSIONS, batch_size: int = 100,
                        threshold: float = REGION_THRESHOLD) -> dict[str, torch.Tensor]:
    """Fig. 5 / 13 / 14 measured: the first ``n`` faces edited to each of ``expressions`` (the targets of
    :func:`expression_targets`), each edit against SynthFaces' re-render of the face with that expression.
    Per edit: ``locality`` (the share of the edit's change inside the pixels the re-render moves,
    :func:`faceedit_nb.metrics.au_edits.locality_share`; NaN for an edit that changes nothing),
    ``region_area`` (those pixels' share of the image: the locality of an even spread), ``gt_l1`` (image L1
    to the re-render), ``face`` and ``expression`` (index into ``expressions``), in :func:`stage_faces`'s
    order."""
    rows = {k: [] for k in ("locality", "region_area", "gt_l1", "face", "expression")}
    for j, e in enumerate(expressions):
        for lo in range(0, n, batch_size):
            idx = torch.arange(lo, min(n, lo + batch_size))
            b = dataset.batch(idx)
            truth = dataset.render_targets(idx, expression=L.EXPRESSIONS.index(e))
            edit = apply_editor(editor, b["image"], b["aus"].float(), truth["aus"].float(), idx).clamp(-1, 1)
            region = true_region(b["image"], truth["image"], threshold)
            rows["locality"].append(locality_share(b["image"], edit, region))
            rows["region_area"].append(region.float().flatten(1).mean(1))
            rows["gt_l1"].append(l1_error(edit, truth["image"].float()))
            rows["face"].append(idx)
            rows["expression"].append(torch.full((len(idx),), j))
    return {k: torch.cat(v) for k, v in rows.items()}


def locality_difference(a: dict, b: dict, *, n_boot: int = 1000, seed: int = 0) -> C.Difference:
    """Mean locality of ``a`` minus ``b`` (two :func:`expression_locality` or
    :func:`faceedit_nb.metrics.au_edits.relative_edit_errors` results of the same edits), paired over the
    edits both changed (an edit that changes nothing has no locality), bootstrapped over faces."""
    if not torch.equal(a["face"], b["face"]):
        raise ValueError("the two results are not of the same edits (the same faces, in the same order)")
    ok = ~(a["locality"].isnan() | b["locality"].isnan())
    if not ok.any():
        raise ValueError("no edit changed the face under both editors: locality is undefined")
    return C.paired_bootstrap(a["locality"][ok], b["locality"][ok], clusters=a["face"][ok], n_boot=n_boot, seed=seed)


def plot_warped_grid(ax, offsets: torch.Tensor, *, step: int = 4, exaggerate: float = 1.0, color: str = "yellow",
                     lw: float = 0.5, alpha: float = 0.8):
    """Draw the deformation grid of Fig. 11 (bottom) on ``ax``: every ``step``-th row and column of pixels
    moved to the point it samples, ``p + exaggerate * offset(p)`` (``offsets``: H x W x 2 in pixels, as
    :func:`single_au_stages` returns them; image coordinates, pixel centres at integers)."""
    off = offsets.detach().float().cpu().numpy() * exaggerate
    h, w = off.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xs + off[..., 0], ys + off[..., 1]
    for r in range(step // 2, h, step):
        ax.plot(px[r], py[r], color=color, lw=lw, alpha=alpha)
    for c in range(step // 2, w, step):
        ax.plot(px[:, c], py[:, c], color=color, lw=lw, alpha=alpha)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    return ax
