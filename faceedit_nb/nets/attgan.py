"""AttGAN's encoder-decoder generator and discriminator (He et al., TIP 2019), as in
``elvisyjlin/AttGAN-PyTorch:attgan.py``, with STGAN's difference condition as an option.

* Encoder: ``n_layers`` 4x4 stride-2 convs, BatchNorm, LeakyReLU(0.01), widths ``enc_dim * 2^i`` capped
  at ``max_dim`` (64 ... 1024 at the paper's settings); 128 px -> 4x4 latent.
* Decoder: the attribute vector tiled at the latent size and concatenated (Fig. 2 of the paper); 4x4
  stride-2 transposed convs, BatchNorm, ReLU, the last one to RGB with tanh. ``shortcut_layers`` encoder
  features are concatenated to the first decoder outputs (U-Net style skips) and the attributes are
  injected again after the first ``inject_layers`` decoder layers. The repository's README trains with
  ``--shortcut_layers 1 --inject_layers 1`` (its ``train.py`` defaults to ``inject_layers 0``); we default
  to the README's 1 / 1.
* Discriminator: ``n_layers`` 4x4 stride-2 convs, instance norm, LeakyReLU(0.01); two heads on the
  flattened features: FC ``fc_dim`` - ReLU - FC 1 (critic) and FC ``fc_dim`` - ReLU - FC ``n_attrs``
  (attribute logits).

Labels: 0/1 attributes are fed as ``(a * 2 - 1) * thres_int`` (+-0.5, AttGAN-PyTorch's ``thres_int``);
``condition="difference"`` feeds STGAN's ``b_ - a_`` (entries -1, 0, 1 with thres_int 0.5). At test time
the changed attributes may be scaled to ``test_int`` (STGAN's numbers need ``test_int = 2``).

Official parameter counts at the defaults (enc/dec/dis dim 64, 5 layers, shortcut 1, inject 1,
13 attributes, fc 1024, 128 px): G 43,459,203, D 44,718,990 (derived layer by layer in tests/test_nets.py).
"""
from __future__ import annotations

import torch
from torch import nn

from .stargan import CONDITIONS

__all__ = ["Generator", "Discriminator", "signed_attributes"]


def signed_attributes(a: torch.Tensor, thres_int: float = 0.5) -> torch.Tensor:
    """0/1 attributes as the generator reads them: ``(a * 2 - 1) * thres_int``."""
    return (a.float() * 2 - 1) * thres_int


def _conv_block(n_in: int, n_out: int, norm: type[nn.Module], act: nn.Module, transposed: bool = False):
    conv = (nn.ConvTranspose2d if transposed else nn.Conv2d)(n_in, n_out, 4, 2, 1, bias=False)
    return nn.Sequential(conv, norm(n_out), act)


