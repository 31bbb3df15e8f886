"""The networks of Ling et al. (relative-au-msf.txt, Sec. 3.1-3.3): relative AUs (Eq. 1) and their
interpolation (Eq. 2), the multi-scale feature fusion module (:class:`MSFModule`, Fig. 3 right) and the
generator :class:`UNetMSF` (``UNet_MSF_Generator`` of the official code, Fig. 3 left). The critic is
GANimation's (Sec. 3.2: "the same as which in [26]"), :class:`faceedit_nb.nets.ganimation.Discriminator`.

Architecture (``ngf`` = ``g_conv_dim``; S = image side; after ``junleen/Expression-manipulator``, whose
layer list is in ../shared/reference/reference-code.md):

==========================  =============================================  ==================
stage                       layers                                         output
==========================  =============================================  ==================
stem                        7x7 conv, IN, LeakyReLU (no condition)         ngf, S
encoder 1..4                4x4 stride-2 conv, IN, LeakyReLU               2, 4, 8, 8 ngf at S/2 .. S/16
bottleneck                  tiled v_rel concatenated, 3x3 conv, IN, ReLU   8 ngf, S/16
skips at S/8, S/4, S/2      MSF module (the lowest ``k_msf`` of them) or   8, 4, 2 ngf
                            the encoder feature itself (a U-Net skip)
decoder 1..4                4x4 transposed conv, IN, ReLU; concatenated    8, 4, 2, 1 ngf at S/8 .. S
                            with the skip of the next resolution
head                        7x7 conv, tanh                                 3, S
==========================  =============================================  ==================

The MSF module at level i (:class:`MSFModule`), following Sec. 3.3 and the official code: the encoder
feature ``f_i`` is concatenated with the tiled v_rel and goes through a 5x5 conv; a 4x4 stride-2 conv takes
it to the lower resolution, where it is concatenated with ``f'_{i+1}`` (the output of the MSF module below,
or the bottleneck for the lowest one); a fusion unit brings the low-resolution stream back up (4x4
transposed conv) and adds it to the high-resolution stream (3x3 conv); parallel 3x3 and 5x5 convs make the
output ``f'_i``, which goes to the decoder and to the MSF module above. The paper's prose gives 5x5 for "the
rest" of the convolutions; the code mixes 3x3 and 5x5, and so do we.
"""
from __future__ import annotations

import torch
from torch import nn

from ... import labels as L
from ...nets import ganimation as ga_nets
from ...nets import stargan as stargan_nets  # tile: the condition replicated over the image

__all__ = ["relative_aus", "interpolated_aus", "generator_condition", "MSFModule", "UNetMSF", "build_generator",
           "MSF_LEVELS", "msf_levels"]

MSF_LEVELS = (8, 4, 2)  # the skips an MSF module can replace, as divisors of the image side, lowest first


def relative_aus(v_tgt: torch.Tensor, v_src: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``v_rel = v_tgt - v_src``, the desired change of every AU (0: leave that muscle alone)."""
    return v_tgt - v_src


def interpolated_aus(v_1: torch.Tensor, v_2: torch.Tensor, v_src: torch.Tensor, alpha) -> torch.Tensor:
    """Eq. 2: ``v_inter = v_1 + α (v_2 - v_1) - v_src``, the relative condition of an expression between
    ``v_1`` (α = 0) and ``v_2`` (α = 1). ``alpha`` is a number or a tensor of shape (B,) (one per image);
    the paper takes 0 <= α <= 1 (Fig. 1 also shows 1.25)."""
    a = torch.as_tensor(alpha, dtype=v_1.dtype, device=v_1.device)
    if a.dim() == 1:
        a = a[:, None]
    return v_1 + a * (v_2 - v_1) - v_src


def generator_condition(v_src: torch.Tensor, v_tgt: torch.Tensor, condition: str) -> torch.Tensor:
    """What the generator is fed for an edit from ``v_src`` to ``v_tgt``: v_rel (Eq. 1) or ``v_tgt`` itself
    (``condition="absolute"``: GANimation's input, the "w/o v_rel" ablation)."""
    if condition == "relative":
        return relative_aus(v_tgt, v_src)
    if condition == "absolute":
        return v_tgt
    raise ValueError(f"condition must be 'relative' or 'absolute'; got {condition!r}")


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, act: str = "lrelu") -> nn.Sequential:
    """Conv (no bias: IN follows), instance norm with affine parameters, activation."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2 if stride == 1 else 1, bias=False),
                         nn.InstanceNorm2d(c_out, affine=True),
                         nn.LeakyReLU(0.2) if act == "lrelu" else nn.ReLU())


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.InstanceNorm2d(c_out, affine=True),
                         nn.ReLU())


class MSFModule(nn.Module):
    """Multi-scale feature fusion (Sec. 3.3, Fig. 3 right): ``f'_i = MSF(f_i, f'_{i+1}, v_rel)``.

    ``channels``: of the encoder feature ``f_i`` (and of the output); ``low_channels``: of ``f'_{i+1}``,
    which has half the resolution; ``c_dim``: the condition's size (17 AUs)."""

    def __init__(self, channels: int, low_channels: int, c_dim: int = len(L.AUS)):
        super().__init__()
        self.condition = _conv(channels + c_dim, channels, 5)          # f_i ⊕ v_rel -> conv unit
        self.down = _conv(channels, low_channels, 4, stride=2)          # -> the lower resolution
        self.high = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)  # fusion unit: high-res stream
        self.low_up = nn.ConvTranspose2d(2 * low_channels, channels, 4, 2, 1, bias=False)  # low-res stream, up
        self.fuse_norm = nn.Sequential(nn.InstanceNorm2d(channels, affine=True), nn.LeakyReLU(0.2))
        self.out3 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)  # parallel output convs
        self.out5 = nn.Conv2d(channels, channels, 5, 1, 2, bias=False)
        self.out_norm = nn.Sequential(nn.InstanceNorm2d(channels, affine=True), nn.LeakyReLU(0.2))

    def forward(self, f_i: torch.Tensor, f_low: torch.Tensor, v_rel: torch.Tensor) -> torch.Tensor:
        h = self.condition(stargan_nets.tile(f_i, v_rel))
        low = torch.cat([self.down(h), f_low], dim=1)
        fused = self.fuse_norm(self.high(h) + self.low_up(low))
        return self.out_norm(self.out3(fused) + self.out5(fused))


