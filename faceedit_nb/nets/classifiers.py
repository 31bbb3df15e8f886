"""The evaluation classifiers: expression (VGG-16), attributes (STGAN's classifier) and AU intensities.

* :class:`VGGClassifier`: VGG-16 (Simonyan and Zisserman, ICLR 2015, configuration D) with batch norm.
  Bodur et al. "train VGG-16 as an expression classifier on the real train set" to measure expression
  editing accuracy, following StarGAN (seg-hierarchical-gan.txt, Sec. 4); SeCGAN uses "external
  classifiers pre-trained on the training set of CelebA and RaFD" (secgan.txt, Sec. 4). 8 classes in
  ``labels.EXPRESSIONS`` (RaFD) order.
* :class:`AttributeClassifier`: the attribute classifier of STGAN's evaluation
  (``csmliu/STGAN:att_classification/models.py``), also MatchGAN's GAN-train/GAN-test classifier:
  ten 3x3 conv + BN + ReLU layers in five pairs of widths dim/2, dim, 2dim, 4dim, 8dim, each pair
  followed by a 2x2 max-pool; FC to 16 dim (512 at the default dim 32), ReLU, FC to the attributes
  (13 in ``labels.ATTRIBUTES`` order). Conv layers have no bias (BN follows), as in the original.
* :class:`AURegressor`: the same network with 17 sigmoid outputs in ``labels.AUS`` order, in [0, 1]
  (OpenFace intensity / 5). It stands in for OpenFace 2.0 when measuring Ling et al.'s expression
  distance ED, the L2 distance between the AUs of an edited image and the target AUs
  (relative-au-msf.txt, Sec. 4.2).

Inputs are image batches B x 3 x S x S in [-1, 1], S a multiple of 32 (five 2x2 pools).
Width and depth are arguments so that small profiles can shrink the networks; the defaults are the
papers' sizes.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .. import labels as L

__all__ = ["VGG16_STAGES", "conv_bn_relu", "conv_stages", "VGGClassifier", "AttributeClassifier",
           "AURegressor"]

# VGG-16 (configuration D): (output channels, 3x3 convs) of each of the five stages, each ending in a pool.
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv (no bias) + batch norm + ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def conv_stages(stages: Sequence[Sequence[int]], c_in: int = 3) -> tuple[nn.Sequential, int]:
    """Stages of ``n`` conv-BN-ReLU layers of ``c`` channels, each followed by a 2x2 max-pool.

    ``stages`` is a sequence of ``(channels, convs)``; returns the module and its output channels.
    """
    layers: list[nn.Module] = []
    for c, n in stages:
        if c < 1 or n < 1:
            raise ValueError(f"every stage needs at least one conv of at least one channel; got {tuple(stages)}")
        for _ in range(n):
            layers.append(conv_bn_relu(c_in, c))
            c_in = c
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers), c_in


def _feature_side(image_size: int, n_pools: int) -> int:
    side = image_size // 2 ** n_pools
    if side < 1 or side * 2 ** n_pools != image_size:
        raise ValueError(f"image_size must be a positive multiple of {2 ** n_pools} (the network halves it "
                         f"{n_pools} times); got {image_size}")
    return side


def _check_images(x: torch.Tensor, image_size: int, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != image_size or x.shape[3] != image_size:
        raise ValueError(f"{name} expects images B x 3 x {image_size} x {image_size}; got {tuple(x.shape)}")


class VGGClassifier(nn.Module):
    """VGG-16 with batch norm for ``num_classes`` classes (default: the 8 RaFD expressions).

    Args:
        num_classes: outputs (logits).
        image_size: input side; the last stage ends at ``image_size / 32`` (2 x 2 at 64 px), which is
            flattened into the first fully connected layer (VGG's 7 x 7 at 224 px).
        stages: ``(channels, convs)`` per stage (default VGG-16); ``width`` multiplies every channel count.
        fc_dim: width of the two hidden fully connected layers (4096 in VGG-16).
        dropout: dropout before each hidden FC (0.5 in VGG-16).
    """

    def __init__(self, num_classes: int = len(L.EXPRESSIONS), image_size: int = 64,
                 stages: Sequence[Sequence[int]] = VGG16_STAGES, width: float = 1.0, fc_dim: int = 4096,
                 dropout: float = 0.5):
        super().__init__()
        stages = [(max(1, int(round(c * width))), int(n)) for c, n in stages]
        side = _feature_side(image_size, len(stages))
        self.image_size = image_size
        self.features, c = conv_stages(stages)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * side * side, fc_dim), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(fc_dim, fc_dim), nn.ReLU(inplace=True), nn.Linear(fc_dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.image_size, type(self).__name__)
        return self.classifier(self.features(x))


def _stgan_stages(dim: int, stages: int = 5) -> list[tuple[int, int]]:
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even number >= 2 (the first convs have dim / 2 channels); got {dim}")
    if not 1 <= stages <= 5:
        raise ValueError(f"the STGAN classifier has 1 to 5 conv pairs; got stages={stages}")
    return [(dim // 2, 2), (dim, 2), (dim * 2, 2), (dim * 4, 2), (dim * 8, 2)][:stages]


class AttributeClassifier(nn.Module):
    """STGAN's evaluation classifier: logits of ``num_attributes`` binary attributes (default 13).

    ``dim`` is STGAN's width parameter (32 in ``att_classification/models.py``, giving FC 512);
    ``stages`` keeps the first conv pairs only (5 in STGAN): with 4 the FC layer reads a 4 x 4 map at 64 px.
    Trained with the sigmoid cross-entropy on 0/1 labels; an attribute is predicted present when its
    logit is positive.
    """

    def __init__(self, num_attributes: int = len(L.ATTRIBUTES), dim: int = 32, image_size: int = 64,
                 stages: int = 5):
        super().__init__()
        stages = _stgan_stages(dim, stages)
        side = _feature_side(image_size, len(stages))
        self.image_size = image_size
        self.features, c = conv_stages(stages)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, dim * 16), nn.ReLU(inplace=True),
                                        nn.Linear(dim * 16, num_attributes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.image_size, type(self).__name__)
        return self.classifier(self.features(x))


class AURegressor(AttributeClassifier):
    """AU intensities in [0, 1] (17 in ``labels.AUS`` order): STGAN's classifier with a sigmoid head.

    :meth:`forward` returns the intensities; :meth:`logits` the pre-sigmoid values. ``stages=4`` drops the
    last conv pair and pool, so the head sees where on the face a change is (a 4 x 4 map at 64 px).
    """

    def __init__(self, num_aus: int = len(L.AUS), dim: int = 32, image_size: int = 64, stages: int = 5):
        super().__init__(num_aus, dim, image_size, stages)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))