class Generator(nn.Module):
    """AttGAN G: ``encode(x) -> zs``, ``decode(zs, a_) -> image``; ``forward(x, a_)`` does both, where
    ``a_`` is the condition vector (signed attributes or their difference, see :meth:`edit`)."""

    def __init__(self, enc_dim: int = 64, dec_dim: int = 64, n_layers: int = 5, n_attrs: int = 13,
                 shortcut_layers: int = 1, inject_layers: int = 1, img_size: int = 128, max_dim: int = 1024,
                 condition: str = "target", thres_int: float = 0.5):
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}; got {condition!r}")
        if img_size % 2 ** n_layers:
            raise ValueError(f"img_size {img_size} is not divisible by 2^n_layers = {2 ** n_layers}")
        self.n_attrs, self.condition, self.thres_int = n_attrs, condition, thres_int
        self.shortcut_layers = min(shortcut_layers, n_layers - 1)
        self.inject_layers = min(inject_layers, n_layers - 1)
        self.f_size = img_size // 2 ** n_layers  # 4 at 128 px

        enc, n_in = [], 3
        for i in range(n_layers):
            n_out = min(enc_dim * 2 ** i, max_dim)
            enc.append(_conv_block(n_in, n_out, nn.BatchNorm2d, nn.LeakyReLU(0.01)))
            n_in = n_out
        self.enc_layers = nn.ModuleList(enc)
        enc_widths = [min(enc_dim * 2 ** i, max_dim) for i in range(n_layers)]

        dec, n_in = [], n_in + n_attrs
        for i in range(n_layers - 1):
            n_out = min(dec_dim * 2 ** (n_layers - i - 1), max_dim)
            dec.append(_conv_block(n_in, n_out, nn.BatchNorm2d, nn.ReLU(), transposed=True))
            n_in = n_out
            if self.shortcut_layers > i:
                n_in += enc_widths[n_layers - 2 - i]
            if self.inject_layers > i:
                n_in += n_attrs
        dec.append(nn.Sequential(nn.ConvTranspose2d(n_in, 3, 4, 2, 1), nn.Tanh()))
        self.dec_layers = nn.ModuleList(dec)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        zs = []
        for layer in self.enc_layers:
            x = layer(x)
            zs.append(x)
        return zs

    def decode(self, zs: list[torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        def tiled(size):
            return a.to(zs[-1].dtype)[:, :, None, None].expand(-1, -1, size, size)

        z = torch.cat([zs[-1], tiled(self.f_size)], dim=1)
        n = len(self.dec_layers)
        for i, layer in enumerate(self.dec_layers):
            z = layer(z)
            if self.shortcut_layers > i:
                z = torch.cat([z, zs[n - 2 - i]], dim=1)
            if self.inject_layers > i:
                z = torch.cat([z, tiled(self.f_size * 2 ** (i + 1))], dim=1)
        return z

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if a.dim() != 2 or a.shape != (x.shape[0], self.n_attrs):
            raise ValueError(f"attributes must be {x.shape[0]} x {self.n_attrs}; got {tuple(a.shape)}")
        return self.decode(self.encode(x), a)

    def condition_vector(self, a_org: torch.Tensor, a_trg: torch.Tensor,
                         test_int: float | None = None) -> torch.Tensor:
        """The decoder's input for an edit from 0/1 attributes ``a_org`` to ``a_trg``: signed target
        attributes (AttGAN) or the signed difference (STGAN); changed attributes scaled to ``test_int``."""
        b_ = signed_attributes(a_trg, self.thres_int)
        if test_int is not None:
            b_ = torch.where(a_trg != a_org, b_ * (test_int / self.thres_int), b_)
        if self.condition == "difference":
            return b_ - signed_attributes(a_org, self.thres_int)
        return b_

    def edit(self, x: torch.Tensor, a_org: torch.Tensor, a_trg: torch.Tensor,
             test_int: float | None = None) -> torch.Tensor:
        """Editor interface: images ``x`` with attributes ``a_org`` (0/1) edited to ``a_trg``."""
        return self(x, self.condition_vector(a_org, a_trg, test_int))


class Discriminator(nn.Module):
    """AttGAN D(x) -> (critic score B x 1, attribute logits B x n_attrs)."""

    def __init__(self, dim: int = 64, n_layers: int = 5, fc_dim: int = 1024, n_attrs: int = 13,
                 img_size: int = 128, max_dim: int = 1024):
        super().__init__()
        if img_size % 2 ** n_layers:
            raise ValueError(f"img_size {img_size} is not divisible by 2^n_layers = {2 ** n_layers}")
        layers, n_in = [], 3
        for i in range(n_layers):
            n_out = min(dim * 2 ** i, max_dim)
            layers.append(_conv_block(n_in, n_out, lambda c: nn.InstanceNorm2d(c, affine=True), nn.LeakyReLU(0.01)))
            n_in = n_out
        self.conv = nn.Sequential(*layers)
        features = n_in * (img_size // 2 ** n_layers) ** 2
        self.fc_adv = nn.Sequential(nn.Linear(features, fc_dim), nn.ReLU(), nn.Linear(fc_dim, 1))
        self.fc_cls = nn.Sequential(nn.Linear(features, fc_dim), nn.ReLU(), nn.Linear(fc_dim, n_attrs))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x).flatten(1)
        return self.fc_adv(h), self.fc_cls(h)
