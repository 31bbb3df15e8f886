"""GANimation (Pumarola et al., ECCV 2018; albertpumarola/GANimation) on SynthFaces: AU-conditioned
editing with an attention mask (I = A * x + (1 - A) * C, the official code's convention).

Paper -> code: the adversarial (WGAN-GP), attention (mean + total variation), conditional expression
(AU regression) and identity (cycle) losses of Sec. 4 are the named terms of :func:`ganimation_step`;
the networks are :mod:`faceedit_nb.nets.ganimation`. ::

    from faceedit_nb.papers import ganimation as GA
    trained = GA.load_ganimation(GA.GANimationConfig.cpu())
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .. import labels as L
from .. import losses
from ..config import EngineSettings
from ..methods import (SynthFacesBatches, Trained, adam, critic_real_fake, frozen, he_init, learning_curve,
                       load_method, run_method, seeded)
from ..nets import ganimation as nets
from ..train import Trainer, epoch_linear_decay

__all__ = ["GANimationConfig", "GANimationBatches", "OpenFaceBatches", "generator_condition", "build_ganimation",
           "ganimation_optimizers",
           "ganimation_step", "ganimation_editor", "train_ganimation", "load_ganimation", "chapter_configs"]

# =========================================================================================================
# GANimation (Pumarola et al., ECCV 2018; albertpumarola/GANimation)
# =========================================================================================================
@dataclass
class GANimationConfig(EngineSettings):
    """GANimation on SynthFaces. Defaults: the paper's and the official ``train_options.py`` settings."""
    # data
    image_size: int = 128         # 128 in the paper
    n_train: int = 3200
    n_identities: int = 200
    au_mode: str = "mixed"        # SynthFaces AUs: prototypes + free AU vectors (EmotioNet has both)
    target_noise: float = 0.1     # target AUs = a random sample's AUs + U(-0.1, 0.1)
    flip: bool = False            # the official loader does not flip
    data_seed: int = 0
    # networks
    g_conv_dim: int = 64
    g_repeat_num: int = 6
    g_upsample: str = "deconv"    # G's up-sampling: "deconv" (the official transposed convs) or "resize"
    keep_init: float = 0.0        # > 0: the attention starts at sigmoid(keep_init) ~ "keep the input" (a bias on
    #                               the attention conv); 0: the official bias-free conv, A ~ 0.5 at step 0
    d_conv_dim: int = 64
    d_repeat_num: int = 6         # default_d_repeat(image_size)
    d_init: str = "official"      # critic init: "official" (N(0, 0.02)) or "he" (methods.he_init)
    d_projection: bool = False    # D_I conditioned on the AUs by projection (Miyato & Koyama 2018): real faces
    #                               judged with their AUs, fakes with their targets; the paper: no
    d_cond_fake: float = 0.0      # weight of a critic term the paper lacks: its AU head also regresses each fake
    #                               to its *source* AUs, so that G cannot satisfy it with colour the real faces
    #                               with those AUs do not have (0: the paper, AU regression of reals only)
    convention: str = "code"      # composite: "code" A*x + (1-A)*C (official) or "paper" (Eq. 1 of arXiv v1)
    condition: str = "absolute"   # the generator's condition: "absolute" target AUs (GANimation) or "relative"
    #                               v_rel = y_trg - y_org (Ling et al.'s Eq. 1; their "GANimation w/ v_rel")
    # loss weights (official names)
    lambda_D_prob: float = 1.0    # adversarial terms
    lambda_D_cond: float = 4000.0  # AU regression (MSE, further / batch)
    lambda_cyc: float = 10.0      # cycle L1
    lambda_mask: float = 0.1      # mean of the attention masks
    lambda_mask_smooth: float = 1e-5  # total variation of the attention masks (summed)
    lambda_D_gp: float = 10.0     # gradient penalty (its own critic step)
    # optimisation
    batch_size: int = 25
    train_G_every_n_iterations: int = 5
    lr_G: float = 1e-4
    lr_D: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    nepochs_no_decay: int = 20
    nepochs_decay: int = 10
    d_warmup: int = 0             # the first d_warmup iterations train only the critic's AU head, on real faces

    _PAPER_CURVE_POINTS = 20  # the chapter plots a learning curve at every profile
    _CPU = dict(curve_every=300, curve_oracles="cpu", image_size=64, g_conv_dim=32, d_conv_dim=32,
                d_repeat_num=5, batch_size=16, nepochs_no_decay=10, nepochs_decay=5, log_every=50,
                sample_every=500, snapshot_every=250)  # 3000 iterations
    _SMOKE = dict(curve_every=3, curve_faces=16, curve_oracles="smoke", image_size=32, n_train=64,
                  n_identities=8, g_conv_dim=8, g_repeat_num=1, d_conv_dim=8, d_repeat_num=4, batch_size=8,
                  train_G_every_n_iterations=2, nepochs_no_decay=1, nepochs_decay=1, log_every=2,
                  sample_every=8, snapshot_every=4)

    # added later: models cached before them keep their keys
    _UNHASHED_DEFAULTS = {"condition": "absolute", "g_upsample": "deconv", "keep_init": 0.0, "d_init": "official",
                          "d_projection": False, "d_cond_fake": 0.0, "d_warmup": 0}

    def __post_init__(self):
        if self.condition not in ("absolute", "relative"):
            raise ValueError(f"condition must be 'absolute' or 'relative'; got {self.condition!r}")
        if self.d_init not in ("official", "he"):
            raise ValueError(f"d_init must be 'official' (N(0, 0.02)) or 'he'; got {self.d_init!r}")

    @property
    def total_steps(self) -> int:
        return (self.nepochs_no_decay + self.nepochs_decay) * self.steps_per_epoch


