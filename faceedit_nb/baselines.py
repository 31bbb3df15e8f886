"""The three baselines on SynthFaces: StarGAN, GANimation and AttGAN (with STGAN's difference condition).

Per baseline: a config dataclass whose defaults are the paper's / official code's settings, with ``cpu()``
and ``smoke()`` variants; ``build_*`` (the networks), ``*_step`` (one iteration of the official training
loop, a short function on top of :class:`faceedit_nb.train.Trainer`), ``train_*`` (a resumable run) and
``load_*`` (the trained networks through the model cache: trained once, loaded afterwards)::

    from faceedit_nb import baselines
    cfg = baselines.StarGANConfig.cpu()
    trained = baselines.load_stargan(cfg)            # trains on the first call, then loads from the cache
    edited = trained.editor(images, source_expression, target_expression)

Speed (see benchmarks/train_step.py): the critic's fakes are made under ``no_grad`` and the critic is
frozen during generator steps (the official code builds both graphs and throws the gradients away:
same numbers, less work), real and fake images go through the critic in one pass
(:func:`critic_real_fake`), Adam uses its fused kernel, the step runs under bf16 autocast on CPU, and
the critic's depth follows the image size (:func:`faceedit_nb.nets.stargan.default_d_repeat`: the
paper's 6 layers at 128 px).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import labels as L
from . import losses
from .cache import load_or_train
from .config import Profiles
from .data.synthfaces import SynthFaces
from .device import DEVICE, autocast, torch_threads
from .metrics.protocols import flip_attribute, stargan_targets
from .nets import attgan, ganimation, stargan
from .train import Trainer, epoch_indices, epoch_linear_decay, linear_decay, run_dir_for, step_decay

__all__ = [
    "StarGANConfig", "GANimationConfig", "AttGANConfig", "SynthFacesBatches", "Trained", "frozen", "critic_real_fake",
    "run_baseline",
    "build_stargan", "stargan_optimizers", "stargan_step", "critic_as_classifier", "train_stargan", "load_stargan",
    "stargan_editor",
    "build_ganimation", "ganimation_optimizers", "ganimation_step", "train_ganimation", "load_ganimation",
    "ganimation_editor", "build_attgan", "attgan_optimizers", "attgan_step", "train_attgan", "load_attgan",
    "attgan_editor",
]


# --- shared pieces ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Parameters of ``modules`` need no gradient inside the block (a critic during a generator step:
    the gradients still flow through it to the generator, but its own weight gradients are not computed)."""
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m, fl in zip(modules, flags):
            for p, f in zip(m.parameters(), fl):
                p.requires_grad_(f)


def _adam(module: nn.Module, lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    """Adam as in all three papers; the fused kernel (4x faster than the default on this CPU, same update)."""
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(beta1, beta2), fused=True)


