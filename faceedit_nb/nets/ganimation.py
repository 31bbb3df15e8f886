"""GANimation's generator and discriminator (Pumarola et al., ECCV 2018), as in ``albertpumarola/GANimation``.

* ``Generator(x, y)`` returns ``(C, A)``: the StarGAN trunk (instance norm without running statistics)
  conditioned on the tiled AU vector ``y`` (17 OpenFace intensities / 5), then two 7x7 heads: the colour
  mask ``C`` (3 channels, tanh) and the attention mask ``A`` (1 channel, sigmoid).
* :func:`composite` blends them into the output image.
* ``Discriminator(x)`` returns ``(D_I, D_y)``: the StarGAN critic (PatchGAN map) and a conv with kernel
  image_size / 2^depth regressing the AUs (Sec. 4.2, "conditional expression loss").
* :func:`init_weights`: the official initialisation, conv weights N(0, 0.02) and zero biases.

Official parameter counts (``c_dim=17``, 128 px, paper widths): G 8,471,296 (StarGAN's 8,430,528 plus
37,632 for the 12 extra condition channels of the stem and 3,136 for the attention head) and D 44,860,352
(StarGAN's D with a 17-output AU head of kernel 2).

Which composite? The paper's Eq. 1 (arXiv v1, quoted in GANimation#21) reads
``I_yf = A * C + (1 - A) * I_yo``; the official code computes ``A * I_yo + (1 - A) * C``
(``models/ganimation.py``; GANimation#21, #115). We follow **the code**: ``A = 1`` keeps the input
pixel, ``A = 0`` takes the colour mask. Reasons: the published loss weights (``lambda_mask = 0.1`` on the
mean of ``A``, TV 1e-5) were tuned with it, and the paper's own motivation of the attention loss (the
mask "can easily saturate to 1", where the generator has no effect) holds only in this convention: the
penalty on the mean of ``A`` then keeps the generator from copying its input. With Eq. 1 as printed the
same penalty would push the output towards the input instead. ``composite(..., convention="paper")``
gives the other equation for comparison.
"""
from __future__ import annotations

import torch
from torch import nn

from .stargan import Projection, check_image_size, tile, trunk_layers

__all__ = ["Generator", "Discriminator", "composite", "init_weights", "CONVENTIONS"]

CONVENTIONS = ("code", "paper")


def composite(real: torch.Tensor, color: torch.Tensor, attention: torch.Tensor,
              convention: str = "code") -> torch.Tensor:
    """The edited image from the input, the colour mask C and the attention mask A (B x 1 x H x W).

    ``"code"`` (default, the official code): ``A * real + (1 - A) * C``.
    ``"paper"`` (Eq. 1 of arXiv v1): ``A * C + (1 - A) * real``.
    """
    if convention == "code":
        return attention * real + (1 - attention) * color
    if convention == "paper":
        return attention * color + (1 - attention) * real
    raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")


class Generator(nn.Module):
    """GANimation G(x, y) -> (colour mask C, attention mask A). Width ``conv_dim`` (64), depth ``repeat_num``
    residual blocks (6), condition size ``c_dim`` (17 AUs)."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 17, repeat_num: int = 6, convention: str = "code",
                 *, upsample: str = "deconv", keep_init: float = 0.0):
        super().__init__()
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
        self.c_dim, self.convention, self.keep_init = c_dim, convention, keep_init
        self.main = nn.Sequential(*trunk_layers(3 + c_dim, conv_dim, repeat_num, track_running_stats=False,
                                                upsample=upsample))
        self.color = nn.Sequential(nn.Conv2d(conv_dim, 3, 7, 1, 3, bias=False), nn.Tanh())
        # keep_init > 0: the attention conv gets a bias, set by reset_keep() so that A = sigmoid(keep_init)
        # keeps the input ("code" convention) at step 0; 0: the official bias-free conv
        self.attention = nn.Sequential(nn.Conv2d(conv_dim, 1, 7, 1, 3, bias=bool(keep_init)), nn.Sigmoid())
        self.reset_keep()

    def reset_keep(self) -> "Generator":
        """Set the attention bias to ``keep_init`` (call after any re-initialisation of the weights)."""
        if self.keep_init:
            nn.init.constant_(self.attention[0].bias, self.keep_init if self.convention == "code" else -self.keep_init)
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_image_size(x, "GANimation's generator")
        h = self.main(tile(x, y))
        return self.color(h), self.attention(h)

    def animate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The edited image for target AUs ``y`` and the attention mask that made it."""
        color, attention = self(x, y)
        return composite(x, color, attention, self.convention), attention

    def edit(self, x: torch.Tensor, y_org: torch.Tensor | None, y_trg: torch.Tensor) -> torch.Tensor:
        """Editor interface: ``x`` re-animated to the target AUs (the source AUs are not needed)."""
        return self.animate(x, y_trg)[0]


class Discriminator(nn.Module):
    """GANimation D(x) -> (critic patch map D_I, AU regression D_y): StarGAN's D with an AU head."""

    def __init__(self, image_size: int = 128, conv_dim: int = 64, c_dim: int = 17, repeat_num: int = 6,
                 *, projection: bool = False):
        super().__init__()
        kernel = image_size // 2 ** repeat_num
        if kernel < 1 or kernel * 2 ** repeat_num != image_size:
            raise ValueError(f"a {repeat_num}-layer discriminator needs an image size divisible by "
                             f"{2 ** repeat_num}; got {image_size}")
        layers: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            dim *= 2
        self.main = nn.Sequential(*layers)
        self.critic = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)
        self.aus = nn.Conv2d(dim, c_dim, kernel, bias=False)
        self.embed = Projection(c_dim, dim, "AUs y") if projection else None  # D_I(x, y) = critic(h) + <W y, h>

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D_I, D_y)``; with ``projection``, the AUs ``y`` the images are judged against condition D_I
        (without it, ``y`` is ignored)."""
        h = self.main(x)
        src = self.critic(h)
        if self.embed is not None:
            src = src + self.embed.project(h, y)
        return src, self.aus(h).flatten(1)


@torch.no_grad()
def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """GANimation's initialisation: conv and transposed-conv weights N(0, std), biases 0 (norms untouched)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
    return module
