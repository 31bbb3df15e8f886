"""The losses of Ling et al. (relative-au-msf.txt, Sec. 3.4), one function per equation.

``x`` is the input, ``x' = G(x, v_rel)`` the edit; ``D`` is GANimation's critic, whose two heads are the
paper's ``D_adv`` (a patch map of realism scores) and ``D_cond`` (17 regressed AUs).

======  =============================================  ===================================================
Eq.     what                                           function
======  =============================================  ===================================================
3       WGAN-GP critic: -D(x) + D(x') + λ_gp GP        :func:`adversarial_loss_d`, :func:`gradient_penalty_loss`
4       generator's adversarial term -D(x')            :func:`adversarial_loss_g`
5       AU regression of real faces vs v_src           :func:`condition_loss_d`
6       AU regression of edits vs v_tgt               :func:`condition_loss_g`
7       self-reconstruction G(x, 0) and the cycle      :func:`self_reconstruction_loss`,
        G(G(x, v_rel), -v_rel), both L1                :func:`cycle_reconstruction_loss`, :func:`reconstruction_loss`
(TV)    total variation of the edit (Sec. 3.4)         :func:`total_variation_loss`
8       critic total: -L_Dadv + λ1 L_Dcond             :func:`discriminator_loss`
9       generator total: -L_Gadv + λ2 L_Gcond          :func:`generator_loss`
        + λ3 L_rec + λ4 L_tv
======  =============================================  ===================================================

Conventions (the official code, a fork of GANimation's): the squared norms of Eq. 5-6 are GANimation's
``MSELoss / batch`` (:func:`faceedit_nb.losses.au_mse`), the L1 norms of Eq. 7 are means over pixels, the
TV is summed over pixels (hence λ4 = 5e-6), and the gradient penalty of Eq. 3 is its own critic step
(``lambda_D_gp`` = λ_gp = 10), as in both codes.
"""
from __future__ import annotations

import torch

from ... import losses

__all__ = ["adversarial_loss_d", "gradient_penalty_loss", "adversarial_loss_g", "condition_loss_d",
           "condition_loss_g", "self_reconstruction_loss", "cycle_reconstruction_loss", "reconstruction_loss",
           "total_variation_loss", "discriminator_loss", "generator_loss"]


def adversarial_loss_d(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3 without its penalty, as a loss to minimise: ``(-E_x D_adv(x), E_x' D_adv(x'))``."""
    return losses.wgan_critic_loss(real_scores, fake_scores)


def gradient_penalty_loss(D, x: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 3's penalty ``E_x̂ (||∇_x̂ D_adv(x̂)||_2 - 1)^2`` at random points x̂ between ``x`` and ``x_fake``
    (weighted by λ_gp in its own critic step)."""
    return losses.gradient_penalty(D, losses.interpolate(x, x_fake))


def adversarial_loss_g(fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 4 as a loss to minimise: ``-E D_adv(G(x, v_rel))``."""
    return losses.wgan_generator_loss(fake_scores)


def condition_loss_d(real_aus: torch.Tensor, v_src: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``E ||D_cond(x) - v_src||_2^2``; the critic learns to read the AUs of real faces (absolute
    AUs: the critic never sees v_rel)."""
    return losses.au_mse(real_aus, v_src)


def condition_loss_g(fake_aus: torch.Tensor, v_tgt: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ``E ||D_cond(x') - v_tgt||_2^2``; the edit must show the absolute target AUs
    ``v_tgt = v_src + v_rel``."""
    return losses.au_mse(fake_aus, v_tgt)


def self_reconstruction_loss(x_self: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 7, first term: ``||x - G(x, 0)||_1``; with v_rel = 0 the generator must change nothing."""
    return losses.l1(x_self, x)


def cycle_reconstruction_loss(x_cycle: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 7, second term: ``||G(G(x, v_rel), -v_rel) - x||_1``; undoing the edit gives the input back."""
    return losses.l1(x_cycle, x)


def reconstruction_loss(x: torch.Tensor, x_self: torch.Tensor, x_cycle: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``L_rec`` = self-reconstruction + cycle (the paper weighs the sum by λ3)."""
    return self_reconstruction_loss(x_self, x) + cycle_reconstruction_loss(x_cycle, x)


def total_variation_loss(x_fake: torch.Tensor) -> torch.Tensor:
    """``L_tv`` of Eq. 9 on the edited image: ``Σ |x'[i, j+1] - x'[i, j]| + |x'[i+1, j] - x'[i, j]|``,
    summed over batch, channels and pixels (GANimation's TV, which the paper follows)."""
    return losses.total_variation(x_fake)


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, d_cond: torch.Tensor, *,
                       lambda_D_cond: float, lambda_D_prob: float = 1.0) -> torch.Tensor:
    """Eq. 8: ``L_D = -L_Dadv + λ1 L_Dcond`` from the terms of :func:`adversarial_loss_d` and
    :func:`condition_loss_d` (the penalty of -L_Dadv is the separate step of :func:`gradient_penalty_loss`)."""
    return lambda_D_prob * (d_real + d_fake) + lambda_D_cond * d_cond


def generator_loss(g_adv: torch.Tensor, g_cond: torch.Tensor, g_self: torch.Tensor, g_cycle: torch.Tensor,
                   g_tv: torch.Tensor, *, lambda_G_cond: float, lambda_rec: float, lambda_cyc: float,
                   lambda_tv: float, lambda_D_prob: float = 1.0) -> torch.Tensor:
    """Eq. 9: ``L_G = -L_Gadv + λ2 L_Gcond + λ3 L_rec + λ4 L_tv``, with L_rec's two terms weighted apart
    (``lambda_rec`` and ``lambda_cyc``: both λ3 = 30 in the paper and the code)."""
    return (lambda_D_prob * g_adv + lambda_G_cond * g_cond + lambda_rec * g_self + lambda_cyc * g_cycle
            + lambda_tv * g_tv)
