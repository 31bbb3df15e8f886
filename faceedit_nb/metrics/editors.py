"""Two calibration editors: what a metric says about doing nothing, and about a perfect edit.

An *editor* is any callable ``(images, source_labels, target_labels) -> images`` (images ``(B, 3, S, S)``
in [-1, 1]; labels as the protocol gives them, see :mod:`faceedit_nb.metrics.protocols`). An editor with
an attribute ``wants_indices = True`` is also passed ``indices=`` (the data-set indices of the images):
only the ground-truth editor needs them.
"""
from __future__ import annotations

import torch

from .. import labels as L
from .protocols import STARGAN_COLUMNS

__all__ = ["identity_editor", "GroundTruthEditor", "ground_truth_editor"]


def identity_editor(images: torch.Tensor, source_labels: torch.Tensor, target_labels: torch.Tensor) -> torch.Tensor:
    """Returns its input unchanged. Its editing accuracy is the share of test images the classifier already
    sees at the target; its ID distance is 0; its ground-truth edit error is the true size of the edit."""
    return images


class GroundTruthEditor:
    """SynthFaces' own answer to every edit: the same face re-rendered with the target expression, AUs or
    attributes (:meth:`SynthFaces.render_targets`). Its ground-truth edit error is 0 by construction;
    its editing accuracy is the oracle's accuracy on such faces.

    The target's kind is read from its shape: ``(B,)`` integers = expression indices, ``(B, 17)`` = AUs,
    ``(B, 13)`` = attributes, ``(B, 5)`` = StarGAN's 5 attributes (the other 8 kept from the source).
    """

    wants_indices = True

    def __init__(self, dataset):
        if not hasattr(dataset, "render_targets"):
            raise TypeError(f"the ground-truth editor needs a data set that can re-render its samples with new "
                            f"labels (SynthFaces); {type(dataset).__name__} cannot")
        self.dataset = dataset

    def __call__(self, images: torch.Tensor, source_labels: torch.Tensor, target_labels: torch.Tensor, *,
                 indices: torch.Tensor) -> torch.Tensor:
        t = target_labels.detach().cpu()
        idx = torch.as_tensor(indices).cpu()
        if t.dim() == 1:
            out = self.dataset.render_targets(idx, expression=t.long())
        elif t.shape[1] == len(L.AUS):
            out = self.dataset.render_targets(idx, aus=t.float())
        elif t.shape[1] == len(L.ATTRIBUTES):
            out = self.dataset.render_targets(idx, attributes=t.float())
        elif t.shape[1] == len(L.STARGAN_CELEBA_ATTRIBUTES):
            full = self.dataset.batch(idx)["attributes"].clone()
            full[:, STARGAN_COLUMNS] = t.float()
            out = self.dataset.render_targets(idx, attributes=full)
        else:
            raise ValueError(f"cannot tell the kind of target from its shape {tuple(t.shape)}: expected (B,) "
                             f"expressions, (B, {len(L.AUS)}) AUs, (B, {len(L.ATTRIBUTES)}) or "
                             f"(B, {len(L.STARGAN_CELEBA_ATTRIBUTES)}) attributes")
        return out["image"].to(images.device, images.dtype)

    def __repr__(self) -> str:
        return f"GroundTruthEditor({self.dataset!r})"


def ground_truth_editor(dataset) -> GroundTruthEditor:
    """The ground-truth editor of a SynthFaces data set (see :class:`GroundTruthEditor`)."""
    return GroundTruthEditor(dataset)
