"""LSSL's networks: the landmark side image (:func:`landmark_heatmap`), the encoder-decoder generator
(:class:`Encoder`, :class:`Decoder`, :class:`LSSLGenerator`), the critic of image + side-image pairs
(:func:`build_critic`) and the frozen three-component parser (:class:`DepthwiseUNet`)."""
from __future__ import annotations

import torch
from torch import nn

from ... import labels as L
from ...methods import he_init
from ...nets import stargan as sg_nets
from .config import LSSLConfig

__all__ = ["HEATMAP_GROUPS", "landmark_heatmap", "Encoder", "Decoder", "LSSLGenerator", "build_generator",
           "build_critic", "DepthwiseUNet", "N_PARTS"]

DOWNSAMPLINGS = 4  # G_enc maps the image to h/16 x w/16 (Sec. 3.1)
N_PARTS = len(L.LSSL_CLASSES)  # other, lips, eyes, skin
# the side image's three channels: which landmark groups each one draws
HEATMAP_GROUPS = (("jaw", "nose_bridge", "nose_bottom"), ("right_brow", "left_brow", "right_eye", "left_eye"),
                  ("outer_lips", "inner_lips"))


def _group_index(groups) -> torch.Tensor:
    return torch.cat([torch.arange(*L.LANDMARK_GROUPS[g]) for g in groups])


