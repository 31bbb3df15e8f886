"""The losses of DefGAN (defgan.txt, Sec. 3.2), one function per equation.

``x`` is the input I_x with AUs x, ``y`` the target AUs; ``I*_y`` the deformed image (Eq. 5), ``I_y`` the
final edit (Eq. 6), ``G`` the deformation grid, ``M`` the texture mask. ``D`` is GANimation's critic,
whose two heads are the paper's ``D_c`` (a patch map of critic scores) and ``D_exp`` (17 regressed AUs).

======  ================================================  ================================================
Eq.     what                                              function
======  ================================================  ================================================
7       WGAN-GP critic: D_c(I_y) - D_c(I_x) + λ_gp GP       :func:`critic_loss_d`, :func:`gradient_penalty_loss`
8       generator's critic term -D_c(I_y)                  :func:`critic_loss_g`
9       AU loss of I*_y (λ 1000) and of I_y (λ 4000)        :func:`expression_loss_g`
10      the critic's AU regression of real faces           :func:`expression_loss_d`
11      cycle ||G_Comp(G_Comp(I_x, x, y), y, x) - I_x||_1    :func:`cycle_loss`
12      1 - cos(emb(I*_y), emb(I_x))                       :func:`face_identity_loss`
13      (Warp(G_cyc, G) - I_Def)^2                         :func:`grid_composition_loss`
14      λ_Geye (G - I_Def)^2 + λ_GTV TV(G)^2               :func:`grid_regularisation_loss`
15      λ_Meye ||M||^2 + λ_MTV TV(M)^2                     :func:`mask_regularisation_loss`
16      generator total                                   :func:`generator_loss`
18      critic total L_critic + L_exp                     :func:`discriminator_loss`
======  ================================================  ================================================

Conventions (no code is public; :data:`.config.OUR_CHOICES`): the squared norms of Eq. 9-10 are GANimation's
``MSELoss / batch`` (:func:`faceedit_nb.losses.au_mse`), so the paper's λ_exp = 4000 / 1000 act as in
GANimation's code; the L1 of Eq. 11 is a mean over pixels; E[...] of Eq. 13-15 is a mean; the TV sums of
Eq. 14-15 are sums of squared neighbour differences (the paper prints ``G_{i+1,j} - G_{i+1,j}``, a typo for
``G_{i+1,j} - G_{i,j}``); grids are in normalised coordinates.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import losses
from ...distributed import batch_sum
from .model import identity_grid, warp

__all__ = ["critic_loss_d", "gradient_penalty_loss", "critic_loss_g", "expression_loss_g", "expression_loss_d",
           "cycle_loss", "face_identity_loss", "grid_composition_loss", "squared_total_variation",
           "grid_regularisation_loss", "mask_regularisation_loss", "generator_loss", "discriminator_loss"]


def critic_loss_d(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7 without its penalty: ``(-E D_c(I_x), E D_c(G_Comp(I_x, x, y)))``."""
    return losses.wgan_critic_loss(real_scores, fake_scores)


def gradient_penalty_loss(D, x: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 7's penalty ``E (||∇ D_c(Î)||_2 - 1)^2`` at random points between real and edited faces (its own
    critic step, weighted by λ_gp)."""
    return losses.gradient_penalty(D, losses.interpolate(x, x_fake))


def critic_loss_g(fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 8: ``-E D_c(G_Comp(I_x, x, y))``."""
    return losses.wgan_generator_loss(fake_scores)


