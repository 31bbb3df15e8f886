"""Training DefGAN: the networks (:func:`build_defgan`), the frozen face-embedding network of Eq. 12
(:func:`identity_network`), one iteration (:func:`defgan_step`: Eq. 18 for the critic, then Eq. 16 for
both generators every ``train_G_every_n_iterations``), the editor, and training / loading through the
engine and the model cache, several models at a time (:func:`load_series`)."""
from __future__ import annotations

import warnings
from functools import partial
from typing import Callable

import torch
from torch import nn

from ... import labels as L
from ...methods import (Trained, adam, critic_real_fake, frozen, learning_curve, load_all, load_method, run_method,
                        seeded)
from ...nets import ganimation as ga_nets
from ...train import Trainer, epoch_linear_decay
from ..ganimation import GANimationBatches, OpenFaceBatches, _critic
from .config import DefGANConfig
from .losses import (critic_loss_d, critic_loss_g, cycle_loss, discriminator_loss, expression_loss_d,
                     expression_loss_g, face_identity_loss, generator_loss, gradient_penalty_loss,
                     grid_composition_loss, grid_regularisation_loss, mask_regularisation_loss)
from .model import DefGANGenerator, DeformationGenerator

__all__ = ["build_defgan", "defgan_optimizers", "identity_network", "defgan_batches", "defgan_step",
           "defgan_editor", "train_defgan", "load_defgan", "load_series"]


def build_defgan(cfg: DefGANConfig) -> dict[str, nn.Module]:
    """``G`` (G_Def and G_Texture in one :class:`DefGANGenerator`, optimised jointly) and ``D`` (GANimation's
    critic with its AU head), seeded; G_Texture is GANimation's generator with its initialisation."""
    c = len(L.AUS)

    def build():
        deform = (DeformationGenerator(cfg.g_conv_dim, c, cfg.def_repeat_num, image_size=cfg.image_size,
                                       max_offset=cfg.max_offset) if cfg.deformation else None)
        if deform is not None:
            ga_nets.init_weights(deform.trunk)   # the offset conv keeps its zero init: the identity grid at step 0
        texture = (ga_nets.init_weights(ga_nets.Generator(cfg.g_conv_dim, c, cfg.g_repeat_num, cfg.convention,
                                                          upsample=cfg.g_upsample, keep_init=cfg.keep_init)).reset_keep()
                   if cfg.texture else None)
        return {"G": DefGANGenerator(deform, texture), "D": _critic(cfg, c)}
    return seeded(cfg.seed, build)


def defgan_optimizers(cfg: DefGANConfig, nets: dict) -> dict:
    """Adam for G (both generators, "optimized jointly", Sec. 4.1) and for D."""
    return {"G": adam(nets["G"], cfg.lr_G, cfg.beta1, cfg.beta2), "D": adam(nets["D"], cfg.lr_D, cfg.beta1, cfg.beta2)}


def identity_network(cfg: DefGANConfig) -> nn.Module | None:
    """The frozen face-embedding network of Eq. 12 (``None`` when its weight is 0 or there is no motion
    stage): the project's identity network (its profile ``cfg.curve_oracles``) trained with seed
    ``cfg.identity_seed``, another network than the seed-0 identity oracle that judges the edits."""
    if not (cfg.deformation and cfg.lambda_face_id):
        return None
    from ...oracles import load_oracles
    if cfg.dataset != "synthfaces":
        warnings.warn(f"Eq. 12's face embedding is the project's identity network, trained on SynthFaces; on "
                      f"{cfg.dataset!r} faces it is a weaker stand-in for OpenFace's (set lambda_face_id=0.0 to "
                      f"train without it)", stacklevel=2)
    net = load_oracles(size=cfg.image_size, seed=cfg.identity_seed, profile=cfg.curve_oracles,
                       which=("identity",), verbose=False).nets["identity"]
    for p in net.parameters():
        p.requires_grad_(False)
    # contiguous, as DefGAN's models were trained with it (the oracles read channels-last since stop 32)
    return net.to(memory_format=torch.contiguous_format).eval()


