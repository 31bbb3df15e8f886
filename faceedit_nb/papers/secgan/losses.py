"""The losses of SeCGAN (secgan.txt, Sec. 3.1-3.3), one function per equation.

Both branches are trained as WGAN-GP (Eq. 1-2 and 6-7), classify labels from the critics' second head
(Eq. 3-4 and 8-9), reconstruct their input from the zero condition ``G(·, 0)`` (Eq. 5: L1 for images;
Eq. 10: cross-entropy for masks), and are tied by the semantic consistency losses (Eq. 11-12). The totals
are Eq. 13-16. Masks are (B, 12, H, W): one-hot ``s``, or soft ``ŝ`` (probabilities, the softmax of G_seg or
P's segment probabilities).

Classification: the paper's Eq. 3-4 (and 8-9) read ``(1 - y) · (1 - log D_cls)``, a misprint of binary
cross-entropy's ``(1 - y) · log(1 - D_cls)``; we use the backbone's own classification loss (StarGAN:
binary cross-entropy summed over attributes, cross-entropy over RaFD's expressions; AttGAN: binary
cross-entropy averaged), passed in as ``cls_loss(logits, labels)``, since the paper keeps the originals'.

======  ==========================================  ========================================
Eq.     what                                        function
======  ==========================================  ========================================
1       WGAN-GP loss of D_rgb                       :func:`adversarial_loss_d_rgb`
2       adversarial loss of G_rgb                   :func:`adversarial_loss_g_rgb`
3       classification loss of D_rgb (real)         :func:`classification_loss_d_rgb`
4       classification loss of G_rgb (fake)         :func:`classification_loss_g_rgb`
5       reconstruction of the RGB branch, L1        :func:`reconstruction_loss_rgb`
6       WGAN-GP loss of D_seg                       :func:`adversarial_loss_d_seg`
7       adversarial loss of G_seg                   :func:`adversarial_loss_g_seg`
8       classification loss of D_seg (real)         :func:`classification_loss_d_seg`
9       classification loss of G_seg (fake)         :func:`classification_loss_g_seg`
10      reconstruction of the semantic branch, CE   :func:`reconstruction_loss_seg`
11      semantic consistency for G_rgb              :func:`semantic_consistency_loss_g_rgb`
12      semantic consistency for G_seg              :func:`semantic_consistency_loss_g_seg`
13      total of D_rgb                              :func:`discriminator_loss_rgb`
14      total of G_rgb                              :func:`generator_loss_rgb`
15      total of D_seg                              :func:`discriminator_loss_seg`
16      total of G_seg                              :func:`generator_loss_seg`
======  ==========================================  ========================================
"""
from __future__ import annotations

from typing import Callable

import torch

from ... import losses
from ...methods import critic_real_fake
from .model import one_hot_segments

__all__ = ["EPS", "mask_cross_entropy", "adversarial_loss_d_rgb", "adversarial_loss_g_rgb",
           "classification_loss_d_rgb", "classification_loss_g_rgb", "reconstruction_loss_rgb",
           "adversarial_loss_d_seg", "adversarial_loss_g_seg", "classification_loss_d_seg",
           "classification_loss_g_seg", "reconstruction_loss_seg", "semantic_consistency_loss_g_rgb",
           "semantic_consistency_loss_g_seg", "discriminator_loss_rgb", "generator_loss_rgb",
           "discriminator_loss_seg", "generator_loss_seg"]

EPS = 1e-8  # probabilities are clamped here before the log (a softmax can underflow to 0 in bf16)


