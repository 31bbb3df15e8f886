"""Per-edit distances in a network's embedding space: identity (ID distance, ACD) and expression (ED).

All take two ``(N, D)`` batches of vectors, row ``i`` of one paired with row ``i`` of the other, and
return ``(N,)``; the harness reports their mean over edits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["id_distance", "average_content_distance", "expression_distance"]


def _pair(a: torch.Tensor, b: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"{what}: expected two (N, D) batches of the same shape; got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return a.float(), b.float()


def id_distance(edited: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Cosine distance ``1 - cos(e_edit, e_source)`` of identity embeddings: the "ID loss" of
    seg-hierarchical-gan.txt (Table 1: "the cosine distance of ArcFace embeddings between the synthetic
    images and their corresponding real images"). 0 for the same identity direction, up to 2."""
    a, b = _pair(edited, source, "id_distance")
    return (1 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).clamp(0, 2)  # no -1e-8 from rounding


def average_content_distance(edited: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """ACD: the L2 distance between the face embeddings of the input and the edited image
    (relative-au-msf.txt, Sec. 4.2, with the dlib/face_recognition 128-d embedding in the paper).

    With L2-normalised embeddings (the book's identity oracle) ``ACD = sqrt(2 * ID distance)``: the two
    metrics rank editors identically and differ only in scale.
    """
    a, b = _pair(edited, source, "average_content_distance")
    return (a - b).norm(dim=1)


def expression_distance(edited_aus: torch.Tensor, target_aus: torch.Tensor) -> torch.Tensor:
    """ED: the L2 distance between the AUs an AU regressor reads from the edited image and the target AUs
    (relative-au-msf.txt, Sec. 4.2: "calculate l2-distance between the generated and target AUs"). The
    book's AUs are on GANimation's [0, 1] scale (OpenFace's 0-5 divided by 5)."""
    a, b = _pair(edited_aus, target_aus, "expression_distance")
    return (a - b).norm(dim=1)
