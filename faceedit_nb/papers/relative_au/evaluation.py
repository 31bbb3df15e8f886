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

from ...metrics.au_edits import (REGION_THRESHOLD, apply_editor, locality_share, relative_edit_errors,
                                 single_au_edits, true_region)
from ...metrics.image import l1_error, psnr, ssim

__all__ = ["photo_face", "hard_cases", "inception_score_difference", "reconstruction_errors", "single_au_edits", "true_region", "locality_share", "relative_edit_errors",
           "REGION_THRESHOLD"]

PHOTO_CROP = (slice(20, 250), slice(140, 370))  # the face in scikit-image's 512 x 512 astronaut portrait


@torch.no_grad()
def reconstruction_errors(editor, dataset, n: int, *, batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Table 3: per test face, L1 (on [0, 1]), PSNR (dB) and SSIM between the face and ``editor(x, v_src,
    v_src)``, the edit to its own AUs."""
    out = {"l1": [], "psnr": [], "ssim": []}
    for lo in range(0, n, batch_size):
        idx = torch.arange(lo, min(n, lo + batch_size))
        b = dataset.batch(idx)
        x = b["image"]
        rec = apply_editor(editor, x, b["aus"], b["aus"], idx)
        out["l1"].append(l1_error(rec, x))
        out["psnr"].append(psnr(rec, x))
        out["ssim"].append(ssim(rec, x))
    return {k: torch.cat(v) for k, v in out.items()}


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