def msf_levels(k_msf: int) -> tuple[int, ...]:
    """The skips (image side / level) that carry an MSF module with ``k_msf`` modules: the lowest first,
    so that each module receives the output of the one below (the ablation replaces skips bottom-up)."""
    if not 0 <= k_msf <= len(MSF_LEVELS):
        raise ValueError(f"k_msf must lie in 0..{len(MSF_LEVELS)}; got {k_msf}")
    return MSF_LEVELS[:k_msf]


class UNetMSF(nn.Module):
    """The generator of Fig. 3: ``G(x, c) -> x'``, a U-Net whose skips at 1/8, 1/4 and 1/2 of the image
    side pass through ``k_msf`` MSF modules (the lowest first); ``k_msf = 0`` is a plain U-Net with the
    condition at the bottleneck. ``c`` is v_rel (or the absolute target, for the ablation)."""

    def __init__(self, ngf: int = 64, c_dim: int = len(L.AUS), k_msf: int = 3):
        super().__init__()
        self.c_dim, self.k_msf, self.levels = c_dim, k_msf, msf_levels(k_msf)
        widths = {1: ngf, 2: 2 * ngf, 4: 4 * ngf, 8: 8 * ngf, 16: 8 * ngf}  # channels at image side / level
        self.stem = _conv(3, ngf, 7)
        self.encoder = nn.ModuleList([_conv(widths[d // 2], widths[d], 4, stride=2) for d in (2, 4, 8, 16)])
        self.bottleneck = _conv(widths[16] + c_dim, widths[16], 3, act="relu")
        self.msf = nn.ModuleDict({str(d): MSFModule(widths[d], widths[2 * d], c_dim) for d in self.levels})
        # decoder: from 1/16 up; the input of each step past the first is [decoder feature, skip]
        self.decoder = nn.ModuleList([_up(widths[16], widths[8]), _up(2 * widths[8], widths[4]),
                                      _up(2 * widths[4], widths[2]), _up(2 * widths[2], widths[1])])
        self.head = nn.Sequential(nn.Conv2d(ngf, 3, 7, 1, 3, bias=False), nn.Tanh())

    def skips(self, x: torch.Tensor, c: torch.Tensor) -> dict:
        """The encoder features and the skip features the decoder receives, keyed by image side / level
        (``"enc<d>"``, ``"skip<d>"``; ``"bottleneck"``): what 01_architecture traces."""
        if c.dim() != 2 or c.shape[1] != self.c_dim:
            raise ValueError(f"the condition must be batch x {self.c_dim} AUs; got {tuple(c.shape)}")
        out, h = {}, self.stem(x)
        for d, enc in zip((2, 4, 8, 16), self.encoder):
            h = enc(h)
            out[f"enc{d}"] = h
        low = out["bottleneck"] = self.bottleneck(stargan_nets.tile(out["enc16"], c))
        for d in (8, 4, 2):
            if d in self.levels:  # f'_i = MSF(f_i, f'_{i+1}, v_rel)
                low = out[f"skip{d}"] = self.msf[str(d)](out[f"enc{d}"], low, c)
            else:                 # a plain U-Net skip
                out[f"skip{d}"] = out[f"enc{d}"]
        return out

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        s = self.skips(x, c)
        h = self.decoder[0](s["bottleneck"])
        for d, up in zip((8, 4, 2), self.decoder[1:]):
            h = up(torch.cat([h, s[f"skip{d}"]], dim=1))
        return self.head(h)


def build_generator(generator: str, *, ngf: int, k_msf: int = 3, repeat_num: int = 6,
                    convention: str = "code") -> nn.Module:
    """``"unet_msf"``: :class:`UNetMSF`; ``"ganimation"``: GANimation's generator (for its v_rel row).
    Weights initialised N(0, 0.02) as GANimation's (the official code inherits its init)."""
    if generator == "unet_msf":
        return ga_nets.init_weights(UNetMSF(ngf, len(L.AUS), k_msf))
    if generator == "ganimation":
        return ga_nets.init_weights(ga_nets.Generator(ngf, len(L.AUS), repeat_num, convention))
    raise ValueError(f"generator must be 'unet_msf' or 'ganimation'; got {generator!r}")
