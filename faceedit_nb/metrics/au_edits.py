"""What only SynthFaces can tell about an AU edit: the error of a single-AU edit against SynthFaces' true
re-render of the same face with that AU moved, and how local the edit stays (Ling et al.'s and DefGAN's
"changes only where the expression moves" claims). Any AU editor ``editor(images, source_aus, target_aus)``.

* :func:`single_au_edits`: faces edited with one AU moved by ``delta``, beside the re-render (the truth).
* :func:`true_region`, :func:`locality_share`: the pixels an edit truly moves, and the share of an edit's
  change that falls inside them.
* :func:`relative_edit_errors`: per single-AU edit, image L1 to the re-render, AU error and locality.
"""
from __future__ import annotations

import torch

from .. import labels as L
from .image import l1_error

__all__ = ["REGION_THRESHOLD", "apply_editor", "single_au_edits", "true_region", "locality_share", "relative_edit_errors"]

REGION_THRESHOLD = 0.002  # a pixel is in an AU's true region when the re-render moves it by more (on [0, 1]); the
#                           re-render itself then keeps 97-99 % of its change inside (measured at 32 and 64 px)


def apply_editor(editor, images, source, target, indices) -> torch.Tensor:
    """``editor(images, source, target)``, with ``indices=`` for editors that want them (the ground truth)."""
    if getattr(editor, "wants_indices", False):
        return editor(images, source, target, indices=indices).float()
    return editor(images, source, target).float()


@torch.no_grad()
def single_au_edits(editor, dataset, indices: torch.Tensor, au: str, delta: float) -> dict[str, torch.Tensor]:
    """Faces ``indices`` edited by the relative AUs ``v_rel = delta * e_au`` (the editor receives the
    source AUs and ``v_src + v_rel``, clamped to [0, 1]) and their ground truth, SynthFaces' re-render with
    the same target AUs. Returns ``image``, ``edit``, ``truth``, ``source_aus``, ``target_aus``."""
    b = dataset.batch(indices)
    v_src = b["aus"]
    v_tgt = v_src.clone()
    k = L.AUS.index(au)
    v_tgt[:, k] = (v_tgt[:, k] + delta).clamp(0, 1)
    edit = apply_editor(editor, b["image"], v_src, v_tgt, indices)
    truth = dataset.render_targets(indices, aus=v_tgt)["image"]
    return {"image": b["image"], "edit": edit, "truth": truth, "source_aus": v_src, "target_aus": v_tgt}


def true_region(image: torch.Tensor, truth: torch.Tensor, threshold: float = REGION_THRESHOLD) -> torch.Tensor:
    """The pixels an edit truly moves (B x H x W, bool): where the re-render differs from the input by more
    than ``threshold`` (mean over channels, on [0, 1])."""
    return ((truth.float() - image.float()).abs().mean(1) / 2) > threshold


def locality_share(image: torch.Tensor, edit: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per image, the share of the edit's change ``Σ |edit - x|`` that lies inside ``region``; 1 for an edit
    that touches nothing else. Images the edit leaves exactly unchanged count as NaN."""
    change = (edit.float() - image.float()).abs().mean(1)
    total = change.flatten(1).sum(1)
    inside = (change * region.float()).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.full_like(total, float("nan")))


@torch.no_grad()
def relative_edit_errors(editor, dataset, oracles, n: int, *, aus=("AU01", "AU04", "AU12", "AU15", "AU26"),
                         delta: float = 0.5, batch_size: int = 100) -> dict[str, torch.Tensor]:
    """For the first ``n`` faces and each AU of ``aus``: the single-AU edit of ``delta`` (up when the AU
    has room, else down) against its ground truth. Per edit: ``gt_l1`` (image L1 to the re-render),
    ``au_error`` (L2 distance of the AU oracle's reading of the edit to the target AUs), ``locality``
    (:func:`locality_share` in the true region), ``region_area`` (the region's share of the image: the
    locality of a change spread evenly), ``truth_change`` (the true edit's L1 size), ``face`` and ``au``."""
    rows = {k: [] for k in ("gt_l1", "au_error", "locality", "region_area", "truth_change", "face", "au")}
    for j, au in enumerate(aus):
        k = L.AUS.index(au)
        for lo in range(0, n, batch_size):
            idx = torch.arange(lo, min(n, lo + batch_size))
            src = dataset.batch(idx)["aus"][:, k]
            for sign, sel in ((1.0, src <= 0.5), (-1.0, src > 0.5)):  # room to move
                if not sel.any():
                    continue
                e = single_au_edits(editor, dataset, idx[sel], au, sign * delta)
                region = true_region(e["image"], e["truth"])
                rows["gt_l1"].append(l1_error(e["edit"], e["truth"]))
                rows["au_error"].append((oracles.aus(e["edit"]).float() - e["target_aus"]).norm(dim=1))
                rows["locality"].append(locality_share(e["image"], e["edit"], region))
                rows["region_area"].append(region.float().flatten(1).mean(1))
                rows["truth_change"].append(l1_error(e["truth"], e["image"]))
                rows["face"].append(idx[sel])
                rows["au"].append(torch.full((int(sel.sum()),), j))
    out = {k: torch.cat(v) for k, v in rows.items()}
    order = torch.argsort(out["au"] * (n + 1) + out["face"], stable=True)  # the same order for every editor
    return {k: v[order] for k, v in out.items()}
