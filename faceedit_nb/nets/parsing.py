"""Face parsers: BiSeNet and UNet, the tempered softmax that turns their logits into soft masks, and training.

Bodur et al. condition their local generators on a semantic segmentation network S(x_s; θ_s) and
use "BiSeNet [41] and UNet [18] one after another", pre-trained on CelebAMask-HQ and then trained end
to end with the GANs (seg-hierarchical-gan.txt, Sec. 3.1 and Appendix Table A1). The soft masks are

    M = softmax(φ · S(x_s; θ_s)),  M ∈ R^{w x h x c}                          (Eq. 1)

and each local part is ``x_s^p = M_p ⊗ x_s`` (Eq. 2) for p in {left eye, right eye, nose, mouth}
(``labels.LOCAL_PARTS``). :func:`tempered_softmax` is Eq. 1 written with a temperature τ = 1 / φ.

Networks
--------
* :class:`BiSeNet`: the face-parsing model of ``zllrunning/face-parsing.PyTorch`` (Yu et al., ECCV 2018):
  a ResNet-18 context path (torchvision's ``resnet18(weights=None)``; ImageNet weights only from a local
  file, :meth:`BiSeNet.load_backbone`) with attention refinement modules on the stride-16 and stride-32
  features and a global-context branch; a spatial path (face-parsing.PyTorch replaces BiSeNet's three
  stride-2 convs by ResNet's stride-8 feature, ``spatial_path="resnet"``, the default; the original
  paper's convs are ``spatial_path="conv"``); the feature fusion module (256 channels); a main head and
  two auxiliary heads, all upsampled bilinearly to the input size. Module names follow
  face-parsing.PyTorch's ``model.py``, so its released checkpoint can be loaded
  (:meth:`BiSeNet.load_face_parsing`), its classes re-ordered to ours.
  The output is at stride 8 before upsampling: at 64 px that is an 8 x 8 grid, too coarse for eyes,
  brows and lips a few pixels thick; the repository runs it at 512 px.
* :class:`UNet`: Ronneberger et al. (MICCAI 2015) with padded convs and batch norm: ``depth``
  stride-2 levels of two 3x3 conv-BN-ReLU, transposed-conv upsampling, skip concatenations,
  full-resolution logits.

Both take images B x 3 x H x W in [-1, 1] and return logits B x n_classes x H x W in the canonical
``labels.PARSING_CLASSES`` order; :meth:`heads` returns every head (BiSeNet: main + 2 auxiliary).

Loss
----
:func:`parser_loss` defaults to the OHEM cross-entropy of face-parsing.PyTorch (pixels whose loss is
above -log 0.7, at least 1/16 of them, summed over the heads). Why: background, skin and hair fill
~85% of a SynthFaces face (at 64 px an eye is ~11 pixels, a brow ~8), and plain cross-entropy spends
most of its gradient on pixels that are already right; OHEM keeps the hard pixels, which are the thin
parts and the borders. ``kind="ce"`` gives plain cross-entropy.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .. import labels as L
from ..device import DEVICE, autocast, memory_layout
from ..progress import report as report_progress

__all__ = ["BiSeNet", "UNet", "tempered_softmax", "soft_part_masks", "ohem_cross_entropy", "parser_loss",
           "train_parser", "IMAGENET_MEAN", "IMAGENET_STD", "N_CLASSES"]

N_CLASSES = len(L.PARSING_CLASSES)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation of ImageNet-pretrained ResNets (and of
IMAGENET_STD = (0.229, 0.224, 0.225)   # face-parsing.PyTorch's inputs)


# --- Eq. 1 ----------------------------------------------------------------------------------------------
def tempered_softmax(logits: torch.Tensor, temperature: float = 1.0, dim: int = 1) -> torch.Tensor:
    """Soft masks ``softmax(logits / temperature)`` over the class dimension (Eq. 1, with φ = 1 / τ).

    As τ → 0 the masks approach the one-hot arg-max labels (Bodur et al. "set the temperature φ to a
    positive value in order to obtain the probability of the target semantic category equal to 1 and
    the rest to 0"); large τ flattens them towards 1 / c. Differentiable for every τ > 0.
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number; got {temperature!r}")
    return torch.softmax(logits / temperature, dim=dim)


def soft_part_masks(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The four local-part masks of Bodur et al. (Sec. 3.1) from 19-class parser logits.

    Returns B x 4 x H x W: left eye + brow, right eye + brow, nose, mouth + lips
    (``labels.LOCAL_PARTS[1:]``), each the sum of its classes' tempered-softmax probabilities; multiply
    with the image for Eq. 2 (``x_p = M_p * x``).
    """
    if logits.shape[1] != N_CLASSES:
        raise ValueError(f"expected {N_CLASSES}-class logits (labels.PARSING_CLASSES); got {logits.shape[1]}")
    m = tempered_softmax(logits, temperature, dim=1)
    table = L.TO_LOCAL_PARTS.to(logits.device)
    return torch.stack([m[:, table == p].sum(1) for p in range(1, len(L.LOCAL_PARTS))], 1)


# --- BiSeNet --------------------------------------------------------------------------------------------
def _init_kaiming(module: nn.Module) -> None:
    """face-parsing.PyTorch's initialisation of its own convs: kaiming_normal_(a=1), zero bias."""
    for m in module.children():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=1)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvBNReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, ks: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        _init_kaiming(self)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BiSeNetOutput(nn.Module):
    """A head: 3x3 conv-BN-ReLU then a 1x1 conv to the classes."""

    def __init__(self, c_in: int, c_mid: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_mid)
        self.conv_out = nn.Conv2d(c_mid, n_classes, 1, bias=False)
        _init_kaiming(self)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class AttentionRefinementModule(nn.Module):
    """ARM: features re-weighted per channel by a sigmoid of their global average (BiSeNet, Sec. 3.2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out)
        self.conv_atten = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(c_out)
        _init_kaiming(self)

    def forward(self, x):
        feat = self.conv(x)
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * atten


class ContextPath(nn.Module):
    """ResNet-18 + ARMs on the stride-16 and stride-32 features + a global-average context branch.

    Returns the stride-8 ResNet feature (128 ch), the refined context at stride 8 and at stride 16.
    """

    def __init__(self):
        super().__init__()
        self.resnet = torchvision.models.resnet18(weights=None)
        del self.resnet.fc, self.resnet.avgpool  # the classifier is not part of the backbone
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, padding=0)
        _init_kaiming(self)

    def forward(self, x):
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        feat8 = r.layer2(r.layer1(x))
        feat16 = r.layer3(feat8)
        feat32 = r.layer4(feat16)
        avg = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        feat32_sum = self.arm32(feat32) + avg  # broadcast = nearest upsampling of the 1 x 1 context
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up


class SpatialPath(nn.Module):
    """BiSeNet's original spatial path: three stride-2 conv-BN-ReLU (7x7, 3x3, 3x3) and a 1x1 to 128."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBNReLU(3, 64, ks=7, stride=2, padding=3)
        self.conv2 = ConvBNReLU(64, 64, ks=3, stride=2, padding=1)
        self.conv3 = ConvBNReLU(64, 64, ks=3, stride=2, padding=1)
        self.conv_out = ConvBNReLU(64, 128, ks=1, padding=0)

    def forward(self, x):
        return self.conv_out(self.conv3(self.conv2(self.conv1(x))))


class FeatureFusionModule(nn.Module):
    """FFM: concatenated spatial and context features, 1x1 conv-BN-ReLU, plus a squeeze-excitation residual."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.convblk = ConvBNReLU(c_in, c_out, ks=1, padding=0)
        self.conv1 = nn.Conv2d(c_out, c_out // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out // 4, c_out, 1, bias=False)
        _init_kaiming(self)

    def forward(self, fsp, fcp):
        feat = self.convblk(torch.cat([fsp, fcp], 1))
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat * atten + feat


def _read_state_dict(path, what: str, fix: str) -> dict:
    """A state dict from a local file, read with ``weights_only=True``, with clear errors."""
    path = Path(os.fspath(path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} does not exist. Fix: {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{what}: {path} cannot be read as a state dict with torch.load(weights_only=True) "
                         f"({type(err).__name__}: {err}). Fix: {fix}") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what}: {path} holds a {type(state).__name__}, not a state dict of tensors. Fix: {fix}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _check_keys(state: Mapping, model_state: Mapping, what: str, path, fix: str) -> None:
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in model_state.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{name} ({len(keys)}): {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}"
                 for name, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("shape mismatches", wrong)) if keys]
        raise ValueError(f"{what}: {path} does not match the network; " + "; ".join(parts) + f". Fix: {fix}")


class BiSeNet(nn.Module):
    """BiSeNet face parser (face-parsing.PyTorch layout), see the module docstring.

    Args:
        n_classes: output classes (19, ``labels.PARSING_CLASSES`` order).
        spatial_path: "resnet" (the ResNet stride-8 feature, as face-parsing.PyTorch) or "conv" (BiSeNet's
            three stride-2 convs).
        backbone_weights: optional local path of a torchvision ResNet-18 state dict (ImageNet weights,
            e.g. ``resnet18-f37072fd.pth``); None trains the backbone from scratch (nothing is downloaded).

    Inputs in [-1, 1] are mapped to ImageNet normalisation inside the network, so that ImageNet and
    face-parsing.PyTorch weights see the statistics they were trained with.
    """

    def __init__(self, n_classes: int = N_CLASSES, spatial_path: str = "resnet",
                 backbone_weights: str | os.PathLike | None = None):
        super().__init__()
        if spatial_path not in ("resnet", "conv"):
            raise ValueError(f"spatial_path must be 'resnet' or 'conv'; got {spatial_path!r}")
        self.n_classes, self.spatial_path = n_classes, spatial_path
        self.cp = ContextPath()
        if spatial_path == "conv":
            self.sp = SpatialPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        # x in [-1, 1] -> ((x + 1) / 2 - mean) / std = x * a + b
        self.register_buffer("_a", (0.5 / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_b", ((0.5 - mean) / std).view(1, 3, 1, 1), persistent=False)
        if backbone_weights is not None:
            self.load_backbone(backbone_weights)

    _BACKBONE_FIX = ("pass the local path of a torchvision ResNet-18 state dict (ImageNet weights, e.g. "
                     "resnet18-f37072fd.pth from download.pytorch.org/models), or backbone_weights=None to "
                     "train the backbone from scratch")

    def load_backbone(self, path: str | os.PathLike) -> "BiSeNet":
        """Load ResNet-18 weights (a torchvision state dict; ``fc.*`` is ignored) into the context path."""
        what = "BiSeNet backbone weights"
        state = {k: v for k, v in _read_state_dict(path, what, self._BACKBONE_FIX).items()
                 if not k.startswith("fc.")}
        target = self.cp.resnet.state_dict()
        _check_keys(state, target, what, path, self._BACKBONE_FIX)
        self.cp.resnet.load_state_dict(state)
        return self

    def load_face_parsing(self, path: str | os.PathLike) -> "BiSeNet":
        """Load a whole face-parsing.PyTorch checkpoint (e.g. ``79999_iter.pth``), mapping its class order
        (``labels.BISENET_CLASSES``) to ours. Needs ``n_classes=19`` and ``spatial_path="resnet"``.

        Note: the key names follow face-parsing.PyTorch's ``model.py``/``resnet.py``; the released file was
        not available to test against offline.
        """
        what, fix = "face-parsing.PyTorch checkpoint", ("pass the local path of face-parsing.PyTorch's "
                                                        "79999_iter.pth (BiSeNet, 19 classes)")
        if self.n_classes != N_CLASSES or self.spatial_path != "resnet":
            raise ValueError(f"{what}: build BiSeNet(n_classes={N_CLASSES}, spatial_path='resnet') to load it")
        state = dict(_read_state_dict(path, what, fix))
        _check_keys(state, self.state_dict(), what, path, fix)
        order = L.TO_BISENET  # row i of our head = row TO_BISENET[i] of theirs
        for head in ("conv_out", "conv_out16", "conv_out32"):
            key = f"{head}.conv_out.weight"
            state[key] = state[key][order]
        self.load_state_dict(state)
        return self

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Main, stride-8 auxiliary and stride-16 auxiliary logits, each upsampled to the input size."""
        size = x.shape[2:]
        x = x * self._a + self._b
        feat8, feat_cp8, feat_cp16 = self.cp(x)
        feat_sp = self.sp(x) if self.spatial_path == "conv" else feat8
        feat_fuse = self.ffm(feat_sp, feat_cp8)
        up = lambda t: F.interpolate(t, size, mode="bilinear", align_corners=True)  # noqa: E731
        return up(self.conv_out(feat_fuse)), up(self.conv_out16(feat_cp8)), up(self.conv_out32(feat_cp16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(x)[0]


# --- UNet -----------------------------------------------------------------------------------------------
def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """UNet (Ronneberger et al., 2015) with padded convs and batch norm.

    Args:
        n_classes: output classes (19).
        base: channels of the first level (64 in the paper); level i has ``base * 2**i``.
        depth: number of 2x downsamplings (4 in the paper); the input side must be a multiple of 2**depth.
    """

    def __init__(self, n_classes: int = N_CLASSES, base: int = 64, depth: int = 4):
        super().__init__()
        if base < 1 or depth < 1:
            raise ValueError(f"base and depth must be positive; got base={base}, depth={depth}")
        self.n_classes, self.depth = n_classes, depth
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.inc = _double_conv(3, widths[0])
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), _double_conv(widths[i], widths[i + 1]))
                                   for i in range(depth))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(depth)))
        self.up_convs = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.outc = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        k = 2 ** self.depth
        if h % k or w % k:
            raise ValueError(f"UNet(depth={self.depth}) needs an input side that is a multiple of {k}; "
                             f"got {h} x {w}")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            y = conv(torch.cat([skips.pop(), up(y)], 1))
        return self.outc(y)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self(x),)


