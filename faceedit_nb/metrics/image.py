"""Pixel metrics of an image against a reference (L1, PSNR, SSIM) and the segmentation metric mIoU.

Images are batches ``(B, 3, H, W)`` in [-1, 1], the book's convention; every pixel metric works on the
[0, 1] scale (``(x + 1) / 2``), the usual convention for PSNR and SSIM, so an L1 of 0.02 is 2% of the
intensity range. Each function returns one value per image; average them yourself (the harness reports
the mean over images, as relative-au-msf.txt Table 3 does).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["l1_error", "psnr", "ssim", "confusion_matrix", "confusion_per_image", "iou_per_class", "iou_from_confusion",
           "mean_iou"]


def _unit_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two image batches of the same shape (B, C, H, W); got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    return (pred.float() + 1) / 2, (target.float() + 1) / 2


def l1_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel difference per image on the [0, 1] scale (relative-au-msf.txt, Table 3 "L1")."""
    p, t = _unit_pair(pred, target)
    return (p - t).abs().flatten(1).mean(1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, ``10 log10(1 / MSE)`` on the [0, 1] scale
    (relative-au-msf.txt, Table 3). Identical images give ``inf``."""
    p, t = _unit_pair(pred, target)
    mse = (p - t).square().flatten(1).mean(1).double()
    return (10 * torch.log10(1.0 / mse)).float()  # 1/0 -> inf, log10(inf) -> inf


def _gaussian_window(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The normalised 1-D Gaussian of SSIM's window: ``2 * int(3.5 sigma + 0.5) + 1`` taps (11 for sigma 1.5)."""
    half = int(3.5 * sigma + 0.5)
    x = torch.arange(-half, half + 1, dtype=dtype, device=device)
    g = torch.exp(-(x / sigma).square() / 2)
    return g / g.sum()


def _band(window: torch.Tensor, n: int) -> torch.Tensor:
    """``n x (n + len(window) - 1)``: row i is ``window`` at columns i .. i + len(window) - 1 (a valid
    1-D convolution as a matrix product)."""
    k = len(window)
    band = torch.zeros(n, n + k - 1, dtype=window.dtype, device=window.device)
    idx = torch.arange(n, device=window.device)[:, None] + torch.arange(k, device=window.device)
    return band.scatter_(1, idx, window.expand(n, k).contiguous())


def ssim(pred: torch.Tensor, target: torch.Tensor, *, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004; relative-au-msf.txt, Table 3) on the [0, 1] scale,
    averaged over channels and pixels: the standard 11 x 11 Gaussian window (sigma 1.5), k1 = 0.01,
    k2 = 0.03, images padded by reflection, as torchmetrics' ``structural_similarity_index_measure``
    computes it. The window is applied as two 1-D passes (the 2-D Gaussian is their product), each a product
    with a banded matrix: the same numbers to float rounding, faster on a CPU (``benchmarks/ssim_speed.py``)."""
    p, t = _unit_pair(pred, target)
    half = int(3.5 * sigma + 0.5)
    if min(p.shape[-2:]) < 2 * half + 1:
        raise ValueError(f"SSIM needs images of at least {2 * half + 1} x {2 * half + 1} pixels (its window); "
                         f"got {tuple(p.shape[-2:])}")
    b = p.shape[0]
    # a local variance is the difference of two near-equal sums: taken about each image's own mean (a shift
    # changes no variance), float32 keeps it exact enough (about 0 a flat image lost 5e-5 of its SSIM)
    mean_p, mean_t = p.mean((2, 3), keepdim=True), t.mean((2, 3), keepdim=True)
    p, t = p - mean_p, t - mean_t
    stack = torch.cat((p, t, p * p, t * t, p * t))                      # 5B x C x H x W
    stack = F.pad(stack, (half, half, half, half), mode="reflect")
    g = _gaussian_window(sigma, p.dtype, p.device)
    # each 1-D pass as a product with a banded matrix (row i holds the window at columns i..i+2*half)
    rows = _band(g, stack.shape[-2] - 2 * half)                        # H x (H + 2 half)
    cols = _band(g, stack.shape[-1] - 2 * half)                        # W x (W + 2 half)
    dp, dt, pp, tt, pt = (rows @ stack @ cols.T).split(b)              # local means (about the image means), ...
    c1, c2 = k1 ** 2, k2 ** 2                                            # data range 1
    var_p = (pp - dp.square()).clamp(min=0)
    var_t = (tt - dt.square()).clamp(min=0)
    cov = pt - dp * dt
    mu_p, mu_t = dp + mean_p, dt + mean_t
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p.square() + mu_t.square() + c1) * (var_p + var_t + c2))
    return index.reshape(b, -1).mean(1)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = None) -> torch.Tensor:
    """``(C, C)`` pixel counts, rows = ground-truth class, columns = predicted class.

    ``pred`` is a label map ``(B, H, W)`` or logits ``(B, C, H, W)`` (arg-maxed); ``target`` a label map.
    Pixels whose target equals ``ignore_index`` are left out.
    """
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} differ in shape")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    pred, target = pred[keep], target[keep]
    for name, t in (("prediction", pred), ("ground truth", target)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in 0..{num_classes - 1}; got {int(t.min())}..{int(t.max())}")
    return torch.bincount(target * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def confusion_per_image(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, C, C)`` pixel counts of each image, rows = ground-truth class, columns = predicted class: the
    per-image parts of :func:`confusion_matrix` (their sum over the batch is its matrix). ``pred`` and
    ``target`` are label maps ``(B, H, W)``."""
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} must be label maps "
                         "(B, H, W) of one shape")
    pred, target = pred.long(), target.long()
    for name, t in (("prediction", pred), ("ground truth", target)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} labels must lie in 0..{num_classes - 1}; got {int(t.min())}..{int(t.max())}")
    b = pred.shape[0]
    cell = (torch.arange(b, device=pred.device).view(b, 1, 1) * num_classes + target) * num_classes + pred
    return torch.bincount(cell.reshape(-1), minlength=b * num_classes ** 2).reshape(b, num_classes, num_classes)


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every class, ``TP / (TP + FP + FN)``, from a confusion matrix (rows =
    ground truth). Classes absent from the ground truth get ``nan``: they do not enter the mean."""
    c = confusion.double()
    tp = c.diag()
    gt, predicted = c.sum(1), c.sum(0)
    iou = tp / (gt + predicted - tp)
    return torch.where(gt > 0, iou, torch.full_like(iou, float("nan"))).float()


def iou_from_confusion(conf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class IoU (:func:`iou_per_class`, 0 for a class absent from the ground
    truth) and which classes occur in the ground truth."""
    iou = iou_per_class(conf)
    present = ~iou.isnan()
    return iou.nan_to_num(0.0), present


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
             ignore_index: int | None = None) -> tuple[float, torch.Tensor]:
    """Mean IoU over the classes present in the ground truth, and the per-class IoUs
    (seg-hierarchical-gan.txt, Tables 1-2). The confusion matrix is summed over the whole batch first
    (data-set mIoU, not a mean of per-image mIoUs)."""
    iou = iou_per_class(confusion_matrix(pred, target, num_classes, ignore_index))
    return float(iou.nanmean()), iou
