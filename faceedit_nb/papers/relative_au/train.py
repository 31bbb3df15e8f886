"""Training Ling et al.'s editor: the batches (GANimation's, with noisy real AUs, or a folder of faces with
OpenFace AU files), one iteration (:func:`relative_au_step`, Eq. 8 then Eq. 9), the editor, and training /
loading through the engine and the model cache, several models at a time (:func:`load_series`)."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from ... import labels as L
from ...methods import (Trained, adam, critic_real_fake, frozen, learning_curve, load_all, load_method, run_method,
                        seeded)
from ...nets import ganimation as ga_nets
from ...train import Trainer, epoch_linear_decay
from ..ganimation import GANimationBatches, OpenFaceBatches, ganimation_step
from .config import RelativeAUConfig
from .losses import (adversarial_loss_d, adversarial_loss_g, condition_loss_d, condition_loss_g, discriminator_loss,
                     generator_loss, gradient_penalty_loss, self_reconstruction_loss, cycle_reconstruction_loss,
                     total_variation_loss)
from .model import build_generator, generator_condition

__all__ = ["OpenFaceBatches", "RelativeAUBatches", "build_relative_au", "relative_au_optimizers",
           "relative_au_schedule", "relative_au_step", "edit_relative", "relative_au_editor", "train_relative_au",
           "load_relative_au", "load_series", "seconds_per_iteration"]


class RelativeAUBatches:
    """The training batches: ``image``, ``aus`` (the source AUs v_src, + U(-real_noise, real_noise) as the
    official loader), ``aus_clean`` (without that noise) and ``aus_trg`` (v_tgt: a random face's AUs +
    U(-0.1, 0.1), GANimation's draw), all functions of the step (resuming needs nothing from here)."""

    def __init__(self, cfg: RelativeAUConfig):
        self.base = GANimationBatches(cfg) if cfg.dataset == "synthfaces" else OpenFaceBatches(cfg)
        self.n, self.seed, self.real_noise = self.base.n, cfg.seed, cfg.real_noise

    def get(self, indices: torch.Tensor) -> dict:
        return self.base.get(indices)

    def __call__(self, step: int) -> dict:
        batch = self.base(step)
        batch["aus_clean"] = batch["aus"]
        if self.real_noise:
            g = torch.Generator().manual_seed(self.seed * 32_452_843 + 6_143 * step + 11)
            batch["aus"] = batch["aus"] + (torch.rand(batch["aus"].shape, generator=g) * 2 - 1) * self.real_noise
        return batch


def build_relative_au(cfg: RelativeAUConfig) -> dict[str, nn.Module]:
    """The generator (UNet_MSF or GANimation's) and GANimation's critic with its AU head, seeded."""
    return seeded(cfg.seed, lambda: {
        "G": build_generator(cfg.generator, ngf=cfg.g_conv_dim, k_msf=cfg.k_msf, repeat_num=cfg.g_repeat_num,
                             convention=cfg.convention),
        "D": ga_nets.init_weights(ga_nets.Discriminator(cfg.image_size, cfg.d_conv_dim, len(L.AUS), cfg.d_repeat_num))})


def relative_au_optimizers(cfg: RelativeAUConfig, nets: dict) -> dict:
    return {"G": adam(nets["G"], cfg.lr_G, cfg.beta1, cfg.beta2), "D": adam(nets["D"], cfg.lr_D, cfg.beta1, cfg.beta2)}


def relative_au_schedule(cfg: RelativeAUConfig) -> Callable[[int], float]:
    """``nepochs_no_decay`` epochs at the initial rate, then GANimation's linear decay over ``nepochs_decay``
    epochs, never below ``lr_final`` (the paper: "linearly decay the rate to 1e-5")."""
    decay = epoch_linear_decay(cfg.steps_per_epoch, cfg.nepochs_no_decay, cfg.nepochs_decay)
    floor = cfg.lr_final / cfg.lr_G
    return lambda step: max(floor, decay(step))


def relative_au_step(tr: Trainer, cfg: RelativeAUConfig, batch: dict, i: int) -> dict:
    """One iteration: a critic step (Eq. 8), its gradient-penalty step (Eq. 3) and, every
    ``train_G_every_n_iterations`` batches, a generator step (Eq. 9). "GANimation w/ v_rel"
    (``generator="ganimation"``) is GANimation's own iteration with its generator fed v_rel."""
    if cfg.generator == "ganimation":  # GANimation's own step; its config's condition="relative" feeds v_rel
        return ganimation_step(tr, cfg, batch, i)
    G, D = tr.models["G"], tr.models["D"]
    x, v_src, v_tgt = batch["image"], batch["aus"], batch["aus_trg"]
    c_edit = generator_condition(v_src, v_tgt, cfg.condition)   # v_rel (Eq. 1), or v_tgt without v_rel
    c_back = generator_condition(v_tgt, v_src, cfg.condition)   # -v_rel, or v_src
    c_none = generator_condition(v_src, v_src, cfg.condition)   # 0, or v_src

    # Critic, Eq. 8: L_D = -D_adv(x) + D_adv(x') + λ1 ||D_cond(x) - v_src||^2
    with torch.no_grad():
        x_fake = G(x, c_edit)
    (real_scores, real_aus), (fake_scores, _) = critic_real_fake(D, x, x_fake)
    d_real, d_fake = adversarial_loss_d(real_scores, fake_scores)
    d_cond = condition_loss_d(real_aus, v_src)
    log = {"D/real": d_real, "D/fake": d_fake, "D/cond": d_cond}
    tr.update("D", discriminator_loss(d_real, d_fake, d_cond, lambda_D_cond=cfg.lambda_D_cond,
                                      lambda_D_prob=cfg.lambda_D_prob), log)

    # Eq. 3's gradient penalty: its own critic step, between the real images and the same edits
    d_gp = gradient_penalty_loss(D, x, x_fake)
    tr.update("D", cfg.lambda_D_gp * d_gp, {"D/gp": d_gp})
    log["D/gp"] = d_gp

    # Generator, Eq. 9: L_G = -D_adv(x') + λ2 ||D_cond(x') - v_tgt||^2 + λ3 L_rec + λ4 L_tv
    if (i + 1) % cfg.train_G_every_n_iterations == 0:
        with frozen(D):
            x_fake = G(x, c_edit)
            fake_scores, fake_aus = D(x_fake)
            g_adv = adversarial_loss_g(fake_scores)
            g_cond = condition_loss_g(fake_aus, v_tgt)
            g_self = self_reconstruction_loss(G(x, c_none), x)           # Eq. 7: G(x, 0) = x
            g_cycle = cycle_reconstruction_loss(G(x_fake, c_back), x)   # Eq. 7: G(G(x, v_rel), -v_rel) = x
            g_tv = total_variation_loss(x_fake)
            g_log = {"G/fake": g_adv, "G/cond": g_cond, "G/rec": g_self, "G/cyc": g_cycle, "G/tv": g_tv}
            tr.update("G", generator_loss(g_adv, g_cond, g_self, g_cycle, g_tv, lambda_G_cond=cfg.lambda_G_cond,
                                          lambda_rec=cfg.lambda_rec, lambda_cyc=cfg.lambda_cyc,
                                          lambda_tv=cfg.lambda_tv, lambda_D_prob=cfg.lambda_D_prob), g_log)
        log.update(g_log)
    return log


def edit_relative(G: nn.Module, cfg: RelativeAUConfig, images: torch.Tensor, v_rel: torch.Tensor) -> torch.Tensor:
    """The edit of ``images`` by relative AUs ``v_rel`` (B x 17): what a user types, no source AUs needed.
    (A model trained without v_rel cannot take this: it needs the source AUs, :func:`relative_au_editor`.)"""
    if not cfg.relative:
        raise ValueError("this model was trained on absolute AUs (condition='absolute'): edit it with "
                         "relative_au_editor(G, cfg)(images, source_aus, target_aus)")
    v = v_rel.to(images.dtype).expand(len(images), -1)
    return G.animate(images, v)[0] if cfg.generator == "ganimation" else G(images, v)


def relative_au_editor(G: nn.Module, cfg: RelativeAUConfig) -> Callable:
    """``editor(images, source_aus, target_aus)`` for the evaluation harness (AU protocols): the generator
    fed v_rel = target - source (or the target itself, for a model trained without v_rel)."""
    def edit(images, source, target):
        c = generator_condition(source.float(), target.float(), cfg.condition).to(images.dtype)
        return G.animate(images, c)[0] if cfg.generator == "ganimation" else G(images, c)
    return edit


def train_relative_au(cfg: RelativeAUConfig, run_dir=None, progress: bool = True, resume: bool = True,
                      n_samples: int = 8, threads: int | None = None, curve=None, curve_every: int = 0) -> Trainer:
    """Train one model of the series with the engine (a resumable run in ``run_dir``)."""
    data = RelativeAUBatches(cfg)
    nets = build_relative_au(cfg)
    opts = relative_au_optimizers(cfg, nets)
    fixed = data.get(torch.arange(min(n_samples, data.n)))
    shown = [L.EXPRESSIONS.index(e) for e in ("happy", "surprised", "angry", "sad")]

    def samples(step):
        G = nets["G"].eval()
        x = fixed["image"].to(next(G.parameters()).device)
        src = fixed["aus"].to(x.device)
        edit = relative_au_editor(G, cfg)
        return [x, edit(x, src, src)] + [edit(x, src, L.PROTOTYPES[k].to(x.device).expand(len(x), -1)) for k in shown]

    if curve is None and cfg.dataset == "synthfaces":
        curve = learning_curve(cfg, lambda nets: relative_au_editor(nets["G"], cfg), ["aus"], au_mode="mixed")
    return run_method("relative_au", cfg, relative_au_step, nets=nets, opts=opts, schedule=relative_au_schedule(cfg),
                      data=data, samples=samples, total_steps=cfg.total_steps, run_dir=run_dir, progress=progress,
                      resume=resume, threads=threads, curve=curve, curve_every=curve_every or cfg.curve_every)


def load_relative_au(cfg: RelativeAUConfig, outdir=None, progress: bool = True, cache_dir=None,
                     threads: int | None = None) -> Trained:
    """The model trained with ``cfg``: from the model cache, or trained now (resuming an interrupted run)."""
    return load_method("relative_au", cfg, build=build_relative_au, train=train_relative_au,
                       editor=relative_au_editor, outdir=outdir, progress=progress, cache_dir=cache_dir,
                       threads=threads)


def load_series(configs: dict[str, RelativeAUConfig], *, workers: int = 1, progress: bool = False, cache_dir=None,
                threads: int | None = 1) -> dict[str, Trained]:
    """Every model of ``configs`` (:func:`.config.series_configs`), ``workers`` trainings at a time in their
    own processes (bit-identical to one by one), then all loaded from the cache
    (:func:`~faceedit_nb.methods.load_all`)."""
    return load_all(load_relative_au, configs, workers=workers, progress=progress, cache_dir=cache_dir, threads=threads)


def seconds_per_iteration(cfg: RelativeAUConfig, *, iterations: int | None = None, warmup: int = 1,
                          threads: int | None = 1, run_dir=None) -> float:
    """Measured seconds per training iteration of ``cfg`` (critic + penalty steps, the generator step every
    ``train_G_every_n_iterations``), averaged over whole generator cycles after ``warmup`` cycles, in a
    throw-away run: what the cpu budget is planned from."""
    import tempfile
    every = cfg.train_G_every_n_iterations
    n = iterations or 2 * every
    with tempfile.TemporaryDirectory() as tmp:
        c = cfg.replace(curve_every=0, snapshot_every=10 ** 9, sample_every=0, log_every=10 ** 9)
        data, nets = RelativeAUBatches(c), build_relative_au(c)
        tr = Trainer(nets, relative_au_optimizers(c, nets), total_steps=warmup * every + n, run_dir=run_dir or tmp,
                     options=c, precision=c.precision, seed=c.seed, snapshot_every=10 ** 9, log_every=10 ** 9,
                     progress=False, threads=threads)
        times = []

        def step(batch, i):
            t = time.perf_counter()
            out = relative_au_step(tr, c, batch, i)
            times.append(time.perf_counter() - t)
            return out
        tr.run(step, data)
    return sum(times[warmup * every:]) / n
