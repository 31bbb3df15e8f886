"""AttGAN (He et al., TIP 2019; elvisyjlin/AttGAN-PyTorch), with STGAN's difference condition
(``condition="difference"``), on SynthFaces' 13 CelebA attributes.

Paper -> code: the adversarial (WGAN-GP), attribute classification and reconstruction losses of the
paper's Eq. 4-9 are the named terms of :func:`attgan_step`; the encoder-decoder is
:mod:`faceedit_nb.nets.attgan`. ::

    from faceedit_nb.papers import attgan as AT
    trained = AT.load_attgan(AT.AttGANConfig.cpu(condition="difference"))   # STGAN-diff
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import labels as L
from .. import losses
from ..config import EngineSettings
from ..distributed import shuffled
from ..methods import (SynthFacesBatches, Trained, adam, critic_real_fake, frozen, learning_curve, load_method,
                       run_method, seeded)
from ..nets import attgan as nets
from ..train import Trainer, step_decay

__all__ = ["AttGANConfig", "build_attgan", "attgan_optimizers", "attgan_step", "attgan_editor", "train_attgan",
           "load_attgan", "chapter_configs"]

# =========================================================================================================
# AttGAN (He et al., TIP 2019; elvisyjlin/AttGAN-PyTorch) and STGAN's difference condition
# =========================================================================================================
@dataclass
class AttGANConfig(EngineSettings):
    """AttGAN on SynthFaces. Defaults: AttGAN-PyTorch's README settings (128 px, shortcut 1, inject 1)."""
    # data
    image_size: int = 128         # 128 in the paper
    n_train: int = 3200
    n_identities: int = 200
    flip: bool = False            # the official CelebA loader does not flip
    data_seed: int = 0
    # networks
    condition: str = "target"     # "target" (AttGAN, +-thres_int) or "difference" (STGAN's b_ - a_)
    enc_dim: int = 64
    dec_dim: int = 64
    n_layers: int = 5             # encoder and decoder depth
    shortcut_layers: int = 1
    inject_layers: int = 1
    max_dim: int = 1024
    dis_dim: int = 64
    dis_layers: int = 5
    dis_fc_dim: int = 1024
    thres_int: float = 0.5        # attributes fed as +-0.5
    test_int: float = 1.0         # intensity of the edited attributes at test time (STGAN: 2)
    # loss weights
    lambda_1: float = 100.0       # reconstruction L1
    lambda_2: float = 10.0        # attribute classification of the fakes (G)
    lambda_3: float = 1.0         # attribute classification of the real images (D)
    lambda_gp: float = 10.0
    # optimisation
    batch_size: int = 32
    n_d: int = 5                  # D iterations per G iteration (each on its own batch)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int = 200
    decay_epoch: int = 100        # lr / 10 from this epoch on
    d_warmup: int = 0             # the first d_warmup iterations train only the critic's attribute head, on real
    #                               faces (no generator, no adversarial term): 0 in the paper
    _UNHASHED_DEFAULTS = {"d_warmup": 0}  # added later: models cached before it keep their keys

    _PAPER_CURVE_POINTS = 20  # the chapter plots a learning curve at every profile
    # cpu recipe (issue 17; runs in benchmarks/cpu_recipes_findings.md, 320 held-out faces x 13 flips, 1 thread,
    # two runs at a time on 2 cores): the old recipe (n_d 5, 20 epochs, lr / 10 from epoch 10) reached 0.533
    # attribute accuracy; n_d 1 + a 500-step warm-up of the critic's attribute head: 0.631 / 0.740 / 0.734 at
    # 5 / 10 / 15 minutes (2,026 / 3,320 / 4,863 iterations, constant rate); with lr / 10 from epoch 16 of 24:
    # 0.710 at 3,200 iterations, 0.727 at 4,000 (A2); with lambda_2 20 as well, at 3,200 / 4,000 / 4,790:
    # 0.724 / 0.757 / 0.765 (seed 0) and 0.728 / 0.753 / 0.733 (seed 1); STGAN-diff 0.755 / 0.773 / 0.778 (stop 28)
    _CPU = dict(curve_every=800, curve_oracles="cpu", image_size=64, enc_dim=32, dec_dim=32, n_layers=4,
                max_dim=512, dis_dim=32, dis_layers=4, dis_fc_dim=256, batch_size=16, n_d=1, d_warmup=500,
                lambda_2=20.0, epochs=24, decay_epoch=16, log_every=50, sample_every=500,
                snapshot_every=250)  # 4,800 iterations
    _WHY = {
        "n_d": "one critic step per generator step: n_d 5 gave the generator 667 updates in the old cpu run "
               "(attribute accuracy 0.533); n_d 1 with the warm-up: 0.740 after 10 minutes",
        "d_warmup": "the critic's attribute head learns alone first (cheap: no generator), so the generator's "
                    "first updates already get a useful attribute signal",
        "lambda_2": "twice the paper's weight on the generator's attribute term: AttGAN's attribute accuracy "
                    "0.765 and 0.733 (two seeds) against 0.723 after 4,790 iterations, for FID(own) 169-173 "
                    "against 159 and ID distance 0.35-0.36 against 0.32; STGAN-diff 0.778 against 0.773",
        "epochs": "4,800 iterations: 15 minutes on one core of the build machine",
        "decay_epoch": "the paper's shape (lr / 10 for the last part of training), scaled to the short run",
        "image_size": "64 px: a CPU budget (the oracles, the metrics and SynthFaces' bars are at 64 px)",
    }
    _SMOKE = dict(curve_every=3, curve_faces=16, curve_oracles="smoke", image_size=32, n_train=64,
                  n_identities=8, enc_dim=8, dec_dim=8, n_layers=3, max_dim=32, dis_dim=8, dis_layers=3,
                  dis_fc_dim=16, batch_size=8, n_d=2, epochs=2, decay_epoch=1, log_every=2, sample_every=8,
                  snapshot_every=4)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def build_attgan(cfg: AttGANConfig) -> dict[str, nn.Module]:
    n = len(L.ATTRIBUTES)
    return seeded(cfg.seed, lambda: {
        "G": nets.Generator(cfg.enc_dim, cfg.dec_dim, cfg.n_layers, n, cfg.shortcut_layers, cfg.inject_layers,
                              cfg.image_size, cfg.max_dim, cfg.condition, cfg.thres_int),
        "D": nets.Discriminator(cfg.dis_dim, cfg.dis_layers, cfg.dis_fc_dim, n, cfg.image_size, cfg.max_dim)})


