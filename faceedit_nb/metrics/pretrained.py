"""ImageNet feature networks for the papers' own FID, IS and ssFID, loaded from a local weights file.

The build machines are offline and no ImageNet weights ship with any installable package, so these
networks exist only when a reader supplies the file. Without one the book uses its own feature network
("FID (own features)", see :mod:`faceedit_nb.metrics.distribution`), whose numbers are *not* comparable to
the Inception FIDs printed in the papers.

* :func:`load_inception` accepts either
  - the pytorch-fid "FID Inception" weights (``pt_inception-2015-12-05-6726825d.pth``: the TF-slim
    Inception-v3 of the original FID and IS code, 1008 logits), or
  - torchvision's ``inception_v3`` ImageNet weights (``inception_v3_google-0cc3c7bd.pth``, 1000 logits).
  Features: the 2048-d pool3 activations; logits for the Inception Score. Images are resized to 299 x 299
  (bilinear) and fed on the [-1, 1] scale both networks expect.
* :func:`load_swav` accepts the SwAV ResNet-50 ImageNet weights (``swav_800ep_pretrain.pth.tar``, as
  ``torch.hub.load('facebookresearch/swav:main', 'resnet50')`` loads them): the ssFID of secgan.txt,
  following stanis-morozov/self-supervised-gan-eval: 2048-d pooled features, images resized to 224,
  ImageNet mean/std normalisation.

Files are read with ``torch.load(weights_only=True)``: tensors only, no code is unpickled.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import inception as tv_inception
from torchvision.models import resnet50

__all__ = ["load_inception", "load_swav", "InceptionFeatures", "SwAVFeatures", "read_state_dict"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file (``weights_only=True``), unwrapped from ``{"state_dict": ...}`` and
    with DataParallel's ``module.`` prefixes removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no weights file at {path}. Download it on a machine with internet "
                                f"access and pass its local path (see faceedit_nb.metrics.pretrained).")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated files, non-tensor payloads
        raise ValueError(f"{what}: {path} is not a tensors-only PyTorch checkpoint ({err.__class__.__name__}: "
                         f"{err}); give the state-dict file itself") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{what}: {path} does not hold a state dict (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _load_strict(model: nn.Module, sd: dict, what: str, path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{what}: {path} does not match the network: {len(missing)} missing keys "
                         f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
                         f"{len(wrong)} shape mismatches {wrong[:3]}. Is it the right weights file?")
    model.load_state_dict(sd)


# --- Inception-v3 ----------------------------------------------------------------------------------
# pytorch-fid's FID Inception is torchvision's Inception-v3 with the TF pooling of the original graph:
# average pools that exclude the padding, and a max pool in the last block's pool branch.

class _FIDInceptionA(tv_inception.InceptionA):
    def _forward(self, x):
        out = super()._forward(x)
        out[-1] = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return out


class _FIDInceptionC(tv_inception.InceptionC):
    def _forward(self, x):
        out = super()._forward(x)
        out[-1] = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return out


class _FIDInceptionE1(tv_inception.InceptionE):
    def _forward(self, x):
        out = super()._forward(x)
        out[-1] = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return out


class _FIDInceptionE2(tv_inception.InceptionE):
    def _forward(self, x):
        out = super()._forward(x)
        out[-1] = self.branch_pool(F.max_pool2d(x, 3, stride=1, padding=1))
        return out


def _inception(num_classes: int, aux_logits: bool, fid_blocks: bool) -> tv_inception.Inception3:
    net = tv_inception.Inception3(num_classes=num_classes, aux_logits=aux_logits, transform_input=False,
                                  init_weights=False)
    if fid_blocks:
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = (_FIDInceptionA(192, 32), _FIDInceptionA(256, 64),
                                                    _FIDInceptionA(288, 64))
        net.Mixed_6b, net.Mixed_6c = _FIDInceptionC(768, 128), _FIDInceptionC(768, 160)
        net.Mixed_6d, net.Mixed_6e = _FIDInceptionC(768, 160), _FIDInceptionC(768, 192)
        net.Mixed_7b, net.Mixed_7c = _FIDInceptionE1(1280), _FIDInceptionE2(2048)
    return net


class InceptionFeatures(nn.Module):
    """Inception-v3 as a feature extractor: ``forward(images)`` gives the 2048-d pool3 features,
    :meth:`logits` the class logits (1008 for the FID Inception, 1000 for torchvision's)."""

    num_features = 2048

    def __init__(self, net: tv_inception.Inception3, flavour: str):
        super().__init__()
        self.net, self.flavour = net.eval(), flavour
        self.num_classes = net.fc.out_features

    def train(self, mode: bool = True):
        return super().train(False)  # never leaves evaluation mode (batch norm, dropout)

    def _pool3(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
                      n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b,
                      n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c, n.avgpool):
            x = layer(x)
        return x.flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """2048-d pool3 features of images in [-1, 1] (any size; resized to 299)."""
        return self._pool3(images)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits, for the Inception Score."""
        return self.net.fc(self._pool3(images))


def load_inception(path: str | os.PathLike) -> InceptionFeatures:
    """Inception-v3 from a local weights file: pytorch-fid's FID Inception (1008 classes) or torchvision's
    ImageNet ``inception_v3`` (1000 classes), told apart by the shape of ``fc.weight``."""
    what = "Inception-v3 weights"
    sd = read_state_dict(path, what)
    fc = sd.get("fc.weight")
    if fc is None or tuple(fc.shape) not in ((1008, 2048), (1000, 2048)):
        raise ValueError(f"{what}: {path} has no Inception-v3 classifier (fc.weight of shape (1008, 2048) for "
                         f"pytorch-fid's pt_inception-2015-12-05 weights or (1000, 2048) for torchvision's "
                         f"inception_v3_google); found {None if fc is None else tuple(fc.shape)}")
    fid_flavour = fc.shape[0] == 1008
    net = _inception(fc.shape[0], aux_logits=any(k.startswith("AuxLogits.") for k in sd), fid_blocks=fid_flavour)
    _load_strict(net, sd, what, path)
    return InceptionFeatures(net, "pytorch-fid" if fid_flavour else "torchvision")


# --- SwAV ResNet-50 --------------------------------------------------------------------------------

class SwAVFeatures(nn.Module):
    """SwAV ResNet-50 trunk: 2048-d pooled features of images in [-1, 1], resized to 224 and normalised
    with the ImageNet mean and std (stanis-morozov/self-supervised-gan-eval)."""

    num_features = 2048

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float(), size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        return self.net(((x + 1) / 2 - self.mean) / self.std)


def load_swav(path: str | os.PathLike) -> SwAVFeatures:
    """SwAV ResNet-50 from a local file (the released ``swav_800ep_pretrain.pth.tar``); its projection
    head and prototypes are dropped, as the torch-hub loader does."""
    what = "SwAV ResNet-50 weights"
    sd = read_state_dict(path, what)
    sd = {k: v for k, v in sd.items() if not k.startswith(("projection_head.", "prototypes.", "fc."))}
    net = resnet50(weights=None)
    net.fc = nn.Identity()
    _load_strict(net, sd, what, path)
    return SwAVFeatures(net)
