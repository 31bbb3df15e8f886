"""LSSL's losses, one function per equation of lssl.txt (Sec. 3.1). Images are in [-1, 1]; every term is a
mean over the batch (and, for the L1 terms, over pixels)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ... import losses as shared

__all__ = ["adversarial_loss_d", "adversarial_loss_g", "gradient_penalty_loss", "classification_loss_real",
           "classification_loss_fake", "identity_loss", "parsing_loss", "bidirectional_loss", "generator_loss",
           "discriminator_loss"]


def adversarial_loss_d(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1, the critic's side (-L_GAN without the penalty): ``(-E D_src(x, s), E D_src(x', s'))``."""
    return shared.wgan_critic_loss(real_scores, fake_scores)


def adversarial_loss_g(fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 1, the generator's side: -E D_src(G_dec(G_enc(x, s), y))."""
    return shared.wgan_generator_loss(fake_scores)


def gradient_penalty_loss(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eq. 1's L_gp (Gulrajani et al.): (||∇ D_src(x̂)||_2 - 1)^2 at random points between real and fake
    inputs (image, or image and side image concatenated)."""
    return shared.gradient_penalty(lambda z: critic(z)[0], shared.interpolate(real, fake.detach()))


def classification_loss_real(logits: torch.Tensor, y_src: torch.Tensor) -> torch.Tensor:
    """Eq. 2, L_cls^r: the binary cross-entropies of D_cls(x, s) against the real faces' one-hot classes y',
    summed over the classes (as printed), averaged over the batch."""
    return shared.attribute_bce_sum(logits, y_src.float())


def classification_loss_fake(logits: torch.Tensor, y_trg: torch.Tensor) -> torch.Tensor:
    """Eq. 3, L_cls^f: the same on the generated pairs (x', s') against their target classes y."""
    return shared.attribute_bce_sum(logits, y_trg.float())


def identity_loss(x_fake: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 4, L_id = E ||G_dec(G_enc(x, s), y) - x||_1: the output kept close to the input's details."""
    return shared.l1(x_fake, x)


def parsing_loss(parser, x_fake: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 5, L_p = E A_p(P(x), P(x')): the pixel-wise softmax (cross-entropy) loss of the frozen parser's
    logits on the output against its labels (lips, eyes, skin, other) on the input."""
    with torch.no_grad():
        target = parser(x).argmax(1)
    return F.cross_entropy(parser(x_fake).float(), target)


def bidirectional_loss(x: torch.Tensor, x_cycle: torch.Tensor, s: torch.Tensor | None, s_cycle: torch.Tensor | None,
                       latent: torch.Tensor, latent_fake: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """Eq. 6, L_bi = E[||x - x̂||_1 + ||s - ŝ||_1] + E ||G_enc(x, s) - G_enc(x', s')||_1 with
    x̂, ŝ = G_dec(G_enc(x', s'), y'). Returns ``(L_bi, image term, side term, latent term)``; a term whose
    inputs are ``None`` (no side image; no cycle in pose normalisation) is 0."""
    zero = latent.new_zeros((), dtype=torch.float32)
    image = shared.l1(x, x_cycle) if x_cycle is not None else zero
    side = shared.l1(s, s_cycle) if s is not None and s_cycle is not None else zero
    lat = shared.l1(latent, latent_fake) if latent_fake is not None else zero
    return image + side + lat, image, side, lat


def generator_loss(*, adversarial, classification, bidirectional, identity, parsing, lambda_bi: float,
                   lambda_cls: float, lambda_id: float, lambda_p: float) -> torch.Tensor:
    """Eq. 7 (top): L_G = L_GAN + λ_bi L_bi + λ_cls L_cls^f + λ_id L_id + λ_p L_p."""
    return adversarial + lambda_bi * bidirectional + lambda_cls * classification + lambda_id * identity + \
        lambda_p * parsing


def discriminator_loss(real, fake, classification, gp, *, lambda_cls: float, lambda_gp: float) -> torch.Tensor:
    """Eq. 7 (bottom): L_D = -L_GAN + λ_cls L_cls^r, with L_GAN's penalty λ_gp L_gp (Eq. 1)."""
    return real + fake + lambda_gp * gp + lambda_cls * classification