def critic_real_fake(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[tuple, tuple]:
    """The critic's outputs on real and on fake images from one pass over both. The baselines' critics
    have no batch statistics (no norm, or instance norm), so this equals two passes, with less overhead."""
    n = real.shape[0]
    out = D(torch.cat([real, fake]))
    return tuple(o[:n] for o in out), tuple(o[n:] for o in out)


class SynthFacesBatches:
    """A SynthFaces split rendered once into memory (8-bit images and labels), served by step number.

    ``batches(step)`` returns the batch of that step: sample order from :func:`epoch_indices` (a new
    permutation every epoch, a function of ``(seed, step)``), optional random horizontal flips drawn from
    a generator seeded by the step. Nothing here has state, so resuming a run needs nothing from it.
    Keys: ``image`` (B x 3 x S x S in [-1, 1]), ``expression``, ``aus``, ``attributes``, ``index``.
    ``data_seed`` is the SynthFaces seed (which faces), ``seed`` the seed of order and flips.
    """

    def __init__(self, size: int, n: int, batch_size: int, *, n_identities: int | None = None,
                 au_mode: str = "expression", flip: bool = False, seed: int = 0, split: str = "train",
                 data_seed: int = 0, background: str = "identity"):
        self.dataset = SynthFaces(split, size=size, n=n, seed=data_seed, n_identities=n_identities, au_mode=au_mode,
                                  background=background)
        self.n, self.batch_size, self.flip, self.seed = len(self.dataset), batch_size, flip, seed
        if batch_size > self.n:
            raise ValueError(f"batch_size {batch_size} exceeds the {self.n} samples of the data set; "
                             "lower batch_size or raise n")
        images, self.labels = [], {"expression": [], "aus": [], "attributes": []}
        for lo in range(0, self.n, 256):
            b = self.dataset.batch(torch.arange(lo, min(self.n, lo + 256)))
            images.append(((b["image"] + 1) * 127.5).round().to(torch.uint8))
            for k in self.labels:
                self.labels[k].append(b[k])
        self.images = torch.cat(images)
        self.labels = {k: torch.cat(v) for k, v in self.labels.items()}

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    def get(self, indices: torch.Tensor, flip: torch.Tensor | None = None) -> dict:
        img = self.images[indices].float() / 127.5 - 1
        if flip is not None and flip.any():
            img[flip] = img[flip].flip(-1)
        out = {k: v[indices] for k, v in self.labels.items()}
        out.update(image=img, index=indices)
        return out

    def __call__(self, step: int) -> dict:
        idx = epoch_indices(step, self.batch_size, self.n, self.seed)
        flip = None
        if self.flip:
            g = torch.Generator().manual_seed(self.seed * 7_919 + 104_729 * step + 1)
            flip = torch.rand(len(idx), generator=g) < 0.5
        return self.get(idx, flip)


@dataclass
class Trained:
    """A trained baseline: its networks (eval mode), EMA copies if any, the training stats and config."""
    nets: dict
    ema: dict
    stats: list
    config: Any
    editor: Callable = field(repr=False, default=None)

    @property
    def train_seconds(self) -> float:
        """Seconds of training (the engine's clock, summed over resumed sessions) up to the last stats row."""
        return float(self.stats[-1]["elapsed"]) if self.stats else float("nan")

    def curve(self, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one logged figure, e.g. ``"G/loss_rec"`` (rows that lack it skipped)."""
        rows = [r for r in self.stats if key in r]
        if not rows and self.stats:
            raise KeyError(f"no {key!r} in the stats; logged: {sorted(self.stats[-1])}")
        return [r["step"] for r in rows], [r[key] for r in rows]


def run_baseline(name: str, cfg, nets: dict, opts: dict, schedule, step_fn, data, sample_fn, total_steps: int,
                 run_dir, progress: bool, resume: bool, threads: int | None) -> Trainer:
    """Run ``step_fn`` with the engine for ``total_steps`` in ``run_dir`` (default: the run directory of
    ``name`` and ``cfg``), resuming from its last snapshot; the config supplies EMA, precision, seed and
    the logging, sampling and snapshot intervals. Shared by the baselines and the paper series."""
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(name, cfg)
    tr = Trainer(nets, opts, total_steps=total_steps, run_dir=run_dir, options=cfg, lr_schedule=schedule,
                 ema={"G": cfg.ema_decay} if cfg.ema_decay else None, precision=cfg.precision, seed=cfg.seed,
                 snapshot_every=cfg.snapshot_every, log_every=cfg.log_every, sample_every=cfg.sample_every,
                 resume=resume, progress=progress, threads=threads)
    tr.run(lambda batch, i: step_fn(tr, cfg, batch, i), data, sample_fn)
    return tr


def _load(name: str, cfg, build: Callable, train: Callable, editor: Callable, outdir, progress: bool,
          cache_dir, threads: int | None) -> Trained:
    def train_fn(c):
        return train(c, run_dir=run_dir_for(name, c, outdir), progress=progress, threads=threads).export()

    state = load_or_train(name, cfg, train_fn, cache_dir=cache_dir)
    nets = build(cfg)
    for k, m in nets.items():
        m.load_state_dict(state["models"][k])
        m.eval()
    ema = {}
    for k, sd in state.get("ema", {}).items():
        ema[k] = build(cfg)[k]
        ema[k].load_state_dict(sd)
        ema[k].eval()
    G = ema.get("G", nets["G"])
    return Trained(nets, ema, state.get("stats", []), cfg, editor(G, cfg))


def _seeded(seed: int, build: Callable[[], dict]) -> dict:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# =========================================================================================================
# StarGAN (Choi et al., CVPR 2018; yunjey/stargan)
# =========================================================================================================
@dataclass
class StarGANConfig(Profiles):
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
    d_conv_dim: int = 64          # width of D
    d_repeat_num: int = 6         # stride-2 convs in D; default_d_repeat(image_size) ends at 2x2 (6 at 128 px)
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
    ema_decay: float = 0.0        # 0: no EMA generator (the paper has none)
    # engine
    precision: str = "auto"       # bf16 autocast on CPU, fp16 AMP on CUDA; "fp32" to turn it off
    seed: int = 0
    log_every: int = 100
    sample_every: int = 1000
    snapshot_every: int = 1000
    version: int = 1              # bump when the training code changes in a way that matters

    # 10,000 iterations (2,000 generator steps). Measured on SynthFaces at 64 px: after 3,000 iterations the
    # critic's expression head was still near chance (cross-entropy 1.93, ln 8 = 2.08) and the edits did not
    # change the expression; the critic alone, trained only to classify, needs ~1,000 steps to get going.
    # At the paper's d_lr = g_lr = 1e-4 the critic's class loss was still 0.41 after 10,000 iterations, the
    # generator satisfied that weak head with checkerboard texture, and EEA was 0.181 (identity editor 0.125).
    # The cpu profile trains the critic 4x faster (d_lr 4e-4, the two time-scale rule of Heusel et al.): at
    # iteration 5,000 its class loss was 0.52 against 0.93, and EEA 0.192 against 0.162 (400 test faces; an
    # EMA generator, decay 0.999, was worse in both runs at this length: 0.133 and 0.127). After 10,000
    # iterations: EEA 0.251 on the chapter's 1,000 test faces (identity editor 0.125; ground truth 0.983).
    _CPU = dict(image_size=64, g_conv_dim=32, d_conv_dim=32, d_repeat_num=5, d_lr=4e-4, num_iters=10000,
                num_iters_decay=5000,
                lr_update_step=100, log_every=50, sample_every=1000, snapshot_every=250)
    _SMOKE = dict(image_size=32, n_train=64, n_identities=8, g_conv_dim=8, g_repeat_num=1, d_conv_dim=8,
                  d_repeat_num=4, batch_size=8, n_critic=2, num_iters=6, num_iters_decay=2, lr_update_step=1,
                  log_every=2, sample_every=6, snapshot_every=3)

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
    return _seeded(cfg.seed, lambda: {
        "G": stargan.Generator(cfg.g_conv_dim, cfg.c_dim, cfg.g_repeat_num, cfg.condition),
        "D": stargan.Discriminator(cfg.image_size, cfg.d_conv_dim, cfg.c_dim, cfg.d_repeat_num)})


def stargan_optimizers(cfg: StarGANConfig, nets: dict) -> dict:
    return {"G": _adam(nets["G"], cfg.g_lr, cfg.beta1, cfg.beta2),
            "D": _adam(nets["D"], cfg.d_lr, cfg.beta1, cfg.beta2)}


def stargan_step(tr: Trainer, cfg: StarGANConfig, batch: dict, i: int) -> dict:
    """One iteration of StarGAN (``solver.py``): a critic step on Eq. 7 (left) and, every ``n_critic``
    iterations, a generator step on Eq. 7 (right). Target labels: a random permutation of the batch's."""
    G, D = tr.models["G"], tr.models["D"]
    cls_loss = losses.expression_ce if cfg.domain == "expression" else losses.attribute_bce_sum
    x_real, label_org = batch["image"], stargan_labels(batch, cfg)
    label_trg = label_org[torch.randperm(len(label_org)).to(label_org.device)]
    c_org, c_trg = stargan_domain_vector(label_org, cfg), stargan_domain_vector(label_trg, cfg)

    # Critic: L_D = -D_src(x) + D_src(G(x, c)) + l_cls L_cls^r + l_gp GP
    with torch.no_grad():
        x_fake = G.edit(x_real, c_org, c_trg)
    (out_src, out_cls), (fake_src, _) = critic_real_fake(D, x_real, x_fake)
    d_real, d_fake = losses.wgan_critic_loss(out_src, fake_src)
    d_cls = cls_loss(out_cls, label_org)
    d_gp = losses.gradient_penalty(D, losses.interpolate(x_real, x_fake))
    d_loss = d_real + d_fake + cfg.lambda_cls * d_cls + cfg.lambda_gp * d_gp
    log = {"D/loss_real": d_real, "D/loss_fake": d_fake, "D/loss_cls": d_cls, "D/loss_gp": d_gp}
    tr.update("D", d_loss, log)

    # Generator: L_G = -D_src(G(x, c)) + l_cls L_cls^f + l_rec ||x - G(G(x, c), c')||_1
    if (i + 1) % cfg.n_critic == 0:
        with frozen(D):
            x_fake = G.edit(x_real, c_org, c_trg)
            out_src, out_cls = D(x_fake)
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
    D = build_stargan(cfg)["D"].to(DEVICE).train()
    opt = _adam(D, cfg.d_lr, cfg.beta1, cfg.beta2)
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


def stargan_editor(G: stargan.Generator, cfg: StarGANConfig) -> Callable:
    """``editor(images, source, target)`` for the evaluation harness (protocol ``cfg.protocol``): expression
    indices, the 13 attributes or StarGAN's 5 (0/1)."""
    def edit(images, source, target):
        return G.edit(images, stargan_domain_vector(source, cfg), stargan_domain_vector(target, cfg))
    return edit


def train_stargan(cfg: StarGANConfig, run_dir=None, progress: bool = True, resume: bool = True,
                  n_samples: int = 8, threads: int | None = None) -> Trainer:
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
    return run_baseline("stargan", cfg, nets, opts, schedule, stargan_step, data, samples, cfg.num_iters, run_dir,
                        progress, resume, threads)


def load_stargan(cfg: StarGANConfig, outdir=None, progress: bool = True, cache_dir=None,
                 threads: int | None = None) -> Trained:
    """The StarGAN trained with ``cfg``: from the model cache, or trained now (resuming an interrupted run)."""
    return _load("stargan", cfg, build_stargan, train_stargan, stargan_editor, outdir, progress, cache_dir, threads)


# =========================================================================================================
# GANimation (Pumarola et al., ECCV 2018; albertpumarola/GANimation)
# =========================================================================================================
@dataclass
class GANimationConfig(Profiles):
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
    d_conv_dim: int = 64
    d_repeat_num: int = 6         # default_d_repeat(image_size)
    convention: str = "code"      # composite: "code" A*x + (1-A)*C (official) or "paper" (Eq. 1 of arXiv v1)
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
    ema_decay: float = 0.0
    # engine
    precision: str = "auto"
    seed: int = 0
    log_every: int = 100
    sample_every: int = 1000
    snapshot_every: int = 1000
    version: int = 1

    _CPU = dict(image_size=64, g_conv_dim=32, d_conv_dim=32, d_repeat_num=5, batch_size=16, nepochs_no_decay=10,
                nepochs_decay=5, log_every=50, sample_every=500, snapshot_every=250)  # 3000 iterations
    _SMOKE = dict(image_size=32, n_train=64, n_identities=8, g_conv_dim=8, g_repeat_num=1, d_conv_dim=8,
                  d_repeat_num=4, batch_size=8, train_G_every_n_iterations=2, nepochs_no_decay=1, nepochs_decay=1,
                  log_every=2, sample_every=8, snapshot_every=4)

    @property
    def steps_per_epoch(self) -> int:
        return self.n_train // self.batch_size

    @property
    def total_steps(self) -> int:
        return (self.nepochs_no_decay + self.nepochs_decay) * self.steps_per_epoch


def build_ganimation(cfg: GANimationConfig) -> dict[str, nn.Module]:
    c = len(L.AUS)
    return _seeded(cfg.seed, lambda: {
        "G": ganimation.init_weights(ganimation.Generator(cfg.g_conv_dim, c, cfg.g_repeat_num, cfg.convention)),
        "D": ganimation.init_weights(ganimation.Discriminator(cfg.image_size, cfg.d_conv_dim, c, cfg.d_repeat_num))})


def ganimation_optimizers(cfg: GANimationConfig, nets: dict) -> dict:
    return {"G": _adam(nets["G"], cfg.lr_G, cfg.beta1, cfg.beta2),
            "D": _adam(nets["D"], cfg.lr_D, cfg.beta1, cfg.beta2)}


class _GANimationBatches(SynthFacesBatches):
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


def ganimation_step(tr: Trainer, cfg: GANimationConfig, batch: dict, i: int) -> dict:
    """One iteration of GANimation (``models/ganimation.py``): a critic step (adversarial + AU regression
    on real images), a separate gradient-penalty step, and every ``train_G_every_n_iterations`` batches a
    generator step (adversarial, AU regression of the fake, cycle, attention mean and smoothness)."""
    G, D = tr.models["G"], tr.models["D"]
    x, y_org, y_trg = batch["image"], batch["aus"], batch["aus_trg"]

    # Critic: -D_I(x) + l_cond ||D_y(x) - y_org||^2 + D_I(G(x | y_trg))
    with torch.no_grad():
        x_fake, _ = G.animate(x, y_trg)
    (d_src, d_aus), (fake_src, _) = critic_real_fake(D, x, x_fake)
    d_real, d_fake = losses.wgan_critic_loss(d_src, fake_src)
    d_cond = losses.au_mse(d_aus, y_org)
    d_loss = cfg.lambda_D_prob * (d_real + d_fake) + cfg.lambda_D_cond * d_cond
    log = {"D/real": d_real, "D/fake": d_fake, "D/cond": d_cond}
    tr.update("D", d_loss, log)

    # Gradient penalty: its own critic step, between the real images and the same fakes
    d_gp = losses.gradient_penalty(D, losses.interpolate(x, x_fake))
    tr.update("D", cfg.lambda_D_gp * d_gp, {"D/gp": d_gp})
    log["D/gp"] = d_gp

    # Generator: adversarial + AU regression of the fake + cycle + attention regularisers
    if (i + 1) % cfg.train_G_every_n_iterations == 0:
        with frozen(D):
            x_fake, a_fake = G.animate(x, y_trg)
            g_src, g_aus = D(x_fake)
            x_rec, a_rec = G.animate(x_fake, y_org)
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


def ganimation_editor(G: ganimation.Generator, cfg: GANimationConfig) -> Callable:
    """``editor(images, source_aus, target_aus)`` for the evaluation harness (AU protocols)."""
    def edit(images, source, target):
        return G.animate(images, target.float())[0]
    return edit


def train_ganimation(cfg: GANimationConfig, run_dir=None, progress: bool = True, resume: bool = True,
                     n_samples: int = 8, threads: int | None = None) -> Trainer:
    """Train GANimation on SynthFaces with the engine (resumable run in ``run_dir``)."""
    data = _GANimationBatches(cfg)
    nets = build_ganimation(cfg)
    opts = ganimation_optimizers(cfg, nets)
    fixed = data.get(torch.arange(min(n_samples, data.n)))
    shown = [L.EXPRESSIONS.index(e) for e in ("happy", "surprised", "angry", "sad", "disgusted")]

    def samples(step):
        G = nets["G"].eval()
        x = fixed["image"].to(next(G.parameters()).device)
        cols = [x]
        for k in shown:
            fake, att = G.animate(x, L.PROTOTYPES[k].to(x.device).expand(len(x), -1))
            cols += [fake, att.expand_as(x) * 2 - 1]
        return cols

    schedule = epoch_linear_decay(cfg.steps_per_epoch, cfg.nepochs_no_decay, cfg.nepochs_decay)
    return run_baseline("ganimation", cfg, nets, opts, schedule, ganimation_step, data, samples, cfg.total_steps,
                        run_dir, progress, resume, threads)


def load_ganimation(cfg: GANimationConfig, outdir=None, progress: bool = True, cache_dir=None,
                    threads: int | None = None) -> Trained:
    """The GANimation trained with ``cfg``: from the model cache, or trained now."""
    return _load("ganimation", cfg, build_ganimation, train_ganimation, ganimation_editor, outdir, progress,
                 cache_dir, threads)


# =========================================================================================================
# AttGAN (He et al., TIP 2019; elvisyjlin/AttGAN-PyTorch) and STGAN's difference condition
# =========================================================================================================
@dataclass
class AttGANConfig(Profiles):
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
    ema_decay: float = 0.0
    # engine
    precision: str = "auto"
    seed: int = 0
    log_every: int = 100
    sample_every: int = 1000
    snapshot_every: int = 1000
    version: int = 1

    _CPU = dict(image_size=64, enc_dim=32, dec_dim=32, n_layers=4, max_dim=512, dis_dim=32, dis_layers=4,
                dis_fc_dim=256, batch_size=16, epochs=20, decay_epoch=10, log_every=50, sample_every=500,
                snapshot_every=250)  # 4000 iterations (3333 critic, 667 generator steps)
    _SMOKE = dict(image_size=32, n_train=64, n_identities=8, enc_dim=8, dec_dim=8, n_layers=3, max_dim=32,
                  dis_dim=8, dis_layers=3, dis_fc_dim=16, batch_size=8, n_d=2, epochs=2, decay_epoch=1,
                  log_every=2, sample_every=8, snapshot_every=4)

    @property
    def steps_per_epoch(self) -> int:
        return self.n_train // self.batch_size

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def build_attgan(cfg: AttGANConfig) -> dict[str, nn.Module]:
    n = len(L.ATTRIBUTES)
    return _seeded(cfg.seed, lambda: {
        "G": attgan.Generator(cfg.enc_dim, cfg.dec_dim, cfg.n_layers, n, cfg.shortcut_layers, cfg.inject_layers,
                              cfg.image_size, cfg.max_dim, cfg.condition, cfg.thres_int),
        "D": attgan.Discriminator(cfg.dis_dim, cfg.dis_layers, cfg.dis_fc_dim, n, cfg.image_size, cfg.max_dim)})


def attgan_optimizers(cfg: AttGANConfig, nets: dict) -> dict:
    return {"G": _adam(nets["G"], cfg.lr, cfg.beta1, cfg.beta2), "D": _adam(nets["D"], cfg.lr, cfg.beta1, cfg.beta2)}


def attgan_step(tr: Trainer, cfg: AttGANConfig, batch: dict, i: int) -> dict:
    """One iteration of AttGAN-PyTorch's ``train.py``: each batch trains either D (``n_d`` of every
    ``n_d + 1`` iterations) or G. Target attributes: a random permutation of the batch's."""
    G, D = tr.models["G"], tr.models["D"]
    img_a, att_a = batch["image"], batch["attributes"].float()
    att_b = att_a[torch.randperm(len(att_a)).to(att_a.device)]
    cond_b = G.condition_vector(att_a, att_b)  # (b * 2 - 1) * thres_int, or b_ - a_ (STGAN)

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


def attgan_editor(G: attgan.Generator, cfg: AttGANConfig) -> Callable:
    """``editor(images, source_attributes, target_attributes)`` (13 attributes, 0/1) for the harness;
    edited attributes at ``cfg.test_int``."""
    def edit(images, source, target):
        return G.edit(images, source.float(), target.float(), test_int=cfg.test_int)
    return edit


def train_attgan(cfg: AttGANConfig, run_dir=None, progress: bool = True, resume: bool = True,
                 n_samples: int = 8, threads: int | None = None) -> Trainer:
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
    return run_baseline("attgan", cfg, nets, opts, schedule, attgan_step, data, samples, cfg.total_steps, run_dir,
                        progress, resume, threads)


def load_attgan(cfg: AttGANConfig, outdir=None, progress: bool = True, cache_dir=None,
                threads: int | None = None) -> Trained:
    """The AttGAN trained with ``cfg``: from the model cache, or trained now."""
    return _load("attgan", cfg, build_attgan, train_attgan, attgan_editor, outdir, progress, cache_dir, threads)