def build_ganimation(cfg: GANimationConfig) -> dict[str, nn.Module]:
    c = len(L.AUS)
    return seeded(cfg.seed, lambda: {
        "G": nets.init_weights(nets.Generator(cfg.g_conv_dim, c, cfg.g_repeat_num, cfg.convention,
                                              upsample=cfg.g_upsample, keep_init=cfg.keep_init)).reset_keep(),
        "D": _critic(cfg, c)})


def _critic(cfg: GANimationConfig, c: int) -> nets.Discriminator:
    D = nets.Discriminator(cfg.image_size, cfg.d_conv_dim, c, cfg.d_repeat_num, projection=cfg.d_projection)
    return he_init(D) if cfg.d_init == "he" else nets.init_weights(D)


def ganimation_optimizers(cfg: GANimationConfig, nets: dict) -> dict:
    return {"G": adam(nets["G"], cfg.lr_G, cfg.beta1, cfg.beta2),
            "D": adam(nets["D"], cfg.lr_D, cfg.beta1, cfg.beta2)}


class GANimationBatches(SynthFacesBatches):
    """Adds ``aus_trg``: the AUs of random samples of the data set plus U(-noise, noise) (a function of
    the step), as the official ``_generate_random_cond``."""

    def __init__(self, cfg: GANimationConfig):
        super().__init__(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                         au_mode=cfg.au_mode, flip=cfg.flip, seed=cfg.seed, data_seed=cfg.data_seed)
        self.noise = cfg.target_noise

    def __call__(self, step: int) -> dict:
        batch = super().__call__(step)
        g = torch.Generator().manual_seed(self.seed * 15_485_863 + 7_907 * step + 3)
        donors = torch.randint(self.n, (len(batch["index"]),), generator=g)
        noise = (torch.rand(len(donors), len(L.AUS), generator=g) * 2 - 1) * self.noise
        batch["aus_trg"] = self.labels["aus"][donors] + noise
        return batch


