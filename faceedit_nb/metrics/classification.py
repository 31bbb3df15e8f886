"""Editing accuracy measured by a classifier: EEA, attribute accuracy, expression preservation error.

Each function takes the classifier's outputs on the *edited* images plus the labels of the edits and
returns a :class:`ClassRates`: a rate per class, the number of edits behind it, their mean over classes
and the pooled rate over all edits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ClassRates", "class_rates", "expression_editing_accuracy", "attribute_editing_accuracy",
           "expression_preservation_error"]


@dataclass
class ClassRates:
    """A rate per class (``nan`` where a class has no edits) and the number of edits behind each."""
    per_class: torch.Tensor  # (C,) float
    count: torch.Tensor  # (C,) long

    @property
    def mean(self) -> float:
        """Mean over the classes that have edits (the papers' "overall mean" over classes)."""
        return float(self.per_class[self.count > 0].mean()) if (self.count > 0).any() else float("nan")

    @property
    def pooled(self) -> float:
        """Share over all edits pooled (equal to :attr:`mean` when every class has as many edits)."""
        n = self.count.sum()
        return float((self.per_class.nan_to_num(0) * self.count).sum() / n) if n > 0 else float("nan")

    @property
    def n(self) -> int:
        return int(self.count.sum())


def class_rates(hit: torch.Tensor, group: torch.Tensor, num_classes: int) -> ClassRates:
    """Share of ``hit`` (bool, ``(N,)``) within each class of ``group`` (``(N,)``, 0..num_classes-1)."""
    hit, group = hit.reshape(-1), group.reshape(-1).long()
    if hit.shape != group.shape:
        raise ValueError(f"hit {tuple(hit.shape)} and group {tuple(group.shape)} must have one entry per edit")
    if group.numel() and (group.min() < 0 or group.max() >= num_classes):
        raise ValueError(f"class indices must lie in 0..{num_classes - 1}; got {int(group.min())}..{int(group.max())}")
    count = torch.bincount(group, minlength=num_classes)
    hits = torch.bincount(group, weights=hit.double(), minlength=num_classes)
    rate = torch.where(count > 0, hits / count.clamp(min=1), torch.full_like(hits, float("nan")))
    return ClassRates(rate.float(), count)


def expression_editing_accuracy(logits: torch.Tensor, target: torch.Tensor) -> ClassRates:
    """EEA: the share of edits that the expression classifier assigns to the target expression, per
    target expression (seg-hierarchical-gan.txt, Table 1 and Fig. 3a; StarGAN's classification error is
    1 - EEA; secgan.txt Sec. 4.4 "the percentage of images that can be correctly classified").

    ``logits``: ``(N, C)`` classifier outputs on the edited images; ``target``: ``(N,)`` target indices.
    """
    if logits.dim() != 2 or len(logits) != len(target):
        raise ValueError(f"expected logits (N, C) and targets (N,); got {tuple(logits.shape)}, {tuple(target.shape)}")
    return class_rates(logits.argmax(1) == target.long(), target, logits.shape[1])


def attribute_editing_accuracy(logits: torch.Tensor, target: torch.Tensor, edited: torch.Tensor) -> ClassRates:
    """Attribute editing accuracy of AttGAN / STGAN / SeCGAN (secgan.txt Sec. 4.4, Fig. 4): an edit of
    attribute ``k`` counts as correct when the attribute classifier's prediction of attribute ``k``
    (logit > 0) equals the target value of ``k``; reported per edited attribute.

    ``logits``: ``(N, A)`` multi-label classifier outputs on the edited images; ``target``: ``(N, A)`` 0/1
    target vectors; ``edited``: ``(N,)`` the column edited in each row (its class).
    """
    if logits.shape != target.shape or logits.dim() != 2 or len(edited) != len(logits):
        raise ValueError(f"expected logits and targets (N, A) and edited (N,); got {tuple(logits.shape)}, "
                         f"{tuple(target.shape)}, {tuple(edited.shape)}")
    rows = torch.arange(len(edited))
    edited = edited.long()
    hit = (logits[rows, edited] > 0) == (target[rows, edited] > 0.5)
    return class_rates(hit, edited, logits.shape[1])


def expression_preservation_error(logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> ClassRates:
    """Expression preservation error per target expression (seg-hierarchical-gan.txt, Fig. 3b).

    The paper names the figure "expression preservation error" and describes it only as "the preservation
    error of other expressions ... a lower error rate for most classes, which shows that it translates facial
    expressions with higher accuracy by modifying only the parts related to the target expression"; it
    gives no formula. The book reads it as: among the edits *to* target ``c`` whose source expression
    differs from ``c``, the share that the classifier still assigns to the **source** expression (the old
    expression was preserved instead of replaced). Edits whose source equals the target, or whose source
    is unknown (negative), are left out; the counts say how many edits remain.
    """
    source, target = source.long(), target.long()
    keep = (source >= 0) & (source != target)
    return class_rates((logits.argmax(1) == source)[keep], target[keep], logits.shape[1])
