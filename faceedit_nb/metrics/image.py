"""Pixel metrics of an image against a reference (L1, PSNR, SSIM) and the segmentation metric mIoU.

Images are batches ``(B, 3, H, W)`` in [-1, 1], the book's convention; every pixel metric works on the
[0, 1] scale (``(x + 1) / 2``), the usual convention for PSNR and SSIM, so an L1 of 0.02 is 2% of the
intensity range. Each function returns one value per image; average them yourself (the harness reports
the mean over images, as relative-au-msf.txt Table 3 does).
"""
from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

__all__ = ["l1_error", "psnr", "ssim", "confusion_matrix", "iou_per_class", "iou_from_confusion", "mean_iou"]


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


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004; relative-au-msf.txt, Table 3): torchmetrics' SSIM
    with the standard 11 x 11 Gaussian window (sigma 1.5), k1 = 0.01, k2 = 0.03, on the [0, 1] scale,
    averaged over channels and pixels."""
    p, t = _unit_pair(pred, target)
    if min(p.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11 x 11 pixels (its window); got {tuple(p.shape[-2:])}")
    return structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")


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