class OpenFaceBatches(GANimationBatches):
    """GANimation's batches (targets: another face's AUs + U(-0.1, 0.1)) from a folder of faces with
    OpenFace AU files (:class:`faceedit_nb.data.OpenFaceAUs`, GANimation's layout; AffectNet crops with
    their OpenFace CSVs, as the paper), its train split decoded once into memory. It fills the fields that
    GANimation's batches read instead of calling their constructor (which renders SynthFaces)."""

    def __init__(self, cfg, split: str = "train"):
        """``cfg``: a GANimation config with ``data_root`` (Ling et al.'s and DefGAN's have one)."""
        from ..data import OpenFaceAUs
        ds = OpenFaceAUs(cfg.data_root, split, size=cfg.image_size)
        self.n, self.batch_size, self.flip, self.seed, self.noise = len(ds), cfg.batch_size, cfg.flip, cfg.seed, cfg.target_noise
        if cfg.batch_size > self.n:
            raise ValueError(f"batch_size {cfg.batch_size} exceeds the {self.n} {split} faces under {cfg.data_root}")
        items = [ds[i] for i in range(self.n)]
        self.images = torch.stack([((it["image"] + 1) * 127.5).round().to(torch.uint8) for it in items])
        self.labels = {"aus": torch.stack([it["aus"].float() for it in items])}


def generator_condition(y_from: torch.Tensor, y_to: torch.Tensor, cfg: GANimationConfig) -> torch.Tensor:
    """What the generator is given to edit AUs ``y_from`` into ``y_to``: ``y_to`` itself (GANimation), or the
    relative AUs ``y_to - y_from`` (``cfg.condition == "relative"``, Ling et al.'s Eq. 1)."""
    return y_to - y_from if cfg.condition == "relative" else y_to


def ganimation_step(tr: Trainer, cfg: GANimationConfig, batch: dict, i: int) -> dict:
    """One iteration of GANimation (``models/ganimation.py``): a critic step (adversarial + AU regression
    on real images), a separate gradient-penalty step, and every ``train_G_every_n_iterations`` batches a
    generator step (adversarial, AU regression of the fake, cycle, attention mean and smoothness). The
    generator's condition follows ``cfg.condition`` (:func:`generator_condition`); the critic always
    regresses absolute AUs."""
    G, D = tr.models["G"], tr.models["D"]
    x, y_org, y_trg = batch["image"], batch["aus"], batch["aus_trg"]
    if i < cfg.d_warmup:  # cpu recipe: the critic's AU head alone on real faces
        d_cond = losses.au_mse(D(x, y_org)[1], y_org)
        tr.update("D", cfg.lambda_D_cond * d_cond, {"D/cond": d_cond})
        return {"D/cond": d_cond}
    c_trg, c_org = generator_condition(y_org, y_trg, cfg), generator_condition(y_trg, y_org, cfg)

    # Critic: -D_I(x) + l_cond ||D_y(x) - y_org||^2 + D_I(G(x | y_trg))
    with torch.no_grad():
        x_fake, _ = G.animate(x, c_trg)
    # the AUs condition D_I only in a projection critic (d_projection); the paper's D ignores them
    (d_src, d_aus), (fake_src, fake_aus) = critic_real_fake(D, x, x_fake, y_org, y_trg)
    d_real, d_fake = losses.wgan_critic_loss(d_src, fake_src)
    d_cond = losses.au_mse(d_aus, y_org)
    d_loss = cfg.lambda_D_prob * (d_real + d_fake) + cfg.lambda_D_cond * d_cond
    log = {"D/real": d_real, "D/fake": d_fake, "D/cond": d_cond}
    if cfg.d_cond_fake:  # cpu recipe: + w * ||D_y(G(x | y_trg)) - y_org||^2, fakes keep their source AUs
        d_cond_fake = losses.au_mse(fake_aus, y_org)
        d_loss = d_loss + cfg.lambda_D_cond * cfg.d_cond_fake * d_cond_fake
        log["D/cond_fake"] = d_cond_fake
    tr.update("D", d_loss, log)

    # Gradient penalty: its own critic step, between the real images and the same fakes
    d_gp = losses.gradient_penalty(lambda z: D(z, y_trg), losses.interpolate(x, x_fake))
    tr.update("D", cfg.lambda_D_gp * d_gp, {"D/gp": d_gp})
    log["D/gp"] = d_gp

    # Generator: adversarial + AU regression of the fake + cycle + attention regularisers
    if (i + 1) % cfg.train_G_every_n_iterations == 0:
        with frozen(D):
            x_fake, a_fake = G.animate(x, c_trg)
            g_src, g_aus = D(x_fake, y_trg)
            x_rec, a_rec = G.animate(x_fake, c_org)
            g_fake = losses.wgan_generator_loss(g_src)
            g_cond = losses.au_mse(g_aus, y_trg)
            g_cyc = losses.l1(x_rec, x)
            g_mask = losses.attention_mean(a_fake) + losses.attention_mean(a_rec)
            g_smooth = losses.total_variation(a_fake) + losses.total_variation(a_rec)
            g_loss = (cfg.lambda_D_prob * g_fake + cfg.lambda_D_cond * g_cond + cfg.lambda_cyc * g_cyc
                      + cfg.lambda_mask * g_mask + cfg.lambda_mask_smooth * g_smooth)
            g_log = {"G/fake": g_fake, "G/cond": g_cond, "G/cyc": g_cyc, "G/mask": g_mask, "G/mask_smooth": g_smooth}
            tr.update("G", g_loss, g_log)
        log.update(g_log)
    return log


