"""StarGAN (Choi et al., CVPR 2018; yunjey/stargan) on SynthFaces: config, networks, one training
iteration, training and loading through the model cache.

Paper -> code: Eq. 1 (adversarial, trained as WGAN-GP as in the official code) and Eq. 2-3
(domain classification of real / fake) and Eq. 4 (cycle reconstruction) are the terms of
:func:`stargan_step`, whose critic and generator phases are Eq. 7 (left and right); the networks are
:mod:`faceedit_nb.nets.stargan` (Table 4 / 5 of the appendix). STGAN's difference condition is
``condition="difference"``. ::

    from faceedit_nb.papers import stargan as SG
    trained = SG.load_stargan(SG.StarGANConfig.cpu())   # trains on the first call, then loads from the cache
    edited = trained.editor(images, source_expression, target_expression)
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import labels as L
from .. import losses
from ..cache import load_or_train
from ..config import EngineSettings
from ..data.synthfaces import SynthFaces
from ..device import DEVICE, autocast, torch_threads
from ..distributed import shuffled
from ..methods import (SynthFacesBatches, Trained, adam, critic_real_fake, frozen, he_init, learning_curve,
                       load_method, run_method, seeded)
from ..metrics.protocols import flip_attribute, stargan_targets
from ..nets import stargan as nets
from ..train import Trainer, linear_decay

__all__ = ["StarGANConfig", "stargan_labels", "stargan_domain_vector", "build_stargan", "stargan_optimizers",
           "stargan_step", "critic_as_classifier", "CRITIC_CURVE_NAME", "critic_curve_config", "load_critic_curve",
           "stargan_editor", "train_stargan", "load_stargan", "chapter_configs"]

# =========================================================================================================
# StarGAN (Choi et al., CVPR 2018; yunjey/stargan)
# =========================================================================================================
@dataclass
class StarGANConfig(EngineSettings):
    """StarGAN on SynthFaces. Defaults: the paper's and yunjey/stargan's ``main.py`` settings."""
    # data
    domain: str = "expression"    # "expression": the 8 RaFD classes, cross-entropy; "attributes": StarGAN's 5
    #                               CelebA attributes (Black/Blond/Brown_Hair, Male, Young); "attributes13": the
    #                               13 of AttGAN / STGAN / SeCGAN (labels.ATTRIBUTES); both BCE summed / batch
    image_size: int = 128         # 128 in the paper
    n_train: int = 3200           # SynthFaces training samples (200 identities x 16)
    n_identities: int = 200
    flip: bool = True             # random horizontal flips (the official training transform)
    data_seed: int = 0            # SynthFaces seed
    background: str = "protocol"  # SynthFaces backdrops: "studio" (one for all) or "identity" (per person);
    #                               "protocol": studio for expressions (RaFD is shot in one studio), identity
    #                               for attributes (CelebA's photos have any background)
    # networks
    condition: str = "target"     # "target" (StarGAN) or "difference" (STGAN's y_diff = c_trg - c_org)
    g_conv_dim: int = 64          # width of G
    g_repeat_num: int = 6         # residual blocks in G
    g_residual: bool = False      # G outputs input + a residual image, the identity at step 0 (Shen & Liu 2017);
    #                               the paper's G outputs the image
    g_upsample: str = "deconv"    # G's up-sampling: "deconv" (the paper's 4x4 transposed convs) or "resize"
    #                               (nearest x2 + 3x3 conv: no built-in checkerboard)
    d_conv_dim: int = 64          # width of D
    d_repeat_num: int = 6         # stride-2 convs in D; default_d_repeat(image_size) ends at 2x2 (6 at 128 px)
    d_init: str = "default"       # critic init: "default" (PyTorch's, as yunjey/stargan) or "he" (methods.he_init)
    d_projection: bool = False    # D_src conditioned on the label by projection (Miyato & Koyama 2018): real
    #                               faces judged with their labels, fakes with their targets; the paper: no
    d_cls_fake: float = 0.0       # weight of a critic term the paper lacks: its domain head also classifies each
    #                               fake as its *source* domain, so that G cannot satisfy it with changes a real
    #                               face of the target domain does not have (0: the paper, L_cls^r on reals only)
    # loss weights (Eq. 7)
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    # optimisation
    batch_size: int = 16
    n_critic: int = 5             # D updates per G update
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    num_iters: int = 200_000
    num_iters_decay: int = 100_000  # linear decay to 0 over the last 100k iterations
    lr_update_step: int = 1000      # ... changed every 1000 iterations
    official_lr_decay: bool = False  # True: the code's decrement lr / num_iters_decay per update, which ends
    #                                  at 99.9 % of the initial rate (see faceedit_nb.train.linear_decay)
    d_warmup: int = 0             # the first d_warmup iterations train only the critic's domain head, on real
    #                               faces (L_cls^r alone; no generator): 0 in the paper
    share_fakes: bool = False     # n_critic 1 only: the critic step's fakes are the generator step's (same G,
    #                               same inputs: the same weights with one G forward fewer)

    # fields added after models were cached: left out of the cache key at the paper's value
    _UNHASHED_DEFAULTS = {"g_residual": False, "g_upsample": "deconv", "d_init": "default",
                          "d_projection": False, "d_cls_fake": 0.0, "d_warmup": 0, "share_fakes": False}

    _PAPER_CURVE_POINTS = 20  # the chapter plots a learning curve at every profile

    # The cpu recipe: the paper's recipe at half width (10,000 iterations, n_critic 5, d_lr 4e-4, now
    # _CPU_ATTRIBUTES13) reached EEA 0.251 in 90 minutes on 2 cores (identity editor 0.125, ground truth
    # 0.983); this one 0.329 after 3,000 iterations. _WHY gives the measurement behind each departure, and
    # benchmarks/cpu_recipes_findings.md every run.
    _CPU = dict(curve_every=500, curve_oracles="cpu", image_size=64, g_conv_dim=16, g_repeat_num=2,
                g_residual=True, g_upsample="resize", d_conv_dim=32, d_repeat_num=5, d_init="he", d_warmup=1000,
                d_projection=True, n_critic=1, share_fakes=True, g_lr=5e-4, d_lr=1e-3, lambda_rec=2.0, num_iters=3000,
                num_iters_decay=0, lr_update_step=100, log_every=50, sample_every=1000, snapshot_every=250)
    _WHY = {
        "image_size": "64 px: a CPU budget (the oracles, the metrics and SynthFaces' bars are at 64 px)",
        "g_conv_dim": "the generator is ~95% of an iteration's arithmetic: a 16-wide G with 2 blocks is ~7x "
                      "cheaper than 32 / 6, so 15 minutes buy ~2,000 generator updates",
        "g_residual": "G(x, c) = x + r(x, c), the identity at step 0: a young G without it did not yet return faces "
                      "(FID(own) 166-200 after 1,000 updates; residual: 66)",
        "g_upsample": "the transposed convolutions let G satisfy the critic's domain head with checkerboard colour "
                      "(EEA 0.17, FID(own) 66); resize + 3x3 conv: FID(own) 17 at the same step",
        "d_init": "with PyTorch's default init the domain head, trained alone, sat at chance for ~500 steps; "
                  "He init: 0.36 held-out accuracy after 250",
        "d_warmup": "the generator can only learn what the critic's domain head knows: 1,000 cheap critic-only "
                    "steps (~0.04 s each against ~0.4 s for a GAN iteration) before the first generator step",
        "n_critic": "with 5, the generator got 1 update in 5 iterations; the warm-up does the critic's head start",
        "share_fakes": "with n_critic 1 the critic's fakes are the generator's: one G forward fewer, same weights",
        "g_lr": "5x the paper's rate, the critic at 1e-3: alone no gain (EEA 0.144 against 0.140 at 500 generator "
                "updates); with the cycle term at 2 (below) the edits grow",
        "d_projection": "real faces judged with their labels, fakes with their targets: EEA 0.329 against 0.264 "
                        "without it after 2,000 generator updates (0.288 against 0.199 after 1,500)",
        "d_lr": "the critic at 2x the generator's rate (He init trains stably at 1e-3 where the default init "
                "never left chance)",
        "lambda_rec": "cycle term 2 instead of 10: EEA 0.165 / 0.187 / 0.288 / 0.329 at 500 / 1,000 / 1,500 / "
                      "2,000 generator updates, against 0.140 / 0.161 / 0.167 at 10 (1,777 updates)",
        "num_iters": "1,000 warm-up steps + 2,000 generator updates: ~15 minutes on one core of this machine",
        "num_iters_decay": "a constant rate: with both rates decaying to 0 over iterations 1,500-3,000, EEA 0.218 "
                           "against 0.288 after 1,500 generator updates",
    }
    _SMOKE = dict(curve_every=3, curve_faces=16, curve_oracles="smoke", image_size=32, n_train=64,
                  n_identities=8, g_conv_dim=8, g_repeat_num=1, d_conv_dim=8, d_repeat_num=4, batch_size=8,
                  n_critic=2, num_iters=6, num_iters_decay=2, lr_update_step=1, log_every=2, sample_every=6,
                  snapshot_every=3)

    @property
    def total_steps(self) -> int:
        return self.num_iters

    @property
    def c_dim(self) -> int:
        return {"expression": len(L.EXPRESSIONS), "attributes": len(L.STARGAN_CELEBA_ATTRIBUTES),
                "attributes13": len(L.ATTRIBUTES)}[self.domain]

    @property
    def protocol(self) -> str:
        """The evaluation protocol of this domain (:data:`faceedit_nb.metrics.PROTOCOLS`)."""
        return {"expression": "expression", "attributes": "stargan", "attributes13": "attributes"}[self.domain]

    @property
    def synthfaces_background(self) -> str:
        """The SynthFaces ``background`` of the training and test faces (see ``background``)."""
        if self.background != "protocol":
            return self.background
        return "studio" if self.domain == "expression" else "identity"

    def __post_init__(self):
        if self.domain not in ("expression", "attributes", "attributes13"):
            raise ValueError(f"domain must be 'expression', 'attributes' or 'attributes13'; got {self.domain!r}")
        if self.background not in ("protocol", "studio", "identity"):
            raise ValueError(f"background must be 'protocol', 'studio' or 'identity'; got {self.background!r}")
        if self.g_upsample not in nets.UPSAMPLE:
            raise ValueError(f"g_upsample must be one of {nets.UPSAMPLE}; got {self.g_upsample!r}")
        if self.d_init not in ("default", "he"):
            raise ValueError(f"d_init must be 'default' (PyTorch's, the paper's code) or 'he'; got {self.d_init!r}")


_STARGAN_COLUMNS = torch.tensor([L.ATTRIBUTES.index(a) for a in L.STARGAN_CELEBA_ATTRIBUTES])


def stargan_labels(batch: dict, cfg: StarGANConfig) -> torch.Tensor:
    """The batch's domain labels: expression indices, the 13 attributes or StarGAN's 5 (0/1)."""
    if cfg.domain == "expression":
        return batch["expression"]
    if cfg.domain == "attributes13":
        return batch["attributes"].float()
    return batch["attributes"][:, _STARGAN_COLUMNS.to(batch["attributes"].device)].float()


def stargan_domain_vector(labels: torch.Tensor, cfg: StarGANConfig) -> torch.Tensor:
    """Labels as G's input: one-hot expressions (RaFD) or the attribute vector itself (CelebA)."""
    return F.one_hot(labels.long(), cfg.c_dim).float() if cfg.domain == "expression" else labels.float()