def landmark_heatmap(landmarks: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """The side image s (Sec. 5.3): 2D Gaussians of width ``sigma`` px at the 68 landmarks (B x 68 x 2, pixels,
    iBUG order), the maximum over each group of :data:`HEATMAP_GROUPS` in its own channel, as an image in
    [-1, 1] (B x 3 x size x size). A horizontal flip of the face and of its heat map agree (the groups are
    symmetric)."""
    if landmarks.dim() != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be B x 68 x 2 (iBUG order, pixels); got {tuple(landmarks.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive; got {sigma}")
    pts = landmarks.float()
    axis = torch.arange(size, dtype=torch.float32, device=pts.device)
    gx = torch.exp(-(axis[None, None, :] - pts[..., 0:1]) ** 2 / (2 * sigma ** 2))  # B x 68 x W
    gy = torch.exp(-(axis[None, None, :] - pts[..., 1:2]) ** 2 / (2 * sigma ** 2))  # B x 68 x H
    maps = []
    for groups in HEATMAP_GROUPS:
        idx = _group_index(groups).to(pts.device)
        maps.append((gy[:, idx, :, None] * gx[:, idx, None, :]).amax(1))
    return torch.stack(maps, 1) * 2 - 1


def _in_relu(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=True)]


class Encoder(nn.Module):
    """G_enc: (x, s) -> a latent of ``16 * conv_dim`` channels at h/16 (the public code: a 7x7 conv, four 4x4
    stride-2 convs, ``repeat_num`` residual blocks; instance norm and ReLU)."""

    def __init__(self, conv_dim: int = 64, repeat_num: int = 6, side_input: bool = True):
        super().__init__()
        self.side_input = side_input
        c_in = 6 if side_input else 3
        layers: list[nn.Module] = [nn.Conv2d(c_in, conv_dim, 7, 1, 3, bias=False), *_in_relu(conv_dim)]
        dim = conv_dim
        for _ in range(DOWNSAMPLINGS):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), *_in_relu(dim * 2)]
            dim *= 2
        layers += [sg_nets.ResidualBlock(dim, track_running_stats=False) for _ in range(repeat_num)]
        self.main = nn.Sequential(*layers)
        self.out_channels = dim

    def forward(self, x: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        sg_nets.check_image_size(x, "LSSL's encoder", DOWNSAMPLINGS)
        if self.side_input:
            if s is None or s.shape != x.shape:
                raise ValueError(f"LSSL with side_input needs a side image of the image's shape {tuple(x.shape)}; "
                                 f"got {None if s is None else tuple(s.shape)}")
            x = torch.cat([x, s], 1)
        return self.main(x)


class Decoder(nn.Module):
    """G_dec: (latent, y) -> (x', s'): y tiled on the latent, four sub-pixel steps (3x3 conv to 4x the width,
    PixelShuffle(2), instance norm, ReLU; Shi et al. 2016), then 7x7 tanh heads for the image and, with a side
    input, the side image."""

    def __init__(self, in_channels: int, c_dim: int, side_output: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        dim, c_in = in_channels, in_channels + c_dim
        for _ in range(DOWNSAMPLINGS):
            dim //= 2
            layers += [nn.Conv2d(c_in, 4 * dim, 3, 1, 1, bias=False), nn.PixelShuffle(2), *_in_relu(dim)]
            c_in = dim
        self.main = nn.Sequential(*layers)
        self.image_head = nn.Sequential(nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh())
        self.side_head = nn.Sequential(nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()) if side_output else None
        self.c_dim = c_dim

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.c_dim:
            if y is None or y.shape != (h.shape[0], self.c_dim):
                raise ValueError(f"the decoder needs a target y of {h.shape[0]} x {self.c_dim}; got "
                                 f"{None if y is None else tuple(y.shape)}")
            h = torch.cat([h, y.to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1)
        f = self.main(h)
        return self.image_head(f), (self.side_head(f) if self.side_head is not None else None)


class LSSLGenerator(nn.Module):
    """G = G_dec(G_enc(x, s), y) -> x', s' (Sec. 3.1). ``forward`` returns ``{"image", "side", "latent"}``."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.enc, self.dec = encoder, decoder

    def forward(self, x: torch.Tensor, s: torch.Tensor | None, y: torch.Tensor | None = None) -> dict:
        h = self.enc(x, s)
        image, side = self.dec(h, y)
        return {"image": image, "side": side, "latent": h}


def build_generator(cfg: LSSLConfig) -> LSSLGenerator:
    enc = Encoder(cfg.g_conv_dim, cfg.g_repeat_num, cfg.side_input)
    return LSSLGenerator(enc, Decoder(enc.out_channels, cfg.condition_dim, side_output=cfg.side_input))


def build_critic(cfg: LSSLConfig) -> sg_nets.Discriminator:
    """StarGAN's PatchGAN critic with its class head (the public code's: six 4x4 stride-2 convs, LeakyReLU 0.01,
    a 3x3 patch head and a classifier over the last map) on (image, side image) pairs: 6 channels, or 3 without
    a side input and in pose normalisation ("a discriminator takes only one single image", Fig. 3b)."""
    pairs = cfg.side_input and cfg.task == "synthesis"
    D = sg_nets.Discriminator(cfg.image_size, cfg.d_conv_dim, cfg.c_dim, cfg.d_repeat_num,
                              in_channels=6 if pairs else 3)
    return he_init(D) if cfg.d_init == "he" else D


class _Separable(nn.Sequential):
    """A MobileNet block: 3x3 depthwise conv, BN, ReLU, 1x1 pointwise conv, BN, ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
                         nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class DepthwiseUNet(nn.Module):
    """The face parser P (Sec. 3.1, 4.1): a U-Net (Ronneberger et al.) of depthwise-separable blocks (MobileNet),
    ``depth`` 2x down-samplings, a stem conv and two separable blocks per level; outputs logits over
    :data:`faceedit_nb.labels.LSSL_CLASSES` (other, lips, eyes, skin)."""

    def __init__(self, base: int = 32, depth: int = 3, n_classes: int = N_PARTS):
        super().__init__()
        if base < 1 or depth < 1:
            raise ValueError(f"base and depth must be positive; got base={base}, depth={depth}")
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.stem = nn.Sequential(nn.Conv2d(3, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU(inplace=True),
                                  _Separable(base, base))
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), _Separable(widths[i], widths[i + 1]),
                                                 _Separable(widths[i + 1], widths[i + 1])) for i in range(depth))
        self.ups = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                               nn.Conv2d(widths[i + 1], widths[i], 1, bias=False))
                                 for i in reversed(range(depth)))
        self.fuse = nn.ModuleList(nn.Sequential(_Separable(2 * widths[i], widths[i]), _Separable(widths[i], widths[i]))
                                  for i in reversed(range(depth)))
        self.outc = nn.Conv2d(base, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 ** self.depth
        if x.shape[-1] % k or x.shape[-2] % k:
            raise ValueError(f"the parser needs an input side that is a multiple of {k}; got {tuple(x.shape[-2:])}")
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up, fuse in zip(self.ups, self.fuse):
            y = fuse(torch.cat([skips.pop(), up(y)], 1))
        return self.outc(y)