def mask_cross_entropy(target: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """``E[-1/HW Σ_ij t_ij · log p_ij]``: the pixel-averaged cross-entropy of Eq. 10-12 between a target mask
    ``t`` (one-hot, B x 12 x H x W) and predicted probabilities ``p`` of the same shape."""
    log_p = probabilities.float().clamp_min(EPS).log()
    return -(target.float() * log_p).sum(1).mean()


def _wgan_gp(D, real: torch.Tensor, fake: torch.Tensor):
    """``(E[D(fake)], -E[D(real)], GP, real class logits)`` from one critic pass over real and fake."""
    (out_real, cls_real), (out_fake, _) = critic_real_fake(D, real, fake.detach())
    d_real, d_fake = losses.wgan_critic_loss(out_real, out_fake)
    gp = losses.gradient_penalty(D, losses.interpolate(real, fake))
    return d_fake, d_real, gp, cls_real


# --- RGB branch (Eq. 1-5) -----------------------------------------------------------------------------
def adversarial_loss_d_rgb(D, x_in: torch.Tensor, x_out: torch.Tensor):
    """Eq. 1: ``E[D(G(x, y_diff))] - E[D(x)] + λ_gp E[(||∇D(x̃)||_2 - 1)^2]``, x̃ on lines between x_in and
    x_out. Returns the terms ``(fake, real, penalty before λ_gp, D_cls logits of x_in)``."""
    return _wgan_gp(D, x_in, x_out)


def adversarial_loss_g_rgb(out_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``-E[D_rgb(G_rgb(x, y_diff))]`` from the critic's score of the translated images."""
    return losses.wgan_generator_loss(out_fake)


def classification_loss_d_rgb(logits_real: torch.Tensor, y_src: torch.Tensor, cls_loss: Callable) -> torch.Tensor:
    """Eq. 3: the critic classifies the real image's source labels (binary cross-entropy, see above)."""
    return cls_loss(logits_real, y_src)


def classification_loss_g_rgb(logits_fake: torch.Tensor, y_trg: torch.Tensor, cls_loss: Callable) -> torch.Tensor:
    """Eq. 4: the critic should read the target labels in the translated image."""
    return cls_loss(logits_fake, y_trg)


def reconstruction_loss_rgb(x_in: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``E[||x - G_rgb(x, 0)||_1]`` (mean absolute error over pixels), with ``x_rec = G_rgb(x, 0)``."""
    return losses.l1(x_in, x_rec)


# --- semantic branch (Eq. 6-10) -----------------------------------------------------------------------
def adversarial_loss_d_seg(D_seg, s_in: torch.Tensor, s_out: torch.Tensor):
    """Eq. 6: Eq. 1 for masks: real one-hot ``s_in``, fake soft ``ŝ_out = G_seg(s_in, y_diff)``; the same terms."""
    return _wgan_gp(D_seg, s_in, s_out)


def adversarial_loss_g_seg(out_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``-E[D_seg(G_seg(s, y_diff))]``."""
    return losses.wgan_generator_loss(out_fake)


def classification_loss_d_seg(logits_real: torch.Tensor, y_src: torch.Tensor, cls_loss: Callable) -> torch.Tensor:
    """Eq. 8: D_seg classifies the source labels from the real mask."""
    return cls_loss(logits_real, y_src)


def classification_loss_g_seg(logits_fake: torch.Tensor, y_trg: torch.Tensor, cls_loss: Callable) -> torch.Tensor:
    """Eq. 9: D_seg should read the target labels in the translated mask."""
    return cls_loss(logits_fake, y_trg)


def reconstruction_loss_seg(s_in: torch.Tensor, s_rec: torch.Tensor) -> torch.Tensor:
    """Eq. 10: ``E[-1/HW Σ_ij s_ij · log G_seg(s, 0)_ij]``, cross-entropy "more suitable for optimising
    probability distributions" than L1; ``s_rec = G_seg(s_in, 0)``."""
    return mask_cross_entropy(s_in, s_rec)


# --- semantic consistency (Eq. 11-12) ----------------------------------------------------------------
def semantic_consistency_loss_g_rgb(s_out: torch.Tensor, parsed_out: torch.Tensor) -> torch.Tensor:
    """Eq. 11: ``E[-1/HW Σ_ij s_out,ij · log P(x_out)_ij]``: the parse of G_rgb's output should agree with the
    one-hot of G_seg's translated mask ``s_out`` (a constant target); the gradient reaches G_rgb through P."""
    return mask_cross_entropy(one_hot_segments(s_out.detach()), parsed_out)


def semantic_consistency_loss_g_seg(s_out: torch.Tensor, parsed_out: torch.Tensor) -> torch.Tensor:
    """Eq. 12: ``E[-1/HW Σ_ij P̄(x_out)_ij · log ŝ_out,ij]``: G_seg's soft output should agree with the one-hot
    parse P̄ of G_rgb's output (a constant target)."""
    return mask_cross_entropy(one_hot_segments(parsed_out.detach()), s_out)


# --- totals (Eq. 13-16) ------------------------------------------------------------------------------
def discriminator_loss_rgb(D, x_in, x_out, y_src, *, cls_loss: Callable, lambda_cls: float, lambda_gp: float) -> dict:
    """Eq. 13: ``L_adv^{D_rgb} + λ_cls L_cls^{D_rgb}``; the terms logged under ``D/...``."""
    d_fake, d_real, d_gp, cls_real = adversarial_loss_d_rgb(D, x_in, x_out)  # Eq. 1
    d_cls = classification_loss_d_rgb(cls_real, y_src, cls_loss)                        # Eq. 3
    loss = d_real + d_fake + lambda_gp * d_gp + lambda_cls * d_cls
    return {"loss": loss, "D/loss_real": d_real, "D/loss_fake": d_fake, "D/loss_gp": d_gp, "D/loss_cls": d_cls}


def generator_loss_rgb(D, x_in, x_out, x_rec, y_trg, *, cls_loss: Callable, lambda_cls: float, lambda_rec: float,
                       lambda_sc: float = 0.0, s_out=None, parsed_out=None) -> dict:
    """Eq. 14: ``L_adv^{G_rgb} + λ_cls L_cls^{G_rgb} + λ_rec L_rec^{rgb} + λ_sc L_sc^{G_rgb}`` (the last term
    only with the semantic branch: ``s_out`` from G_seg, ``parsed_out = P(x_out)``)."""
    out_fake, cls_fake = D(x_out)
    g_fake = adversarial_loss_g_rgb(out_fake)                      # Eq. 2
    g_cls = classification_loss_g_rgb(cls_fake, y_trg, cls_loss)   # Eq. 4
    g_rec = reconstruction_loss_rgb(x_in, x_rec)                   # Eq. 5
    loss = g_fake + lambda_cls * g_cls + lambda_rec * g_rec
    out = {"G/loss_fake": g_fake, "G/loss_cls": g_cls, "G/loss_rec": g_rec}
    if s_out is not None:
        g_sc = semantic_consistency_loss_g_rgb(s_out, parsed_out)  # Eq. 11
        loss = loss + lambda_sc * g_sc
        out["G/loss_sc"] = g_sc
    return {"loss": loss, **out}


def discriminator_loss_seg(D_seg, s_in, s_out, y_src, *, cls_loss: Callable, lambda_cls: float,
                           lambda_gp: float) -> dict:
    """Eq. 15: ``L_adv^{D_seg} + λ_cls L_cls^{D_seg}``; the terms logged under ``D_seg/...``."""
    d_fake, d_real, d_gp, cls_real = adversarial_loss_d_seg(D_seg, s_in, s_out)  # Eq. 6
    d_cls = classification_loss_d_seg(cls_real, y_src, cls_loss)                            # Eq. 8
    loss = d_real + d_fake + lambda_gp * d_gp + lambda_cls * d_cls
    return {"loss": loss, "D_seg/loss_real": d_real, "D_seg/loss_fake": d_fake, "D_seg/loss_gp": d_gp,
            "D_seg/loss_cls": d_cls}


def generator_loss_seg(D_seg, s_in, s_out, s_rec, y_trg, parsed_out, *, cls_loss: Callable, lambda_cls: float,
                       lambda_rec: float, lambda_sc: float) -> dict:
    """Eq. 16: ``L_adv^{G_seg} + λ_cls L_cls^{G_seg} + λ_rec L_rec^{seg} + λ_sc L_sc^{G_seg}``."""
    out_fake, cls_fake = D_seg(s_out)
    g_fake = adversarial_loss_g_seg(out_fake)                       # Eq. 7
    g_cls = classification_loss_g_seg(cls_fake, y_trg, cls_loss)    # Eq. 9
    g_rec = reconstruction_loss_seg(s_in, s_rec)                    # Eq. 10
    g_sc = semantic_consistency_loss_g_seg(s_out, parsed_out)       # Eq. 12
    loss = g_fake + lambda_cls * g_cls + lambda_rec * g_rec + lambda_sc * g_sc
    return {"loss": loss, "G_seg/loss_fake": g_fake, "G_seg/loss_cls": g_cls, "G_seg/loss_rec": g_rec,
            "G_seg/loss_sc": g_sc}