def build_stargan(cfg: StarGANConfig) -> dict[str, nn.Module]:
    return seeded(cfg.seed, lambda: {
        "G": nets.Generator(cfg.g_conv_dim, cfg.c_dim, cfg.g_repeat_num, cfg.condition,
                            residual=cfg.g_residual, upsample=cfg.g_upsample),
        "D": _critic(cfg)})


def _critic(cfg: StarGANConfig) -> nets.Discriminator:
    D = nets.Discriminator(cfg.image_size, cfg.d_conv_dim, cfg.c_dim, cfg.d_repeat_num, projection=cfg.d_projection)
    return he_init(D) if cfg.d_init == "he" else D


def stargan_optimizers(cfg: StarGANConfig, nets: dict) -> dict:
    return {"G": adam(nets["G"], cfg.g_lr, cfg.beta1, cfg.beta2),
            "D": adam(nets["D"], cfg.d_lr, cfg.beta1, cfg.beta2)}


def stargan_step(tr: Trainer, cfg: StarGANConfig, batch: dict, i: int) -> dict:
    """One iteration of StarGAN (``solver.py``): a critic step on Eq. 7 (left) and, every ``n_critic``
    iterations, a generator step on Eq. 7 (right). Target labels: a random permutation of the batch's."""
    G, D = tr.models["G"], tr.models["D"]
    cls_loss = losses.expression_ce if cfg.domain == "expression" else losses.attribute_bce_sum
    x_real, label_org = batch["image"], stargan_labels(batch, cfg)
    if i < cfg.d_warmup:  # cpu recipe: the critic's domain head alone on real faces, L_cls^r
        d_cls = cls_loss(D(x_real, stargan_domain_vector(label_org, cfg))[1], label_org)
        tr.update("D", cfg.lambda_cls * d_cls, {"D/loss_cls": d_cls})
        return {"D/loss_cls": d_cls}
    label_trg = shuffled(label_org)
    c_org, c_trg = stargan_domain_vector(label_org, cfg), stargan_domain_vector(label_trg, cfg)

    # Critic: L_D = -D_src(x) + D_src(G(x, c)) + l_cls L_cls^r + l_gp GP
    share = cfg.share_fakes and cfg.n_critic == 1
    with contextlib.nullcontext() if share else torch.no_grad():
        x_fake_g = G.edit(x_real, c_org, c_trg)
    x_fake = x_fake_g.detach()
    # the labels condition D_src only in a projection critic (d_projection); the paper's D ignores them
    (out_src, out_cls), (fake_src, fake_cls) = critic_real_fake(D, x_real, x_fake, c_org, c_trg)
    d_real, d_fake = losses.wgan_critic_loss(out_src, fake_src)
    d_cls = cls_loss(out_cls, label_org)
    d_gp = losses.gradient_penalty(lambda x: D(x, c_trg), losses.interpolate(x_real, x_fake))
    d_loss = d_real + d_fake + cfg.lambda_cls * d_cls + cfg.lambda_gp * d_gp
    log = {"D/loss_real": d_real, "D/loss_fake": d_fake, "D/loss_cls": d_cls, "D/loss_gp": d_gp}
    if cfg.d_cls_fake:  # cpu recipe: + w * L_cls(D_cls(G(x, c)), c_org), fakes are their source domain
        d_cls_fake = cls_loss(fake_cls, label_org)
        d_loss = d_loss + cfg.lambda_cls * cfg.d_cls_fake * d_cls_fake
        log["D/loss_cls_fake"] = d_cls_fake
    tr.update("D", d_loss, log)

    # Generator: L_G = -D_src(G(x, c)) + l_cls L_cls^f + l_rec ||x - G(G(x, c), c')||_1
    if (i + 1) % cfg.n_critic == 0:
        with frozen(D):
            x_fake = x_fake_g if share else G.edit(x_real, c_org, c_trg)
            out_src, out_cls = D(x_fake, c_trg)
            x_rec = G.edit(x_fake, c_trg, c_org)
            g_fake = losses.wgan_generator_loss(out_src)
            g_cls = cls_loss(out_cls, label_trg)
            g_rec = losses.l1(x_real, x_rec)
            g_loss = g_fake + cfg.lambda_rec * g_rec + cfg.lambda_cls * g_cls
            g_log = {"G/loss_fake": g_fake, "G/loss_rec": g_rec, "G/loss_cls": g_cls}
            tr.update("G", g_loss, g_log)
        log.update(g_log)
    return log