# --- losses ---------------------------------------------------------------------------------------------
def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7,
                       min_fraction: float = 1 / 16, ignore_index: int = 255) -> torch.Tensor:
    """Online hard example mining cross-entropy (face-parsing.PyTorch's ``OhemCELoss``).

    The mean loss of the pixels whose loss exceeds ``-log(thresh)`` (predicted probability of the true
    class below ``thresh``); when fewer than ``min_fraction`` of the labelled pixels qualify, the mean
    of the ``min_fraction`` hardest pixels instead.
    """
    loss = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="none").flatten()
    loss = loss[target.flatten() != ignore_index]
    if loss.numel() == 0:
        return logits.sum() * 0.0
    n_min = max(1, int(loss.numel() * min_fraction))
    hard = loss[loss > -math.log(thresh)]
    if hard.numel() >= n_min:
        return hard.mean()
    return loss.topk(n_min).values.mean()


def parser_loss(outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor, kind: str = "ohem",
                **kwargs) -> torch.Tensor:
    """Sum over the parser's heads (BiSeNet: main + 2 auxiliary, as face-parsing.PyTorch) of the OHEM
    cross-entropy (``kind="ohem"``, default, see the module docstring) or the plain cross-entropy
    (``kind="ce"``). ``target`` is B x H x W in ``labels.PARSING_CLASSES`` order."""
    heads = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
    if kind == "ohem":
        return sum(ohem_cross_entropy(h, target, **kwargs) for h in heads)
    if kind == "ce":
        return sum(F.cross_entropy(h.float(), target, ignore_index=kwargs.get("ignore_index", 255)) for h in heads)
    raise ValueError(f"kind must be 'ohem' or 'ce'; got {kind!r}")