def defgan_batches(cfg: DefGANConfig):
    """GANimation's batches (targets: a random face's AUs + U(-0.1, 0.1)) from SynthFaces, or from a folder of
    faces with OpenFace AU files (``dataset`` / ``data_root``)."""
    return GANimationBatches(cfg) if cfg.dataset == "synthfaces" else OpenFaceBatches(cfg)


def defgan_step(tr: Trainer, cfg: DefGANConfig, batch: dict, i: int, *, embed: nn.Module | None = None) -> dict:
    """One iteration: a critic step (Eq. 18), its gradient-penalty step (Eq. 7) and, every
    ``train_G_every_n_iterations`` batches, a step of both generators (Eq. 16). ``embed`` is Eq. 12's frozen
    face-embedding network (:func:`identity_network`)."""
    G, D = tr.models["G"], tr.models["D"]
    x, y_src, y_trg = batch["image"], batch["aus"], batch["aus_trg"]
    if i < cfg.d_warmup:  # a warm-up of the critic's AU head alone on real faces (GANimation's cpu lever)
        d_exp = expression_loss_d(D(x)[1], y_src)
        tr.update("D", cfg.lambda_D_cond * d_exp, {"D/exp": d_exp})
        return {"D/exp": d_exp}

    # Critic, Eq. 18: L_D = D_c(G_Comp(I_x, x, y)) - D_c(I_x) + ||D_exp(I_x) - x||^2
    with torch.no_grad():
        x_fake = G(x, y_src, y_trg)["output"]
    (real_scores, real_aus), (fake_scores, _) = critic_real_fake(D, x, x_fake)
    d_real, d_fake = critic_loss_d(real_scores, fake_scores)
    d_exp = expression_loss_d(real_aus, y_src)
    log = {"D/real": d_real, "D/fake": d_fake, "D/exp": d_exp}
    tr.update("D", discriminator_loss(d_real, d_fake, d_exp, lambda_exp=cfg.lambda_D_cond,
                                      lambda_critic=cfg.lambda_D_prob), log)

    # Eq. 7's gradient penalty: its own critic step, between the real faces and the same edits
    d_gp = gradient_penalty_loss(D, x, x_fake)
    tr.update("D", cfg.lambda_D_gp * d_gp, {"D/gp": d_gp})
    log["D/gp"] = d_gp

    if (i + 1) % cfg.train_G_every_n_iterations == 0:
        log.update(_generator_step(tr, cfg, x, y_src, y_trg, embed))
    return log


def _generator_step(tr: Trainer, cfg: DefGANConfig, x, y_src, y_trg, embed) -> dict:
    """Eq. 16: L_G = L_critic + L_exp + λ_cyc L_cyc + L_faceID + λ_comp L_comp + L_reg^GDef + L_reg^M."""
    G, D = tr.models["G"], tr.models["D"]
    zero = x.new_zeros((), dtype=torch.float32)
    with frozen(D):
        edit = G(x, y_src, y_trg)                       # I*_y, G, T, M, I_y
        fake_scores, fake_aus = D(edit["output"])
        deformed_aus = D(edit["deformed"])[1] if G.deform is not None else None
        back = G(edit["output"], y_trg, y_src)           # the cycle G_Comp(I_y, y, x), its grid G_cyc
        g_critic = critic_loss_g(fake_scores)                                                    # Eq. 8
        g_exp, g_exp_def, g_exp_final = expression_loss_g(deformed_aus, fake_aus, y_trg,        # Eq. 9
                                                          lambda_def=cfg.lambda_exp_def, lambda_comp=cfg.lambda_D_cond)
        g_cyc = cycle_loss(back["output"], x)                                                    # Eq. 11
        g_id = face_identity_loss(embed, edit["deformed"], x) if embed is not None else zero     # Eq. 12
        if G.deform is not None:
            g_comp = grid_composition_loss(back["grid"], edit["grid"])                           # Eq. 13
            g_grid, g_grid_eye, g_grid_tv = grid_regularisation_loss(                            # Eq. 14
                edit["grid"], lambda_eye=cfg.lambda_grid_eye, lambda_tv=cfg.lambda_grid_tv)
        else:
            g_comp = g_grid = g_grid_eye = g_grid_tv = zero
        if G.texture is not None:
            g_mask, g_mask_eye, g_mask_tv = mask_regularisation_loss(                             # Eq. 15
                edit["mask"], lambda_eye=cfg.lambda_mask, lambda_tv=cfg.lambda_mask_smooth)
        else:
            g_mask = g_mask_eye = g_mask_tv = zero
        g_log = {"G/critic": g_critic, "G/exp_def": g_exp_def, "G/exp": g_exp_final, "G/cyc": g_cyc,
                 "G/face_id": g_id, "G/comp": g_comp, "G/grid_eye": g_grid_eye, "G/grid_tv": g_grid_tv,
                 "G/mask_eye": g_mask_eye, "G/mask_tv": g_mask_tv}
        tr.update("G", generator_loss(critic=g_critic, expression=g_exp, cycle=g_cyc, face_id=g_id,
                                      composition=g_comp, grid_reg=g_grid, mask_reg=g_mask,
                                      lambda_cyc=cfg.lambda_cyc, lambda_face_id=cfg.lambda_face_id,
                                      lambda_comp=cfg.lambda_comp, lambda_critic=cfg.lambda_D_prob), g_log)
    return g_log