def attgan_optimizers(cfg: AttGANConfig, nets: dict) -> dict:
    return {"G": adam(nets["G"], cfg.lr, cfg.beta1, cfg.beta2), "D": adam(nets["D"], cfg.lr, cfg.beta1, cfg.beta2)}


def attgan_step(tr: Trainer, cfg: AttGANConfig, batch: dict, i: int) -> dict:
    """One iteration of AttGAN-PyTorch's ``train.py``: each batch trains either D (``n_d`` of every
    ``n_d + 1`` iterations) or G. Target attributes: a random permutation of the batch's."""
    G, D = tr.models["G"], tr.models["D"]
    img_a, att_a = batch["image"], batch["attributes"].float()
    att_b = shuffled(att_a)
    cond_b = G.condition_vector(att_a, att_b)  # (b * 2 - 1) * thres_int, or b_ - a_ (STGAN)
    if i < cfg.d_warmup:  # cpu recipe: the critic's attribute head alone on real faces
        d_cls = losses.attribute_bce_mean(D(img_a)[1], att_a)
        tr.update("D", cfg.lambda_3 * d_cls, {"D/cls": d_cls})
        return {"D/cls": d_cls}

    if (i + 1) % (cfg.n_d + 1) != 0:
        # Critic: -(D(x) - D(G(x, b))) + l_gp GP + l_3 BCE(D_cls(x), a)
        with torch.no_grad():
            img_fake = G(img_a, cond_b)
        (d_src, dc_real), (fake_src, _) = critic_real_fake(D, img_a, img_fake)
        d_real, d_fake = losses.wgan_critic_loss(d_src, fake_src)
        d_gp = losses.gradient_penalty(D, losses.interpolate(img_a, img_fake))
        d_cls = losses.attribute_bce_mean(dc_real, att_a)
        d_loss = d_real + d_fake + cfg.lambda_gp * d_gp + cfg.lambda_3 * d_cls
        log = {"D/real": d_real, "D/fake": d_fake, "D/gp": d_gp, "D/cls": d_cls}
        tr.update("D", d_loss, log)
        return log

    # Generator: -D(G(x, b)) + l_2 BCE(D_cls(G(x, b)), b) + l_1 ||x - G(x, a)||_1 (one shared encoding)
    with frozen(D):
        zs = G.encode(img_a)
        img_fake = G.decode(zs, cond_b)
        img_rec = G.decode(zs, G.condition_vector(att_a, att_a))
        g_src, gc_fake = D(img_fake)
        g_fake = losses.wgan_generator_loss(g_src)
        g_cls = losses.attribute_bce_mean(gc_fake, att_b)
        g_rec = losses.l1(img_rec, img_a)
        g_loss = g_fake + cfg.lambda_2 * g_cls + cfg.lambda_1 * g_rec
        log = {"G/fake": g_fake, "G/cls": g_cls, "G/rec": g_rec}
        tr.update("G", g_loss, log)
    return log