def expression_loss_g(deformed_aus: torch.Tensor | None, final_aus: torch.Tensor, y: torch.Tensor, *,
                      lambda_def: float, lambda_comp: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 9: ``λ_exp^GDef ||D_exp(I*_y) - y||^2 + λ_exp^GComp ||D_exp(I_y) - y||^2``. Returns the weighted
    sum and the two unweighted terms (``deformed_aus`` ``None``: no motion stage, its term is 0)."""
    on_final = losses.au_mse(final_aus, y)
    on_deformed = losses.au_mse(deformed_aus, y) if deformed_aus is not None else torch.zeros_like(on_final)
    return lambda_def * on_deformed + lambda_comp * on_final, on_deformed, on_final


def expression_loss_d(real_aus: torch.Tensor, x_aus: torch.Tensor) -> torch.Tensor:
    """Eq. 10: ``E ||D_exp(I_x) - x||^2``, the critic's AU regression of real faces."""
    return losses.au_mse(real_aus, x_aus)


def cycle_loss(x_cycle: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 11 (without λ_cyc): ``||G_Comp(G_Comp(I_x, x, y), y, x) - I_x||_1``."""
    return losses.l1(x_cycle, x)


def face_identity_loss(embed, deformed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 12: ``E [1 - cos(emb(I*_y), emb(I_x))]`` with ``embed`` a frozen face-embedding network (the
    paper: OpenFace; here the project's identity network of another seed than the judge's)."""
    a, b = embed(deformed), embed(x)
    return (1 - F.cosine_similarity(a.float(), b.float(), dim=1)).mean()


def grid_composition_loss(grid_cycle: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Eq. 13 (without λ_comp): ``E (Warp(G_cyc, G) - I_Def)^2``. The cycle's deformation applied after the
    edit's must undo it: ``G`` sampled at ``G_cyc`` is the identity grid."""
    composed = warp(grid_cycle, grid.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    ident = identity_grid(len(grid), grid.shape[1], device=grid.device, dtype=composed.dtype)
    return (composed.float() - ident.float()).pow(2).mean()


def squared_total_variation(m: torch.Tensor) -> torch.Tensor:
    """``Σ_ij (m[i+1, j] - m[i, j])^2 + (m[i, j+1] - m[i, j])^2`` over the last two axes, summed over the
    batch and channels (the TV of Eq. 14-15)."""
    m = m.float()  # batch_sum: the whole batch's sum also in data-parallel training
    return batch_sum((m[..., 1:, :] - m[..., :-1, :]).pow(2).sum() + (m[..., :, 1:] - m[..., :, :-1]).pow(2).sum())


def grid_regularisation_loss(grid: torch.Tensor, *, lambda_eye: float, lambda_tv: float
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 14: ``λ_Geye E (G - I_Def)^2 + λ_GTV TV(G)``. Returns the weighted sum and the two terms."""
    ident = identity_grid(len(grid), grid.shape[1], device=grid.device, dtype=grid.dtype)
    eye = (grid.float() - ident.float()).pow(2).mean()
    tv = squared_total_variation(grid.permute(0, 3, 1, 2))
    return lambda_eye * eye + lambda_tv * tv, eye, tv


def mask_regularisation_loss(mask: torch.Tensor, *, lambda_eye: float, lambda_tv: float
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 15: ``λ_Meye E ||M||^2 + λ_MTV TV(M)`` (M = 1 takes the texture: the penalty keeps the warped
    face). Returns the weighted sum and the two terms."""
    eye = mask.float().pow(2).mean()
    tv = squared_total_variation(mask)
    return lambda_eye * eye + lambda_tv * tv, eye, tv


def generator_loss(*, critic: torch.Tensor, expression: torch.Tensor, cycle: torch.Tensor, face_id: torch.Tensor,
                   composition: torch.Tensor, grid_reg: torch.Tensor, mask_reg: torch.Tensor, lambda_cyc: float,
                   lambda_face_id: float, lambda_comp: float, lambda_critic: float = 1.0) -> torch.Tensor:
    """Eq. 16: ``L_critic^G + L_exp^G + λ_cyc L_cyc + L_faceID + λ_comp L_comp + L_reg^GDef + L_reg^M``
    (``expression``, ``grid_reg`` and ``mask_reg`` already weighted by Eq. 9, 14 and 15's coefficients)."""
    return (lambda_critic * critic + expression + lambda_cyc * cycle + lambda_face_id * face_id
            + lambda_comp * composition + grid_reg + mask_reg)


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, d_exp: torch.Tensor, *, lambda_exp: float,
                       lambda_critic: float = 1.0) -> torch.Tensor:
    """Eq. 18: ``L_critic^D + L_exp^D`` (the penalty of Eq. 7 is the separate step of
    :func:`gradient_penalty_loss`; ``lambda_exp`` weighs Eq. 10, see :data:`.config.OUR_CHOICES`)."""
    return lambda_critic * (d_real + d_fake) + lambda_exp * d_exp
