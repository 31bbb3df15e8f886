"""StarGAN's generator and discriminator (Choi et al., CVPR 2018), as in ``yunjey/stargan:model.py``.

At the paper's settings the parameter counts equal the official ones: ``Generator(64, 5, 6)`` has
8,430,528 parameters and ``Discriminator(128, 64, 5, 6)`` 44,762,048. Module names follow the official
``main`` / ``conv1`` / ``conv2`` layout, so the official CelebA checkpoints load with ``load_state_dict``.

* ``Generator(x, c)``: the domain label ``c`` is tiled over the image and concatenated to it (Sec. 3 of
  the paper); 7x7 stem, two stride-2 downsamplings, ``repeat_num`` residual blocks, two stride-2
  upsamplings, 7x7 conv to RGB, tanh. Instance norm everywhere, no biases.
* ``Discriminator(x)`` returns ``(out_src, out_cls)``: a PatchGAN critic map ``D_src`` (3x3 conv) and the
  domain logits ``D_cls`` (a conv whose kernel covers the whole final feature map, image_size / 2^depth).
  No normalisation (required by the gradient penalty), LeakyReLU(0.01).

Conditioning: ``condition="target"`` feeds the target label (StarGAN); ``condition="difference"``
feeds ``c_trg - c_org`` in {-1, 0, 1}, STGAN's ``y_diff`` (Liu et al., CVPR 2019). :meth:`Generator.edit`
builds the right vector from the source and target labels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Generator", "Discriminator", "Projection", "InstanceNorm", "ResidualBlock", "condition_vector",
           "default_d_repeat", "check_image_size", "CONDITIONS", "DOWNSAMPLINGS"]

CONDITIONS = ("target", "difference")
UPSAMPLE = ("deconv", "resize")
DOWNSAMPLINGS = 2  # stride-2 convolutions of the generator's trunk (and as many x2 upsamplings)


def check_image_size(x: torch.Tensor, what: str, downsamplings: int = DOWNSAMPLINGS) -> None:
    """An error unless the generator's ``downsamplings`` stride-2 convolutions and as many x2 upsamplings
    give back an image of ``x``'s size: each side must be a multiple of ``2 ** downsamplings`` (a 50 px
    face would come back at 48 px)."""
    step = 2 ** downsamplings
    h, w = x.shape[-2:]
    if h % step == 0 and w % step == 0:
        return

    def back(s: int) -> int:
        for _ in range(downsamplings):
            s = (s - 2) // 2 + 1  # a 4x4 stride-2 convolution with padding 1
        return s * step

    down, up = (f"{h // step * step} x {w // step * step}", f"{-(-h // step) * step} x {-(-w // step) * step}")
    raise ValueError(f"{what} returns images of the input's size only when each side is a multiple of {step} "
                     f"(2**{downsamplings}, for its {downsamplings} stride-2 downsamplings): {step * 8}, {step * 12}, "
                     f"{step * 16}, ... px; got {h} x {w} px, which would come back as {back(h)} x {back(w)}. Use "
                     f"{down} or {up} px images (resize or crop them, or render SynthFaces at that size)")


def condition_vector(c_org: torch.Tensor, c_trg: torch.Tensor, condition: str) -> torch.Tensor:
    """The generator's condition: the target label, or STGAN's difference ``c_trg - c_org``."""
    if condition == "target":
        return c_trg
    if condition == "difference":
        return c_trg - c_org
    raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")


def default_d_repeat(image_size: int) -> int:
    """Discriminator depth for an image size: log2(size) - 1 stride-2 convs, a 2x2 patch map at the end
    (6 at 128 px, as in the paper; 5 at 64 px, where a 6-layer D would end at 1x1)."""
    depth = int(round(math.log2(image_size))) - 1
    if 2 ** (depth + 1) != image_size:
        raise ValueError(f"image_size must be a power of two (32, 64, 128, 256); got {image_size}")
    return depth


class InstanceNorm(nn.InstanceNorm2d):
    """Affine instance norm that tracks running statistics (as the official checkpoints hold them) but
    always normalises with each image's own statistics, also in ``eval()``: StarGAN's ``test()`` never
    calls ``eval()``, so its published results use per-image statistics. Buffers update in training only."""

    def __init__(self, num_features: int):
        super().__init__(num_features, affine=True, track_running_stats=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rm, rv = (self.running_mean, self.running_var) if self.training else (None, None)
        return F.instance_norm(x, rm, rv, self.weight, self.bias, use_input_stats=True,
                               momentum=self.momentum, eps=self.eps)


def _norm(channels: int, track_running_stats: bool) -> nn.Module:
    return InstanceNorm(channels) if track_running_stats else nn.InstanceNorm2d(channels, affine=True)


class ResidualBlock(nn.Module):
    """conv3x3 - IN - ReLU - conv3x3 - IN, plus the input."""

    def __init__(self, dim: int, track_running_stats: bool = True):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), _norm(dim, track_running_stats), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), _norm(dim, track_running_stats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


def trunk_layers(in_channels: int, conv_dim: int, repeat_num: int, track_running_stats: bool,
                 upsample: str = "deconv", *, up_path: bool = True) -> list[nn.Module]:
    """StarGAN's generator body up to (not including) the output conv; ends with ``conv_dim`` channels.
    ``upsample``: "deconv" (the paper's 4x4 stride-2 transposed convs) or "resize" (nearest-neighbour x2,
    then a 3x3 conv; Odena et al. 2016: no checkerboard pattern built into the architecture).
    ``up_path=False`` stops after the bottleneck (``4 * conv_dim`` channels at a quarter of the input side:
    DefGAN's deformation generator up-samples its offsets bilinearly instead)."""
    if upsample not in UPSAMPLE:
        raise ValueError(f"upsample must be one of {UPSAMPLE}; got {upsample!r}")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, conv_dim, 7, 1, 3, bias=False),
                               _norm(conv_dim, track_running_stats), nn.ReLU(inplace=True)]
    dim = conv_dim
    for _ in range(DOWNSAMPLINGS):  # down-sampling
        layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), _norm(dim * 2, track_running_stats),
                   nn.ReLU(inplace=True)]
        dim *= 2
    layers += [ResidualBlock(dim, track_running_stats) for _ in range(repeat_num)]  # bottleneck
    for _ in range(DOWNSAMPLINGS if up_path else 0):  # up-sampling
        up = [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False)] if upsample == "deconv" else \
            [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim, dim // 2, 3, 1, 1, bias=False)]
        layers += up + [_norm(dim // 2, track_running_stats), nn.ReLU(inplace=True)]
        dim //= 2
    return layers


def tile(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Concatenate the label vector ``c`` (B x C), replicated over the image, to ``x`` (B x 3 x H x W)."""
    if c.dim() != 2 or c.shape[0] != x.shape[0]:
        raise ValueError(f"labels must be batch x classes matching {x.shape[0]} images; got {tuple(c.shape)}")
    return torch.cat([x, c.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)


class Generator(nn.Module):
    """StarGAN G(x, c). Width ``conv_dim`` (64 in the paper), depth ``repeat_num`` residual blocks (6)."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6, condition: str = "target",
                 *, residual: bool = False, upsample: str = "deconv"):
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")
        self.c_dim, self.condition, self.residual = c_dim, condition, residual
        layers = trunk_layers(3 + c_dim, conv_dim, repeat_num, track_running_stats=True, upsample=upsample)
        layers += [nn.Conv2d(conv_dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        if residual:  # the output conv starts at zero: G(x, c) = x at step 0
            nn.init.zeros_(self.main[-2].weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The image (the paper), or with ``residual`` the input plus a residual image, clamped to [-1, 1]
        (Shen & Liu, CVPR 2017): the network learns only the change."""
        check_image_size(x, "StarGAN's generator")
        out = self.main(tile(x, c))
        return (x + out).clamp(-1, 1) if self.residual else out

    def edit(self, x: torch.Tensor, c_org: torch.Tensor, c_trg: torch.Tensor) -> torch.Tensor:
        """Translate images with labels ``c_org`` to labels ``c_trg`` (both B x c_dim, 0/1)."""
        return self(x, condition_vector(c_org, c_trg, self.condition))


class Projection(nn.Linear):
    """The projection term of a conditional critic (Miyato & Koyama, ICLR 2018), per patch: ``<W c, h>`` for
    the critic's last feature map ``h`` (B x dim x k x k) and labels ``c`` (B x c_dim). ``W`` starts at zero,
    so a critic with it starts as the unconditional one. ``what`` names the labels in the error."""

    def __init__(self, c_dim: int, dim: int, what: str = "labels c"):
        super().__init__(c_dim, dim, bias=False)
        nn.init.zeros_(self.weight)
        self.what = what

    def project(self, h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if c is None:
            raise ValueError(f"a projection critic needs the {self.what} of the images it judges: D(x, c)")
        return (h * self(c.to(h.dtype))[:, :, None, None]).sum(1, keepdim=True)


class Discriminator(nn.Module):
    """StarGAN D(x) -> (D_src patch map, D_cls logits). Width ``conv_dim``, depth ``repeat_num`` stride-2
    convs; the classifier kernel is image_size / 2^repeat_num (2 at 128 px with 6 layers). ``in_channels``:
    3 (an image), or more for a critic of image pairs (LSSL's image + landmark heat map)."""

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 5, repeat_num: int = 6,
                 *, projection: bool = False, in_channels: int = 3):
        super().__init__()
        kernel = image_size // 2 ** repeat_num
        if kernel < 1 or kernel * 2 ** repeat_num != image_size:
            raise ValueError(f"a {repeat_num}-layer discriminator needs an image size divisible by "
                             f"{2 ** repeat_num}; got {image_size} (use default_d_repeat({image_size}))")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(dim, c_dim, kernel, bias=False)
        self.embed = Projection(c_dim, dim) if projection else None  # D_src(x, c) = conv1(h) + <W c, h>

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D_src, D_cls)``; with ``projection``, ``c`` (B x c_dim) conditions D_src on the label (without
        it, ``c`` is ignored)."""
        h = self.main(x)
        src = self.conv1(h)
        if self.embed is not None:
            src = src + self.embed.project(h, c)
        return src, self.conv2(h).flatten(1)