def attgan_editor(G: nets.Generator, cfg: AttGANConfig) -> Callable:
    """``editor(images, source_attributes, target_attributes)`` (13 attributes, 0/1) for the harness;
    edited attributes at ``cfg.test_int``."""
    def edit(images, source, target):
        return G.edit(images, source.float(), target.float(), test_int=cfg.test_int)
    return edit


def train_attgan(cfg: AttGANConfig, run_dir=None, progress: bool = True, resume: bool = True,
                 n_samples: int = 8, threads: int | None = None, curve=None, curve_every: int = 0) -> Trainer:
    """Train AttGAN (or STGAN-conditioned AttGAN) on SynthFaces with the engine."""
    data = SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                             flip=cfg.flip, seed=cfg.seed, data_seed=cfg.data_seed)
    nets = build_attgan(cfg)
    opts = attgan_optimizers(cfg, nets)
    fixed = data.get(torch.arange(min(n_samples, data.n)))

    def samples(step):
        G = nets["G"].eval()
        x = fixed["image"].to(next(G.parameters()).device)
        a = fixed["attributes"].float().to(x.device)
        cols = [x, G.edit(x, a, a)]
        for k in range(a.shape[1]):
            b = a.clone()
            b[:, k] = 1 - b[:, k]
            cols.append(G.edit(x, a, b, test_int=cfg.test_int))
        return cols

    schedule = step_decay(cfg.decay_epoch * cfg.steps_per_epoch, 0.1)
    if curve is None:  # the learning curve of the config (cfg.curve_every; none by default)
        curve = learning_curve(cfg, lambda nets: attgan_editor(nets["G"], cfg), ["attributes"], background="identity")
    return run_method("attgan", cfg, attgan_step, nets=nets, opts=opts, schedule=schedule, data=data,
                      samples=samples, total_steps=cfg.total_steps, run_dir=run_dir, progress=progress,
                      resume=resume, threads=threads, curve=curve, curve_every=curve_every or cfg.curve_every)


def load_attgan(cfg: AttGANConfig, outdir=None, progress: bool = True, cache_dir=None,
                threads: int | None = None) -> Trained:
    """The AttGAN trained with ``cfg``: from the model cache, or trained now."""
    return load_method("attgan", cfg, build=build_attgan, train=train_attgan, editor=attgan_editor,
                       outdir=outdir, progress=progress, cache_dir=cache_dir, threads=threads)


def chapter_configs(profile: str, *, seed: int = 0) -> dict[str, AttGANConfig]:
    """The baselines chapter's AttGAN and STGAN-diff (AttGAN with STGAN's difference condition)."""
    return {"AttGAN": AttGANConfig.profile(profile, seed=seed),
            "STGAN-diff": AttGANConfig.profile(profile, condition="difference", seed=seed)}
