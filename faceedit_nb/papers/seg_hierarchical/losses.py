"""The losses of Bodur et al. (seg-hierarchical-gan.txt, Sec. 3.2), one function per equation.

The paper writes the adversarial loss in its log form (Eq. 5) but builds every GAN from StarGAN, whose
official training uses WGAN-GP; we train Eq. 5 as WGAN-GP (``n_critic`` critic steps per generator step),
as the baselines chapter does. Each branch ``p`` (global, fusion and the four local parts) has its own
critic ``D_p`` with an auxiliary expression classifier.

======  ====================================  =====================================================
Eq.     what                                  function
======  ====================================  =====================================================
5       adversarial loss of branch p          :func:`adversarial_loss` (critic), :func:`adversarial_loss_g`
6       classification loss of branch p       :func:`classification_loss`
7       cycle reconstruction of branch p      :func:`reconstruction_loss`
8       the weighted sum over the branches    :func:`discriminator_loss`, :func:`generator_loss`
9       the parser's update                   :func:`faceedit_nb.papers.seg_hierarchical.train.parameter_groups`
======  ====================================  =====================================================
"""
from __future__ import annotations

import torch

from ... import losses
from .model import PARTS, HierarchicalGAN

__all__ = ["adversarial_loss", "adversarial_loss_g", "classification_loss", "reconstruction_loss", "branches",
           "discriminator_loss", "generator_loss", "real_inputs"]


def adversarial_loss(D, x_real: torch.Tensor, x_fake: torch.Tensor, lambda_gp: float):
    """Eq. 5, critic side, as WGAN-GP: ``-D_p(x_s^p) + D_p(G_p(x_s^p, y_t)) + λ_gp GP``. Returns the real and
    fake terms, the gradient penalty, and the critic's class logits on the real input (for Eq. 6)."""
    out_real, cls_real = D(x_real)
    d_real, d_fake = losses.wgan_critic_loss(out_real, D(x_fake)[0])
    gp = losses.gradient_penalty(D, losses.interpolate(x_real.detach(), x_fake))
    return d_real, d_fake, lambda_gp * gp, cls_real


def adversarial_loss_g(out_fake: torch.Tensor) -> torch.Tensor:
    """Eq. 5, generator side, as WGAN: ``-D_p(G_p(x_s^p, y_t))``."""
    return losses.wgan_generator_loss(out_fake)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 6: cross-entropy of the critic's expression classifier ``D_p^cls`` (on real inputs with the source
    expression for the critic, on translated ones with the target expression for the generator)."""
    return losses.expression_ce(logits, labels)


def reconstruction_loss(x_rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 7: ``||x_s^p - G_p(G_p(x_s^p, y_t), y_s)||_1`` (the cycle loss, mean over pixels)."""
    return losses.l1(x_rec, x)


def branches(model: HierarchicalGAN, real: dict, fake: dict):
    """(name, weight λ_p, critic, real input, fake output) of every branch of Eq. 8 (the global one only
    while it is trained)."""
    cfg = model.cfg
    if cfg.train_global:
        yield "global", cfg.lambda_global, model.D_global, real["image"], fake["global"]
    yield "fusion", cfg.lambda_fusion, model.D_fusion, real["image"], fake["out"]
    for p in cfg.active_parts:
        yield PARTS[p], cfg.lambda_local, model.D_parts[p], real["parts"][:, p], fake["parts_out"][:, p]


def discriminator_loss(model: HierarchicalGAN, real: dict, fake: dict, label_src: torch.Tensor) -> dict:
    """Eq. 8 for the critics: ``Σ_p λ_p (L_adv^p + λ_cls L_cls^p)``, with Eq. 5 as WGAN-GP and Eq. 6 on real
    inputs. Logs each branch's loss under ``D/<branch>``."""
    cfg = model.cfg
    terms, total = {}, 0.0
    for name, lam, D, x_real, x_fake in branches(model, real, fake):
        d_real, d_fake, d_gp, cls_real = adversarial_loss(D, x_real, x_fake.detach(), cfg.lambda_gp)
        d_cls = classification_loss(cls_real, label_src)
        loss = d_real + d_fake + cfg.lambda_cls * d_cls + d_gp
        terms[f"D/{name}"] = loss.detach()
        total = total + lam * loss
    return {"loss": total, **terms}


def generator_loss(model: HierarchicalGAN, real: dict, fake: dict, recon: dict, label_trg: torch.Tensor) -> dict:
    """Eq. 8 for the generators: ``Σ_p λ_p (L_adv^p + λ_cls L_cls^p + λ_rec L_rec^p)``. Logs each branch's
    loss under ``G/<branch>`` and its classification term alone under ``G_cls/<branch>``."""
    cfg = model.cfg
    rec_of = {"global": (recon["global"], real["image"]), "fusion": (recon["out"], real["image"])}  # Eq. 7
    for p in cfg.active_parts:
        rec_of[PARTS[p]] = (recon["parts"][:, p], real["parts"][:, p])
    terms, total = {}, 0.0
    for name, lam, D, _, x_fake in branches(model, real, fake):
        out_fake, cls_fake = D(x_fake)
        g_adv = adversarial_loss_g(out_fake)
        g_cls = classification_loss(cls_fake, label_trg)
        g_rec = reconstruction_loss(*rec_of[name])
        loss = g_adv + cfg.lambda_cls * g_cls + cfg.lambda_rec * g_rec
        terms[f"G/{name}"] = loss.detach()
        terms[f"G_cls/{name}"] = g_cls.detach()  # the target-expression term alone, for the training curves
        total = total + lam * loss
    return {"loss": total, **terms}


def real_inputs(images: torch.Tensor, fake: dict, detach_parts: bool = False) -> dict:
    """What the critics see as real: the image, and its parts cut exactly as for the fakes (as constants
    with ``detach_parts``, see ``HierarchicalConfig.detach_real_parts``)."""
    return {"image": images, "parts": fake["parts_in"].detach() if detach_parts else fake["parts_in"]}