def _stargan_targets(c_org: torch.Tensor, cfg: StarGANConfig) -> list[torch.Tensor]:
    """The sample grid's target domains, those of the evaluation protocol: each expression; each of the 13
    attributes flipped (AttGAN's conflict rules); or StarGAN's ``create_labels`` (a hair colour set
    exclusively, Male / Young flipped)."""
    if cfg.domain == "expression":
        return [F.one_hot(torch.full((len(c_org),), k, device=c_org.device), cfg.c_dim).float()
                for k in range(cfg.c_dim)]
    target = flip_attribute if cfg.domain == "attributes13" else stargan_targets
    return [target(c_org, k) for k in range(cfg.c_dim)]


@torch.enable_grad()
def critic_as_classifier(cfg: StarGANConfig, steps: int, eval_every: int, n_test: int = 320,
                         test_identities: int = 40, threads: int | None = None) -> dict:
    """How fast StarGAN's critic can learn its domain head at all: a fresh critic of ``cfg`` trained on the
    classification loss of real faces alone (the ``L_cls^r`` term of Eq. 7; no adversarial term, no
    generator), with the training data, batch size and optimiser of ``cfg``. The generator's
    classification loss can only be as informative as this head, so its learning curve bounds how soon
    edits can carry the target domain. Expression domain only.

    Returns ``{"steps": [...], "accuracy": [...], "seconds": s}``: held-out accuracy (SynthFaces test
    split, other people) every ``eval_every`` steps.
    """
    if cfg.domain != "expression":
        raise ValueError(f"critic_as_classifier measures the expression head; got domain={cfg.domain!r}")
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps and eval_every must be at least 1; got {steps}, {eval_every}")
    start = time.perf_counter()
    data = SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                             flip=cfg.flip, seed=cfg.seed, data_seed=cfg.data_seed,
                             background=cfg.synthfaces_background)
    test = SynthFaces("test", size=cfg.image_size, n=n_test, n_identities=test_identities, seed=cfg.data_seed,
                      background=cfg.synthfaces_background).batch(torch.arange(n_test))
    # the domain head alone: a projection term (d_projection) only changes D_src, so the critic is built without it
    D = build_stargan(replace(cfg, d_projection=False))["D"].to(DEVICE).train()
    opt = adam(D, cfg.d_lr, cfg.beta1, cfg.beta2)
    use_amp = cfg.precision != "fp32"
    out = {"steps": [], "accuracy": []}
    with torch_threads(threads):
        for step in range(steps):
            batch = data(step)
            with autocast(DEVICE, enabled=use_amp):
                _, logits = D(batch["image"].to(DEVICE))
            loss = losses.expression_ce(logits, batch["expression"].to(DEVICE))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                with torch.no_grad():
                    pred = torch.cat([D(test["image"][lo:lo + 256].to(DEVICE))[1].argmax(1).cpu()
                                      for lo in range(0, n_test, 256)])
                out["steps"].append(step + 1)
                out["accuracy"].append(float((pred == test["expression"]).float().mean()))
    out["seconds"] = time.perf_counter() - start
    return out