def ganimation_editor(G: nets.Generator, cfg: GANimationConfig) -> Callable:
    """``editor(images, source_aus, target_aus)`` for the evaluation harness (AU protocols)."""
    def edit(images, source, target):
        return G.animate(images, generator_condition(source.float(), target.float(), cfg))[0]
    return edit


def train_ganimation(cfg: GANimationConfig, run_dir=None, progress: bool = True, resume: bool = True,
                     n_samples: int = 8, threads: int | None = None, curve=None, curve_every: int = 0) -> Trainer:
    """Train GANimation on SynthFaces with the engine (resumable run in ``run_dir``)."""
    data = GANimationBatches(cfg)
    nets = build_ganimation(cfg)
    opts = ganimation_optimizers(cfg, nets)
    fixed = data.get(torch.arange(min(n_samples, data.n)))
    shown = [L.EXPRESSIONS.index(e) for e in ("happy", "surprised", "angry", "sad", "disgusted")]

    def samples(step):
        G = nets["G"].eval()
        x = fixed["image"].to(next(G.parameters()).device)
        cols = [x]
        for k in shown:
            target = L.PROTOTYPES[k].to(x.device).expand(len(x), -1)
            fake, att = G.animate(x, generator_condition(fixed["aus"].to(x.device), target, cfg))
            cols += [fake, att.expand_as(x) * 2 - 1]
        return cols

    schedule = epoch_linear_decay(cfg.steps_per_epoch, cfg.nepochs_no_decay, cfg.nepochs_decay)
    if curve is None:  # the learning curve of the config (cfg.curve_every; none by default)
        curve = learning_curve(cfg, lambda nets: ganimation_editor(nets["G"], cfg), ["aus", "expression_aus"], au_mode="mixed")
    return run_method("ganimation", cfg, ganimation_step, nets=nets, opts=opts, schedule=schedule, data=data,
                      samples=samples, total_steps=cfg.total_steps, run_dir=run_dir, progress=progress,
                      resume=resume, threads=threads, curve=curve, curve_every=curve_every or cfg.curve_every)


def load_ganimation(cfg: GANimationConfig, outdir=None, progress: bool = True, cache_dir=None,
                    threads: int | None = None) -> Trained:
    """The GANimation trained with ``cfg``: from the model cache, or trained now."""
    return load_method("ganimation", cfg, build=build_ganimation, train=train_ganimation,
                       editor=ganimation_editor, outdir=outdir, progress=progress, cache_dir=cache_dir,
                       threads=threads)



def chapter_configs(profile: str, *, seed: int = 0) -> dict[str, GANimationConfig]:
    """The baselines chapter's GANimation (one place for the chapter and the book's up-front training)."""
    return {"GANimation": GANimationConfig.profile(profile, seed=seed)}