# --- training -------------------------------------------------------------------------------------------
def _as_float_images(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 127.5 - 1 if image.dtype == torch.uint8 else image.float()


def _mask_batches(dataset, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless random (image, mask) batches from a SynthFaces-like object (``.batch(indices)``), a mapping
    of tensors ``{"image": N x 3 x S x S (float in [-1, 1] or uint8), "mask": N x S x S}`` or a Dataset of
    sample dicts."""
    if isinstance(dataset, Mapping):
        if "image" not in dataset or "mask" not in dataset:
            raise KeyError(f"train_parser needs 'image' and 'mask' tensors; got keys {sorted(dataset)}")
        image, mask = dataset["image"], dataset["mask"]
        if len(image) != len(mask) or image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"images {tuple(image.shape)} and masks {tuple(mask.shape)} do not match")
        while True:
            idx = torch.randint(len(image), (batch_size,), generator=generator)
            yield _as_float_images(image[idx]), mask[idx].long()
    elif callable(getattr(dataset, "batch", None)):
        while True:
            b = dataset.batch(torch.randint(len(dataset), (batch_size,), generator=generator))
            yield _as_float_images(b["image"]), b["mask"].long()
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                             generator=generator)
        if len(loader) == 0:
            raise ValueError(f"the data set has {len(dataset)} samples, fewer than one batch of {batch_size}")
        while True:
            for b in loader:
                if "mask" not in b:
                    raise KeyError("train_parser needs samples with a 'mask' (a parsing data set such as "
                                   "CelebAMaskHQ or SynthFaces)")
                yield _as_float_images(b["image"]), b["mask"].long()


def poly_lr(step: int, steps: int, warmup: int, power: float = 0.9) -> float:
    """face-parsing.PyTorch's schedule as a multiplier: linear warm-up, then ``(1 - t)^0.9`` decay."""
    if step < warmup:
        return (step + 1) / warmup
    return (1 - (step - warmup) / max(1, steps - warmup)) ** power


@torch.enable_grad()  # trains even when a notebook has turned gradients off
def train_parser(model: nn.Module, dataset, steps: int, *, batch_size: int = 32, lr: float = 2e-3,
                 optimizer: str = "adam", weight_decay: float = 1e-4, loss: str = "ohem", flip: bool = True,
                 warmup: int | None = None, seed: int = 0, device: torch.device | str | None = None,
                 amp: bool = True, log_every: int = 0, task: str = "parser",
                 channels_last: bool = False) -> list[float]:
    """Train a parser (BiSeNet, UNet or any module with ``heads``/``forward``) in place; return the losses.

    Args:
        dataset: SynthFaces (rendered on the fly), a mapping of ``image``/``mask`` tensors, or a Dataset
            of sample dicts with ``image`` and ``mask`` (e.g. ``faceedit_nb.data.CelebAMaskHQ``).
        optimizer: "adam" (AdamW, our default: it trains from scratch in a few hundred steps) or "sgd"
            (face-parsing.PyTorch: lr 1e-2, momentum 0.9, weight decay 5e-4).
        loss: "ohem" or "ce" (:func:`parser_loss`). flip: random horizontal flips that swap the subject's
            left and right classes (``labels.flip_mask``). warmup: linear warm-up steps (default
            steps // 20), then poly decay with power 0.9 (face-parsing.PyTorch).
        amp: bf16 autocast on CPU (``faceedit_nb.device.autocast``). task: the name progress is reported
            under (:mod:`faceedit_nb.progress`). channels_last: train in the channels-last memory layout
            (faster with bf16 on a CPU with oneDNN; other rounding, so other weights).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive; got {steps}, {batch_size}")
    device = torch.device(device) if device is not None else DEVICE
    gen = torch.Generator().manual_seed(seed)
    layout = memory_layout(channels_last)
    model.to(device, memory_format=layout).train()
    if optimizer == "adam":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    warmup = max(1, steps // 20) if warmup is None else max(1, warmup)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: poly_lr(s, steps, warmup))
    heads = getattr(model, "heads", None) or (lambda x: (model(x),))
    history = []
    batches = _mask_batches(dataset, batch_size, gen)
    for step in range(steps):
        x, y = next(batches)
        if flip:
            f = torch.rand(len(x), generator=gen) < 0.5
            x = torch.where(f[:, None, None, None], x.flip(-1), x)
            y = torch.where(f[:, None, None], L.flip_mask(y), y)
        x, y = x.to(device, memory_format=layout), y.to(device)
        with autocast(device, enabled=amp):
            out = heads(x)
        loss_value = parser_loss(out, y, kind=loss)
        opt.zero_grad(set_to_none=True)
        loss_value.backward()
        opt.step()
        sched.step()
        history.append(loss_value.item())
        report_progress(task, step + 1, steps)
        if log_every and (step + 1) % log_every == 0:
            print(f"[parser] step {step + 1}/{steps} loss {sum(history[-log_every:]) / log_every:.4f}")
    model.eval()
    return history