CRITIC_CURVE_NAME = "stargan-critic-curve"  # the cache name of load_critic_curve's entries


def critic_curve_config(cfg: StarGANConfig, steps: int, eval_every: int) -> dict:
    """The cache key of :func:`load_critic_curve`: the StarGAN config and the experiment's own settings."""
    return {"stargan": cfg, "steps": steps, "eval_every": eval_every, "n_test": 320, "test_identities": 40,
            "version": 1}


def load_critic_curve(cfg: StarGANConfig, steps: int, eval_every: int, *, threads: int | None = None,
                      cache_dir=None) -> dict:
    """:func:`critic_as_classifier` through the model cache: measured once per config (``make book`` runs it
    up front, beside the models), then read back; ``seconds`` is the time of the run that measured it."""
    key = critic_curve_config(cfg, steps, eval_every)
    return load_or_train(CRITIC_CURVE_NAME, key,
                         lambda k: critic_as_classifier(cfg, steps, eval_every, n_test=k["n_test"],
                                                        test_identities=k["test_identities"], threads=threads),
                         cache_dir=cache_dir, verbose=False)


def stargan_editor(G: nets.Generator, cfg: StarGANConfig) -> Callable:
    """``editor(images, source, target)`` for the evaluation harness (protocol ``cfg.protocol``): expression
    indices, the 13 attributes or StarGAN's 5 (0/1)."""
    def edit(images, source, target):
        return G.edit(images, stargan_domain_vector(source, cfg), stargan_domain_vector(target, cfg))
    return edit