def defgan_editor(G: DefGANGenerator, cfg: DefGANConfig) -> Callable:
    """``editor(images, source_aus, target_aus)`` for the evaluation harness (AU protocols)."""
    def edit(images, source, target):
        return G.edit(images, source.float().to(images.dtype), target.float().to(images.dtype))
    return edit


def train_defgan(cfg: DefGANConfig, run_dir=None, progress: bool = True, resume: bool = True, n_samples: int = 8,
                 threads: int | None = None, curve=None, curve_every: int = 0) -> Trainer:
    """Train DefGAN (or an ablation) with the engine (a resumable run in ``run_dir``)."""
    data = defgan_batches(cfg)
    nets = build_defgan(cfg)
    opts = defgan_optimizers(cfg, nets)
    embed = identity_network(cfg)
    fixed = data.get(torch.arange(min(n_samples, data.n)))
    shown = [L.EXPRESSIONS.index(e) for e in ("happy", "surprised", "angry")]

    def samples(step):
        G = nets["G"].eval()
        x = fixed["image"].to(next(G.parameters()).device)
        cols = [x]
        for k in shown:
            out = G(x, fixed["aus"].to(x.device), L.PROTOTYPES[k].to(x.device).expand(len(x), -1))
            cols += [out["deformed"], out["output"]]
        return cols

    schedule = epoch_linear_decay(cfg.steps_per_epoch, cfg.nepochs_no_decay, cfg.nepochs_decay)
    if curve is None and cfg.dataset == "synthfaces":
        curve = learning_curve(cfg, lambda nets: defgan_editor(nets["G"], cfg), ["aus", "expression_aus"],
                               au_mode="mixed")
    return run_method("defgan", cfg, partial(defgan_step, embed=embed), nets=nets, opts=opts, schedule=schedule,
                      data=data, samples=samples, total_steps=cfg.total_steps, run_dir=run_dir, progress=progress,
                      resume=resume, threads=threads, curve=curve, curve_every=curve_every or cfg.curve_every)


def load_defgan(cfg: DefGANConfig, outdir=None, progress: bool = True, cache_dir=None,
                threads: int | None = None) -> Trained:
    """The model trained with ``cfg``: from the model cache, or trained now (resuming an interrupted run)."""
    return load_method("defgan", cfg, build=build_defgan, train=train_defgan, editor=defgan_editor, outdir=outdir,
                       progress=progress, cache_dir=cache_dir, threads=threads)


def load_series(configs: dict[str, DefGANConfig], *, workers: int = 1, progress: bool = False, cache_dir=None,
                threads: int | None = 1) -> dict[str, Trained]:
    """Every model of ``configs`` (:func:`.config.series_configs`), ``workers`` trainings at a time in their
    own processes (bit-identical to one by one), then all loaded from the cache
    (:func:`~faceedit_nb.methods.load_all`)."""
    return load_all(load_defgan, configs, workers=workers, progress=progress, cache_dir=cache_dir, threads=threads)
