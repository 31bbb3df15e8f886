"""What the chapters measure beyond :func:`faceedit_nb.metrics.evaluate`: Table 3's reconstruction, and what
only SynthFaces can tell, the error of a relative edit against the true re-render and how local a
single-AU edit stays.

* :func:`reconstruction_errors`: Table 3, L1 / PSNR / SSIM between ``x`` and the edit to its own AUs, which
  is ``G(x, 0)`` for a relative model and ``G(x, v_src)`` for an absolute one (GANimation).
* :func:`single_au_edits`: every face edited by ``v_rel`` with one AU moved by ``delta`` (Fig. 4), beside
  SynthFaces' re-render of the same face with that AU moved (the ground truth).
* :func:`relative_edit_errors`: per edit, image L1 to the re-render, AU error (the AU oracle's reading of
  the edit against the target AUs), and the **locality**: the share of the edit's change that falls inside
  the AU's true region, the pixels the re-render changes (Sec. 1: with relative AUs "the generator learns
  to only transform regions of interest").
"""
from __future__ import annotations

import torch

from ... import labels as L
from ...metrics.image import l1_error, psnr, ssim

__all__ = ["photo_face", "hard_cases", "inception_score_difference", "reconstruction_errors", "single_au_edits", "true_region", "locality_share", "relative_edit_errors",
           "REGION_THRESHOLD"]

PHOTO_CROP = (slice(20, 250), slice(140, 370))  # the face in scikit-image's 512 x 512 astronaut portrait
REGION_THRESHOLD = 0.002  # a pixel is in an AU's true region when the re-render moves it by more (on [0, 1]); the
#                           re-render itself then keeps 97-99 % of its change inside (measured at 32 and 64 px)


def _edit(editor, images, source, target, indices) -> torch.Tensor:
    """``editor(images, source, target)``, with ``indices=`` for editors that want them (the ground truth)."""
    if getattr(editor, "wants_indices", False):
        return editor(images, source, target, indices=indices).float()
    return editor(images, source, target).float()


@torch.no_grad()
def reconstruction_errors(editor, dataset, n: int, *, batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Table 3: per test face, L1 (on [0, 1]), PSNR (dB) and SSIM between the face and ``editor(x, v_src,
    v_src)``, the edit to its own AUs."""
    out = {"l1": [], "psnr": [], "ssim": []}
    for lo in range(0, n, batch_size):
        idx = torch.arange(lo, min(n, lo + batch_size))
        b = dataset.batch(idx)
        x = b["image"]
        rec = _edit(editor, x, b["aus"], b["aus"], idx)
        out["l1"].append(l1_error(rec, x))
        out["psnr"].append(psnr(rec, x))
        out["ssim"].append(ssim(rec, x))
    return {k: torch.cat(v) for k, v in out.items()}


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
    edit = _edit(editor, b["image"], v_src, v_tgt, indices)
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


def inception_score_difference(a, b, *, metric: str = "is_own", splits: int = 10):
    """IS of evaluation table ``a`` minus ``b`` (Table 1's "IS ± std" over ``splits`` splits) as a
    :class:`faceedit_nb.claims.Difference`: a normal interval whose standard error combines the two
    tables' spreads over their splits, ``sqrt((s_a^2 + s_b^2) / splits)``. IS is a statistic of the whole
    set of edits, not a mean per edit, so :func:`faceedit_nb.claims.metric_difference` cannot pair it."""
    from ...claims import Z95, Difference

    def row(t):
        r = [r for r in t.rows if r["metric"] == metric and r["class"] == "overall"]
        if not r or r[0]["std"] is None:
            raise KeyError(f"the table has no overall {metric!r} with a spread over splits")
        return r[0]
    ra, rb = row(a), row(b)
    est = ra["value"] - rb["value"]
    se = ((ra["std"] ** 2 + rb["std"] ** 2) / splits) ** 0.5
    return Difference(est, est - Z95 * se, est + Z95 * se, se, int(ra["n"]),
                      f"normal, spread over {splits} splits of {int(ra['n']):,} edits each side")


def photo_face(size: int) -> torch.Tensor | None:
    """A real photograph for Fig. 7: the face of scikit-image's bundled astronaut portrait (Eileen Collins,
    NASA; public domain), cropped and resized to ``size`` (1, 3, size, size) in [-1, 1]. None when
    scikit-image is not installed (it is optional: ``pip install scikit-image``)."""
    try:
        from skimage import data as skdata
    except ImportError:
        return None
    import torch.nn.functional as F
    photo = torch.from_numpy(skdata.astronaut()[PHOTO_CROP].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    return F.interpolate(photo, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def hard_cases(size: int, *, index: int = 2, seed: int = 0, n: int = 64, n_identities: int = 8) -> dict[str, torch.Tensor]:
    """Fig. 7's difficult inputs, each (1, 3, size, size): a SynthFaces test face with its mouth covered by a
    grey band (an occlusion), the same person rendered in the flat, untextured style (a "painting"), and
    :func:`photo_face` when scikit-image is installed."""
    from ...data import SynthFaces
    faces = {style: SynthFaces("test", size=size, n=n, n_identities=n_identities, seed=seed, au_mode="mixed",
                               flat_fraction=float(style == "flat")).batch(torch.tensor([index]))["image"]
             for style in ("photo", "flat")}
    occluded = faces["photo"].clone()
    occluded[:, :, int(0.62 * size):int(0.82 * size), int(0.3 * size):int(0.7 * size)] = 0.2
    cases = {"occluded": occluded, "flat style": faces["flat"]}
    photo = photo_face(size)
    if photo is not None:
        cases["photo (scikit-image)"] = photo
    return cases