def train_stargan(cfg: StarGANConfig, run_dir=None, progress: bool = True, resume: bool = True,
                  n_samples: int = 8, threads: int | None = None, curve=None, curve_every: int = 0) -> Trainer:
    """Train StarGAN on SynthFaces with the engine (resumable run in ``run_dir``)."""
    data = SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                             flip=cfg.flip, seed=cfg.seed, data_seed=cfg.data_seed,
                             background=cfg.synthfaces_background)
    nets = build_stargan(cfg)
    opts = stargan_optimizers(cfg, nets)
    fixed = data.get(torch.arange(min(n_samples, data.n)))

    def samples(step):
        G = nets["G"].eval()
        x = fixed["image"].to(next(G.parameters()).device)
        c_org = stargan_domain_vector(stargan_labels(fixed, cfg), cfg).to(x.device)
        return [x] + [G.edit(x, c_org, c) for c in _stargan_targets(c_org, cfg)]

    schedule = linear_decay(cfg.num_iters, cfg.num_iters_decay, cfg.lr_update_step, cfg.official_lr_decay)
    if curve is None:  # the learning curve of the config (cfg.curve_every; none by default)
        curve = learning_curve(cfg, lambda nets: stargan_editor(nets["G"], cfg), [cfg.protocol],
                               background=cfg.synthfaces_background)
    return run_method("stargan", cfg, stargan_step, nets=nets, opts=opts, schedule=schedule, data=data,
                      samples=samples, total_steps=cfg.num_iters, run_dir=run_dir, progress=progress,
                      resume=resume, threads=threads, curve=curve, curve_every=curve_every or cfg.curve_every)


