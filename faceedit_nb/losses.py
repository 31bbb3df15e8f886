"""Loss functions of the baselines, one small named function each.

Conventions: critics output unbounded scores (WGAN); every loss returns a float32 scalar (inputs from a
bf16 autocast region are upcast first), so logging and the engine's NaN checks see full precision.

=================================  ===========================================================
WGAN-GP (Gulrajani et al. 2017)    :func:`wgan_critic_loss`, :func:`wgan_generator_loss`,
                                   :func:`gradient_penalty`
Domain / attribute classification  :func:`expression_ce` (RaFD-style, one class per image),
                                   :func:`attribute_bce_sum` (StarGAN's CelebA loss, summed / batch),
                                   :func:`attribute_bce_mean` (AttGAN's, mean over all entries)
Reconstruction / cycle             :func:`l1`
GANimation                         :func:`au_mse` (AU regression, mean / batch as the official code),
                                   :func:`attention_mean`, :func:`total_variation`
=================================  ===========================================================
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import batch_sum, global_batch, uniform

__all__ = ["wgan_critic_loss", "wgan_generator_loss", "gradient_penalty", "interpolate", "expression_ce",
           "attribute_bce_sum", "attribute_bce_mean", "l1", "au_mse", "attention_mean", "total_variation"]


# --- WGAN-GP -------------------------------------------------------------------------------------------
def wgan_critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The critic's two terms ``(-E[D(x)], E[D(G(x))])`` (StarGAN Eq. 1 / WGAN); their sum is minimised."""
    return -d_real.float().mean(), d_fake.float().mean()


def wgan_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial term ``-E[D(G(x))]``."""
    return -d_fake.float().mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random points on the lines between real and fake images (one ``alpha ~ U(0, 1)`` per image)."""
    # in data-parallel training each process keeps its slice of the whole batch's draws (faceedit_nb.distributed)
    alpha = uniform(real.shape[0], 1, 1, 1, generator=generator, device=real.device, dtype=real.dtype)
    return (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)


def gradient_penalty(critic, x_hat: torch.Tensor) -> torch.Tensor:
    """``E[(||grad_x D(x_hat)||_2 - 1)^2]`` at the points ``x_hat`` (which must require grad; see
    :func:`interpolate`). ``critic(x)`` returns the critic map or a tuple whose first entry it is.

    The gradient is taken with ``create_graph=True`` so that the penalty can be backpropagated (double
    backward); the norm is computed in float32 even under bf16 autocast.
    """
    out = critic(x_hat)
    out = out[0] if isinstance(out, (tuple, list)) else out
    grad, = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
    norm = grad.float().flatten(1).norm(2, dim=1)
    return ((norm - 1) ** 2).mean()


# --- classification ------------------------------------------------------------------------------------
def expression_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over exclusive classes (StarGAN on RaFD; labels are class indices)."""
    return F.cross_entropy(logits.float(), labels.long())


def attribute_bce_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits summed over attributes and averaged over the batch
    (StarGAN on CelebA: ``size_average=False`` then ``/ batch``)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="sum") / logits.shape[0]


def attribute_bce_mean(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits averaged over batch and attributes (AttGAN-PyTorch)."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


# --- reconstruction ------------------------------------------------------------------------------------
def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error: StarGAN's reconstruction loss (Eq. 4), GANimation's cycle loss, AttGAN's
    reconstruction loss."""
    return (x.float() - y.float()).abs().mean()


# --- GANimation ----------------------------------------------------------------------------------------
def au_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """GANimation's conditional expression loss: MSE of the regressed AUs, divided once more by the batch
    size as the official code does (``MSELoss(...) / B``), so ``lambda_D_cond = 4000`` acts as 4000 / B (B: the
    whole batch, also in data-parallel training)."""
    return F.mse_loss(pred.float(), target.float()) / global_batch(pred.shape[0])


def attention_mean(attention: torch.Tensor) -> torch.Tensor:
    """GANimation's attention loss: the mean of the attention mask (keeps it from saturating to 1)."""
    return attention.float().mean()


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation, summed over batch and pixels as in the official code (hence the
    tiny weight 1e-5): ``sum |m[i, j+1] - m[i, j]| + sum |m[i+1, j] - m[i, j]|``."""
    m = mask.float()
    return batch_sum((m[..., :, 1:] - m[..., :, :-1]).abs().sum() + (m[..., 1:, :] - m[..., :-1, :]).abs().sum())
