"""DefGAN's networks and its two editing stages (defgan.txt, Sec. 3.1 and Appendix D.1).

* **Motion editing** (Eq. 4-5): :class:`DeformationGenerator` G_Def(I_x, x, y) predicts an offset field,
  bounded by the maximum offset, added to the identity grid (:func:`identity_grid`, :func:`offset_grid`);
  :func:`warp` samples the input at the grid: ``I*_y = Warp(G, I_x)``.
* **Texture editing** (Eq. 6): G_Texture is GANimation's generator
  (:class:`faceedit_nb.nets.ganimation.Generator`) on the warped image and the target AUs, composited with
  the paper's convention ``I_y = M * T + (1 - M) * I*_y`` (M = 1 takes the texture).
* :class:`DefGANGenerator` holds both stages (G_Comp, Eq. 3) and returns every intermediate.

Grids are B x H x W x 2 in ``grid_sample``'s normalised coordinates ((x, y) in [-1, 1], pixel centres,
``align_corners=False``): ``Warp(G, I)(p) = I(G(p))``, so the warp of a grid by a grid composes them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nets.stargan import DOWNSAMPLINGS, check_image_size, tile, trunk_layers

__all__ = ["identity_grid", "offset_grid", "warp", "DeformationGenerator", "DefGANGenerator", "grid_to_pixels"]


def identity_grid(n: int, size: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """I_Def: the grid that samples every pixel at itself, B x H x W x 2 (x, y) in normalised coordinates."""
    coords = (torch.arange(size, device=device, dtype=dtype) * 2 + 1) / size - 1   # pixel centres
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xx, yy], dim=-1).expand(n, size, size, 2)


def offset_grid(offsets: torch.Tensor) -> torch.Tensor:
    """The offset-based grid of Shu et al. (Sec. 3.1.1): the identity grid plus ``offsets`` (B x 2 x H x W,
    normalised units)."""
    n, _, h, w = offsets.shape
    if h != w:
        raise ValueError(f"square offset fields only; got {h} x {w}")
    return identity_grid(n, h, device=offsets.device, dtype=offsets.dtype) + offsets.permute(0, 2, 3, 1)


def warp(grid: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """``Warp(G, I)`` (Eq. 4): ``image`` (B x C x H x W, an image or a grid as B x 2 x H x W) sampled
    bilinearly at ``grid`` (B x H x W x 2); outside the image the border pixel is repeated."""
    if grid.dim() != 4 or grid.shape[-1] != 2 or grid.shape[0] != image.shape[0]:
        raise ValueError(f"grid must be B x H x W x 2 for {image.shape[0]} images; got {tuple(grid.shape)}")
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def grid_to_pixels(grid: torch.Tensor) -> torch.Tensor:
    """Each pixel's displacement in pixels (B x H x W x 2, (dx, dy)): ``(G - I_Def) * size / 2``."""
    size = grid.shape[1]
    return (grid - identity_grid(grid.shape[0], size, device=grid.device, dtype=grid.dtype)) * size / 2


class DeformationGenerator(nn.Module):
    """G_Def(I_x, x, y): GANimation's generator trunk (stem, two stride-2 convs, ``repeat_num`` residual
    blocks) on the image and the tiled source and target AUs (34 channels), whose up-sampling layers are
    replaced by bilinear up-sampling (Appendix D.1): a 3x3 conv gives a 2-channel offset field at a quarter
    of the image side, bounded by ``tanh`` to ``max_offset`` pixels, then up-sampled x4 bilinearly. The
    offset conv starts at zero, so the grid is the identity at step 0.

    ``forward`` returns the grid G (B x H x W x 2); :meth:`deform` the warped image and the grid."""

    def __init__(self, conv_dim: int = 64, c_dim: int = 17, repeat_num: int = 6, *, image_size: int = 128,
                 max_offset: float = 5.0):
        super().__init__()
        self.c_dim, self.image_size = c_dim, image_size
        self.max_offset = max_offset * image_size / 128          # pixels at this size (5 px at 128)
        self.trunk = nn.Sequential(*trunk_layers(3 + 2 * c_dim, conv_dim, repeat_num, track_running_stats=False,
                                                 up_path=False))
        self.offsets = nn.Conv2d(conv_dim * 2 ** DOWNSAMPLINGS, 2, 3, 1, 1)
        nn.init.zeros_(self.offsets.weight)
        nn.init.zeros_(self.offsets.bias)

    def offset_field(self, x: torch.Tensor, y_src: torch.Tensor, y_trg: torch.Tensor) -> torch.Tensor:
        """B x 2 x H x W offsets in normalised units, each at most ``max_offset`` pixels."""
        check_image_size(x, "DefGAN's deformation generator")
        if x.shape[-1] != self.image_size:
            raise ValueError(f"this G_Def was built for {self.image_size} px images; got {x.shape[-1]} px")
        h = self.trunk(tile(x, torch.cat([y_src, y_trg], dim=1)))
        bound = 2 * self.max_offset / x.shape[-1]                 # pixels -> normalised units
        low = torch.tanh(self.offsets(h)) * bound
        return F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, y_src: torch.Tensor, y_trg: torch.Tensor) -> torch.Tensor:
        return offset_grid(self.offset_field(x, y_src, y_trg).float())

    def deform(self, x: torch.Tensor, y_src: torch.Tensor, y_trg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(I*_y, G)``: G_Def^W(I_x, x, y) of Eq. 5 and the grid that made it."""
        grid = self(x, y_src, y_trg)
        return warp(grid, x), grid


class DefGANGenerator(nn.Module):
    """G_Comp = G_Texture ∘ G_Def^W (Eq. 3), both generators in one module (the paper optimises them
    jointly): ``deform`` (a :class:`DeformationGenerator`, or ``None`` without a motion stage) and
    ``texture`` (GANimation's generator with ``convention="paper"``, or ``None`` without a texture stage).

    ``forward(x, y_src, y_trg)`` returns every intermediate: ``grid`` (G; the identity without a motion
    stage), ``deformed`` (I*_y, Eq. 5), ``texture`` (T), ``mask`` (M) and ``output`` (I_y, Eq. 6; I*_y
    without a texture stage)."""

    def __init__(self, deform: DeformationGenerator | None, texture: nn.Module | None):
        super().__init__()
        if deform is None and texture is None:
            raise ValueError("DefGAN needs at least one stage (a deformation or a texture generator)")
        self.deform, self.texture = deform, texture

    def forward(self, x: torch.Tensor, y_src: torch.Tensor, y_trg: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.deform is not None:
            deformed, grid = self.deform.deform(x, y_src, y_trg)
        else:
            deformed, grid = x, identity_grid(len(x), x.shape[-1], device=x.device)
        out = {"grid": grid, "deformed": deformed}
        if self.texture is not None:
            texture, mask = self.texture(deformed, y_trg)
            out.update(texture=texture, mask=mask, output=mask * texture + (1 - mask) * deformed)   # Eq. 6
        else:
            out["output"] = deformed
        return out

    def edit(self, x: torch.Tensor, y_src: torch.Tensor, y_trg: torch.Tensor) -> torch.Tensor:
        """Editor interface: I_y = G_Comp(I_x, x, y)."""
        return self(x, y_src, y_trg)["output"]