def load_stargan(cfg: StarGANConfig, outdir=None, progress: bool = True, cache_dir=None,
                 threads: int | None = None) -> Trained:
    """The StarGAN trained with ``cfg``: from the model cache, or trained now (resuming an interrupted run)."""
    return load_method("stargan", cfg, build=build_stargan, train=train_stargan, editor=stargan_editor,
                       outdir=outdir, progress=progress, cache_dir=cache_dir, threads=threads)



# The 13-attribute StarGAN keeps the earlier cpu recipe, the paper's with these departures (half width, a
# 5-layer critic at 4x the generator's rate): attribute accuracy 0.634 after 3,000 iterations (27 minutes); the
# expression recipe above reached 0.379 / 0.466 / 0.550 after 500 / 1,000 / 1,500 generator updates on the
# attributes (benchmarks/cpu_recipes_findings.md).
_CPU_ATTRIBUTES13 = dict(curve_every=1000, curve_oracles="cpu", image_size=64, g_conv_dim=32, d_conv_dim=32,
                         d_repeat_num=5, d_lr=4e-4, lr_update_step=100, log_every=50, sample_every=1000,
                         snapshot_every=250)


def chapter_configs(profile: str, *, seed: int = 0, attr_iters: int = 3000) -> dict[str, StarGANConfig]:
    """The baselines chapter's two StarGANs (one place, so that the chapter and the book's up-front training
    ask the cache for the same models): the 8 RaFD expressions, and the 13 CelebA attributes of AttGAN /
    STGAN / SeCGAN trained for ``attr_iters`` iterations (the last half with the learning rate decaying; at
    the cpu profile with the earlier recipe, :data:`_CPU_ATTRIBUTES13`)."""
    attr = dict(domain="attributes13", num_iters=attr_iters, num_iters_decay=attr_iters // 2, seed=seed)
    return {"expression": StarGANConfig.profile(profile, seed=seed),
            "attributes13": (StarGANConfig.paper(**_CPU_ATTRIBUTES13, **attr) if profile == "cpu" else
                             StarGANConfig.profile(profile, **attr))}
