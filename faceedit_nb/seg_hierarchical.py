"""Bodur et al., "A Unified Architecture of Semantic Segmentation and Hierarchical GANs for Expression
Manipulation" (seg-hierarchical-gan.txt): the model and one training iteration.

A face parser cuts the image into 4 soft local parts (Eq. 1-2); a global StarGAN generator translates the
whole face and four local StarGAN generators translate the parts (Eq. 3); the parts are stitched back
and a fusion network blends both (Eq. 4). Every generator has its own discriminator with an auxiliary
expression classifier (Eq. 5-6) and a cycle reconstruction (Eq. 7); the total is Eq. 8. End-to-end, the
local and fusion losses also update the parser (Eq. 9).

The paper writes the adversarial loss in its log form (Eq. 5) but implements every GAN with StarGAN,
whose official training uses WGAN-GP; we follow StarGAN's code (WGAN-GP, ``n_critic`` critic steps per
generator step), as the baselines chapter does.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import labels as L
from . import losses
from .baselines import SynthFacesBatches, Trained, frozen, run_baseline
from .cache import config_hash, is_cached, load_or_train
from .config import Profiles
from .data.synthfaces import SynthFaces
from .device import torch_threads
from .nets import hierarchical as H
from .nets import stargan
from .nets.parsing import train_parser
from .train import Trainer, epoch_indices, run_dir_for


DATASETS = ("synthfaces", "rafd", "affectnet")


@dataclass
class HierarchicalConfig(Profiles):
    """Settings of the hierarchical GAN; the defaults are the paper's (Sec. 4, "Implementation")."""

    image_size: int = 256          # aligned face crops of 256 x 256
    part_size: int = 64            # each local part is resized to 64 x 64 (Sec. 3.1)
    c_dim: int = len(L.EXPRESSIONS)  # one-hot target expression (8 RaFD classes)
    g_conv_dim: int = 64           # StarGAN generators, global and local
    g_repeat: int = 6              # residual blocks of each StarGAN generator
    d_conv_dim: int = 64           # StarGAN discriminators
    d_repeat: int = 6              # at most this many stride-2 layers (StarGAN's 6; fewer for small inputs)
    fusion_dim: int = 64           # width of the fusion network (two conv blocks, four residual blocks)
    fusion_residual: bool = False  # True (not the paper's): G_fusion outputs x_global + a correction that starts
    #                                at zero, so that training starts from the global generator's edits
    parser: str = "bisenet"        # "bisenet" or "unet" (Table 2 / Table A1)
    parser_width: int = 64         # UNet base width (BiSeNet has a fixed ResNet-18 context path)
    temperature: float = 0.1       # τ of the tempered softmax softmax(S / τ) (Eq. 1 with φ = 1 / τ)
    end_to_end: bool = True        # Eq. 9: the local and fusion losses update the parser
    parts: str = "semantic"        # "semantic" (parser masks) or "rectangular" (landmark boxes, EF-GAN)
    box_size: tuple[float, float, float, float] = (0.2, 0.2, 0.18, 0.28)  # rectangular box sides / image side
    box_margin: float = 0.15       # semantic boxes: tight box around the mask, grown by this share
    exclude: tuple[str, ...] = ()  # parts left out (Table 3): names from labels.LOCAL_PARTS
    lambda_global: float = 1.0     # λ_p of Eq. 8 (Figure 4 sweeps these three)
    lambda_local: float = 1.0
    lambda_fusion: float = 1.0
    lambda_cls: float = 1.0        # StarGAN's weights of the classification,
    lambda_rec: float = 10.0       # cycle reconstruction
    lambda_gp: float = 10.0        # and gradient penalty terms
    n_critic: int = 5              # critic steps per generator step (StarGAN)
    batch_size: int = 8
    lr: float = 1e-4               # Adam, betas (0.5, 0.999), for every generator
    d_lr: float = 1e-4             # ... and for every critic (the paper: the same 1e-4)
    parser_lr: float = 1e-4        # the λ_p step of Eq. 9
    detach_real_parts: bool = False  # True: the real parts x_s^p = M_p x_s enter the cycle loss (Eq. 7) and the
    #                                  critics as constants, so the parser learns only through the generators'
    #                                  outputs. False is Eq. 9 as written: Eq. 7 then has a trivial minimiser
    #                                  (empty masks make x_s^p and its reconstruction both zero)
    steps: int = 200_000
    seed: int = 0
    # where the global generator starts (the paper: from scratch, with the others)
    global_from: str = ""          # "": from scratch; a profile name ("cpu", "smoke"): from the baselines chapter's
    #                                StarGAN of that profile (its generator and critic, at their own width; the
    #                                cache key holds that StarGAN's config, so the two stay in step)
    train_global: bool = True      # False: the global generator and its critic stay as loaded; the global term
    #                                of Eq. 8 is then a constant and is skipped (needs global_from). With
    #                                global_from, the fusion critic (which also sees whole faces) starts from
    #                                the StarGAN's critic too
    # the translation set (RaFD in the paper: 1,608 frontal faces of 67 people; no masks are used)
    n_train: int = 3200            # SynthFaces training faces (train split)
    n_identities: int = 200
    data_seed: int = 0
    background: str = "studio"     # SynthFaces backdrops of the translation faces: one studio backdrop for all,
    #                                as RaFD's (and the StarGAN baseline's); "identity": one per person
    dataset: str = "synthfaces"    # the translation set: "synthfaces", or the paper's "rafd" / "affectnet", read
    #                                from data_root by faceedit_nb.data.RaFD / AffectNet (train split)
    data_root: str = ""            # the RaFD or AffectNet folder (the loaders' docstrings show the layout)
    # parser pre-training (the paper: CelebAMask-HQ's training set, another data set than the translation one)
    parser_masks: int = 24_183     # labelled faces at fraction 1 (CelebAMask-HQ's training split has 24,183)
    parser_fraction: float = 1.0   # share of them used for pre-training (Figure 5: 0.1, 0.2, 0.5, 1)
    parser_steps: int = 80_000     # face-parsing.PyTorch trains BiSeNet for 80k iterations of batch 16
    parser_batch: int = 16
    parser_pretrain_lr: float = 2e-3  # AdamW, warm-up then poly decay (faceedit_nb.nets.parsing.train_parser)
    parser_data_seed: int = 1      # SynthFaces seed of the labelled faces: other people than the translation set
    parser_data_root: str = ""     # a CelebAMask-HQ folder: pre-train on its train split (the paper's);
    #                                "": on SynthFaces masks
    backbone_weights: str = ""     # BiSeNet: a local torchvision ResNet-18 state dict (ImageNet) for its context
    #                                path; "": from scratch (nothing is downloaded)
    parser_checkpoint: str = ""    # BiSeNet: a local face-parsing.PyTorch checkpoint (79999_iter.pth) that
    #                                pre-training starts from (parser_steps=0: use it as it is)
    # engine
    precision: str = "auto"        # bf16 autocast on CPU, fp16 on CUDA; "fp32" to turn it off
    ema_decay: float = 0.0         # the paper keeps no EMA generator
    log_every: int = 100
    sample_every: int = 1000
    snapshot_every: int = 1000
    version: int = 1               # bump when the training code changes results

    # cpu: 64 px faces (the cpu oracles' size), 32 px parts, local generators of width 16, batch 8 (the
    # paper's), 600 iterations. Measured (1 thread, one seed, EEA on 200 test faces x 8 targets):
    # * from scratch (the paper's recipe, width 8, 800 steps) the generators did not learn the target:
    #   after 650 iterations the fused output's target-expression loss was ~2.05 (ln 8 = 2.08);
    # * with the global generator from the baselines' StarGAN but a fusion network from scratch, the output
    #   after 400 iterations was noise (EEA 0.128, ID distance 0.52; StarGAN: 0.255, 0.180); an L1 warm-up of
    #   the fusion network to copy the global output stalled at L1 0.108 in 300 steps;
    # * so: the global generator is the cached StarGAN, kept fixed; the fusion network adds a correction
    #   that starts at zero; the global and fusion critics start from StarGAN's critic; d_lr 4e-4 (TTUR).
    #   EEA 0.224 / 0.249 / 0.256 / 0.256 / 0.255 / 0.264 at 200 / 400 / ... / 1,200 iterations (StarGAN
    #   alone: 0.255); the mouth generator learnt its part (critic's class loss 0.39 at 850 iterations), the
    #   nose's did not (2.06). n_critic 2 was no better (0.240 / 0.282 / 0.236 / 0.266) and 1.4x slower.
    # 0.48 s per iteration on 1 core (benchmarks/hierarchical_step.py), 4.8 minutes per model.
    # End to end with the parser's gradient through the real parts and lr 1e-4, the parser lost 99% of its
    # parts' IoU in 250 iterations (measured; 03_ablations shows it); detached real parts and lr 1e-5 kept it.
    _CPU = dict(image_size=64, part_size=32, g_conv_dim=16, g_repeat=3, d_conv_dim=16, fusion_dim=16,
                global_from="cpu", train_global=False, d_lr=4e-4, fusion_residual=True,
                parser="unet", parser_width=16, batch_size=8, steps=600, parser_masks=4000, parser_steps=400,
                parser_pretrain_lr=5e-3, detach_real_parts=True, parser_lr=1e-5, log_every=50, sample_every=400,
                snapshot_every=200)
    _SMOKE = dict(image_size=32, part_size=16, g_conv_dim=8, g_repeat=1, d_conv_dim=8, fusion_dim=8,
                  global_from="smoke", train_global=False, d_lr=4e-4, fusion_residual=True,
                  parser="unet", parser_width=8, batch_size=4, steps=4, n_critic=2, n_train=32, n_identities=8,
                  detach_real_parts=True,
                  parser_masks=40, parser_steps=3, parser_batch=4, log_every=2, sample_every=4, snapshot_every=2)

    def __post_init__(self):
        if self.parser not in ("bisenet", "unet"):
            raise ValueError(f"parser must be 'bisenet' or 'unet'; got {self.parser!r}")
        if self.parts not in ("semantic", "rectangular"):
            raise ValueError(f"parts must be 'semantic' or 'rectangular'; got {self.parts!r}")
        unknown = set(self.exclude) - set(H.PARTS)
        if unknown:
            raise ValueError(f"unknown parts in exclude: {sorted(unknown)}; choose from {H.PARTS}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}; got {self.dataset!r}")
        if self.dataset != "synthfaces" and not self.data_root:
            raise ValueError(f"dataset={self.dataset!r} is read from disk: set data_root to its folder "
                             "(or use dataset='synthfaces')")
        if (self.backbone_weights or self.parser_checkpoint) and self.parser != "bisenet":
            raise ValueError("backbone_weights and parser_checkpoint are BiSeNet weights: set parser='bisenet'")
        if not self.train_global and not self.global_from:
            raise ValueError("train_global=False keeps the global generator as loaded: set global_from to the "
                             "profile of the StarGAN to load (e.g. global_from='cpu')")
        if not 0 < self.parser_fraction <= 1:
            raise ValueError(f"parser_fraction must lie in (0, 1]; got {self.parser_fraction!r}")
        self.box_size = tuple(self.box_size)
        self.exclude = tuple(self.exclude)

    @property
    def active_parts(self) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(H.PARTS) if p not in self.exclude)

    def global_stargan(self):
        """The baselines chapter's StarGAN config whose networks the global branch starts from (None: scratch)."""
        if not self.global_from:
            return None
        from .baselines import StarGANConfig
        return StarGANConfig.profile(self.global_from, image_size=self.image_size)

    def cache_key(self):
        """What decides this model's weights: the config, and the StarGAN config its global branch starts from."""
        sg = self.global_stargan()
        return self if sg is None else {"hierarchical": self, "global_stargan": sg}


def build_parser(cfg: HierarchicalConfig) -> nn.Module:
    from .nets import parsing
    if cfg.parser == "bisenet":
        return parsing.BiSeNet(backbone_weights=cfg.backbone_weights or None)
    return parsing.UNet(base=cfg.parser_width)


class HierarchicalGAN(nn.Module):
    """Parser, global / local / fusion generators and their six discriminators (Fig. 2)."""

    def __init__(self, cfg: HierarchicalConfig, parser: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        g = lambda: stargan.Generator(cfg.g_conv_dim, cfg.c_dim, cfg.g_repeat)  # noqa: E731
        def d(size):
            return stargan.Discriminator(size, cfg.d_conv_dim, cfg.c_dim,
                                         min(cfg.d_repeat, stargan.default_d_repeat(size)))

        sg = cfg.global_stargan()
        if sg is None:
            self.G_global, self.D_global = g(), d(cfg.image_size)
        else:  # the baselines chapter's StarGAN networks, at their own width (weights: build_hierarchical)
            self.G_global = stargan.Generator(sg.g_conv_dim, cfg.c_dim, sg.g_repeat_num)
            self.D_global = stargan.Discriminator(cfg.image_size, sg.d_conv_dim, cfg.c_dim, sg.d_repeat_num)
        if not cfg.train_global:
            self.G_global.requires_grad_(False)
            self.D_global.requires_grad_(False)
        self.G_parts = nn.ModuleList([g() for _ in H.PARTS])
        self.fusion = H.FusionNetwork(cfg.fusion_dim, residual=cfg.fusion_residual)
        self.D_fusion = d(cfg.image_size) if sg is None else stargan.Discriminator(
            cfg.image_size, sg.d_conv_dim, cfg.c_dim, sg.d_repeat_num)
        self.D_parts = nn.ModuleList([d(cfg.part_size) for _ in H.PARTS])
        self.parser = parser if parser is not None else (build_parser(cfg) if cfg.parts == "semantic" else None)

    # --- the forward pass of Fig. 2 -----------------------------------------------------------------
    def part_layout(self, x: torch.Tensor, landmarks: torch.Tensor | None = None):
        """Soft part masks (B, 4, H, W) or None, boxes (B, 4, 4) and the count of parts not found."""
        cfg = self.cfg
        if cfg.parts == "rectangular":
            if landmarks is None:
                raise ValueError("the rectangular baseline crops boxes around landmarks: pass landmarks")
            return None, H.rectangular_boxes(landmarks, cfg.box_size, x.shape[-1]), 0
        from .nets.parsing import soft_part_masks
        self.parser.eval()  # batch norm uses its pre-trained statistics; gradients still reach the weights
        with torch.set_grad_enabled(cfg.end_to_end and torch.is_grad_enabled()):
            masks = soft_part_masks(self.parser(x), cfg.temperature)
        boxes, empty = H.mask_boxes(masks, margin=cfg.box_margin)
        return masks, boxes, int(empty.sum())

    def translate(self, x: torch.Tensor, c: torch.Tensor, layout=None, landmarks=None) -> dict:
        """Translate images ``x`` to expressions ``c`` (one-hot, B x c_dim); returns every intermediate."""
        cfg = self.cfg
        masks, boxes, missing = layout if layout is not None else self.part_layout(x, landmarks)
        parts_in = H.extract_parts(x, boxes, cfg.part_size, masks=masks)  # Eq. 2
        active = cfg.active_parts
        parts_out = torch.zeros_like(parts_in)
        for p in active:  # Eq. 3
            parts_out[:, p] = self.G_parts[p](parts_in[:, p], c)
        x_global = self.G_global(x, c)
        x_local = H.stitch_parts(parts_out, boxes, x.shape[-1], average_overlaps=cfg.parts == "rectangular")
        x_out = self.fusion(x_global, x_local)  # Eq. 4
        return {"out": x_out, "global": x_global, "local": x_local, "parts_in": parts_in, "parts_out": parts_out,
                "masks": masks, "boxes": boxes, "missing": missing}

    def forward(self, x: torch.Tensor, c: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        return self.translate(x, c, landmarks=landmarks)["out"]

    def reconstruct(self, fake: dict, c_src: torch.Tensor) -> dict:
        """Each generator undoes its own translation (Eq. 7): x̂_p = G_p(x_t^p, y_s), then fused again."""
        parts = torch.zeros_like(fake["parts_out"])
        for p in self.cfg.active_parts:
            parts[:, p] = self.G_parts[p](fake["parts_out"][:, p], c_src)
        x_global = self.G_global(fake["global"], c_src)
        x_local = H.stitch_parts(parts, fake["boxes"], fake["global"].shape[-1],
                                 average_overlaps=self.cfg.parts == "rectangular")
        return {"out": self.fusion(x_global, x_local), "global": x_global, "parts": parts}

    def generator_modules(self) -> list[nn.Module]:
        """The generators being trained (the global one only when ``train_global``)."""
        return [self.G_global] * self.cfg.train_global + [*self.G_parts, self.fusion]

    def discriminator_modules(self) -> list[nn.Module]:
        return [self.D_global] * self.cfg.train_global + [*self.D_parts, self.D_fusion]


# --- losses of one iteration (Eq. 5-8, with StarGAN's WGAN-GP) ------------------------------------------

def _branches(model: HierarchicalGAN, real: dict, fake: dict):
    """(name, weight λ_p, discriminator, real input, fake output) of every branch of Eq. 8."""
    cfg = model.cfg
    if cfg.train_global:
        yield "global", cfg.lambda_global, model.D_global, real["image"], fake["global"]
    yield "fusion", cfg.lambda_fusion, model.D_fusion, real["image"], fake["out"]
    for p in cfg.active_parts:
        yield H.PARTS[p], cfg.lambda_local, model.D_parts[p], real["parts"][:, p], fake["parts_out"][:, p]


def discriminator_loss(model: HierarchicalGAN, real: dict, fake: dict, label_src: torch.Tensor) -> dict:
    """Critic losses of every branch: WGAN-GP adversarial term + λ_cls CE on real images (Eq. 5-6)."""
    cfg = model.cfg
    terms, total = {}, 0.0
    for name, lam, D, x_real, x_fake in _branches(model, real, fake):
        x_fake = x_fake.detach()
        out_real, cls_real = D(x_real)
        d_real, d_fake = losses.wgan_critic_loss(out_real, D(x_fake)[0])
        cls = losses.expression_ce(cls_real, label_src)
        gp = losses.gradient_penalty(D, losses.interpolate(x_real.detach(), x_fake))
        loss = d_real + d_fake + cfg.lambda_cls * cls + cfg.lambda_gp * gp
        terms[f"D/{name}"] = loss.detach()
        total = total + lam * loss
    return {"loss": total, **terms}


def generator_loss(model: HierarchicalGAN, real: dict, fake: dict, recon: dict, label_trg: torch.Tensor) -> dict:
    """Eq. 8: Σ_p λ_p (adversarial + λ_cls classification + λ_rec cycle reconstruction (Eq. 7))."""
    cfg = model.cfg
    rec_of = {"global": (recon["global"], real["image"]), "fusion": (recon["out"], real["image"])}  # Eq. 7
    for p in cfg.active_parts:
        rec_of[H.PARTS[p]] = (recon["parts"][:, p], real["parts"][:, p])
    terms, total = {}, 0.0
    for name, lam, D, _, x_fake in _branches(model, real, fake):
        out_fake, cls_fake = D(x_fake)
        cls = losses.expression_ce(cls_fake, label_trg)
        loss = (losses.wgan_generator_loss(out_fake) + cfg.lambda_cls * cls
                + cfg.lambda_rec * losses.l1(*rec_of[name]))
        terms[f"G/{name}"] = loss.detach()
        terms[f"G_cls/{name}"] = cls.detach()  # the target-expression term alone, for the training curves
        total = total + lam * loss
    return {"loss": total, **terms}


def real_inputs(images: torch.Tensor, fake: dict, detach_parts: bool = False) -> dict:
    """What the discriminators see as real: the image, and its parts cut exactly as for the fakes
    (as constants with ``detach_parts``, see ``HierarchicalConfig.detach_real_parts``)."""
    return {"image": images, "parts": fake["parts_in"].detach() if detach_parts else fake["parts_in"]}


def parameter_groups(model: HierarchicalGAN) -> dict[str, list[dict]]:
    """Adam parameter groups: generators (+ the parser when end-to-end, Eq. 9) and discriminators."""
    cfg = model.cfg
    g = [{"params": [p for m in model.generator_modules() for p in m.parameters()], "lr": cfg.lr}]
    if cfg.end_to_end and model.parser is not None:
        g.append({"params": list(model.parser.parameters()), "lr": cfg.parser_lr})
    d = [{"params": [p for m in model.discriminator_modules() for p in m.parameters()], "lr": cfg.d_lr}]
    return {"G": g, "D": d}


def hierarchical_step(tr: Trainer, cfg: HierarchicalConfig, batch: dict, i: int) -> dict:
    """One iteration: a critic step on every branch and, every ``n_critic`` iterations, a generator step
    whose local and fusion losses also reach the parser when end-to-end (Eq. 9). Targets: a random
    permutation of the batch's expressions, as StarGAN."""
    model = tr.models["model"]
    x, label_src = batch["image"], batch["expression"]
    label_trg = label_src[torch.randperm(len(label_src)).to(label_src.device)]
    c_src, c_trg = F.one_hot(label_src, cfg.c_dim).float(), F.one_hot(label_trg, cfg.c_dim).float()
    landmarks = batch.get("landmarks")
    with torch.no_grad():
        fake = model.translate(x, c_trg, landmarks=landmarks)
    d = discriminator_loss(model, real_inputs(x, fake), fake, label_src)
    log = {k: v for k, v in d.items() if k != "loss"}
    log["parts_missing"] = float(fake["missing"])
    tr.update("D", d["loss"], log)
    if (i + 1) % cfg.n_critic == 0:
        with frozen(*model.discriminator_modules()):
            fake = model.translate(x, c_trg, landmarks=landmarks)
            real = real_inputs(x, fake, cfg.detach_real_parts)
            g = generator_loss(model, real, fake, model.reconstruct(fake, c_src), label_trg)
            g_log = {k: v for k, v in g.items() if k != "loss"}
            tr.update("G", g["loss"], g_log)
        log.update(g_log)
    return log


def config_for(profile: str, **overrides) -> HierarchicalConfig:
    """The paper's settings (``paper``), scaled down for a CPU (``cpu``) or a smoke test (``smoke``)."""
    return HierarchicalConfig.profile(profile, **overrides)


# =========================================================================================================
# Parser pre-training (the starting point of both variants) and its mIoU
# =========================================================================================================
PARSER_KEYS = ("parser", "parser_width", "image_size", "parser_masks", "parser_fraction", "parser_steps",
               "parser_batch", "parser_pretrain_lr", "parser_data_seed", "parser_data_root", "backbone_weights",
               "parser_checkpoint", "seed", "version")


def parser_config(cfg: HierarchicalConfig) -> dict:
    """The settings that decide the pre-trained parser: its cache key. Every GAN variant with the same
    parser settings (w/o and w/ end-to-end, the ablations) starts from the same cached parser."""
    return {k: getattr(cfg, k) for k in PARSER_KEYS}


def parser_training_set(cfg: HierarchicalConfig) -> dict:
    """The labelled faces of pre-training: a seeded random ``parser_fraction`` of ``parser_masks`` SynthFaces
    faces (train split, seed ``parser_data_seed``), or of the first ``parser_masks`` faces of CelebAMask-HQ's
    train split when ``parser_data_root`` is set, as uint8 images and label maps. Smaller fractions are
    subsets of larger ones (the same permutation), as the paper's proportions of CelebAMask-HQ."""
    if cfg.parser_data_root:
        from .data import CelebAMaskHQ
        faces = CelebAMaskHQ(cfg.parser_data_root, "train", size=cfg.image_size)
        n_all = min(cfg.parser_masks, len(faces))
    else:
        n_all = cfg.parser_masks
        faces = SynthFaces("train", size=cfg.image_size, n=n_all, seed=cfg.parser_data_seed,
                           n_identities=max(1, n_all // 8))
    n = max(min(cfg.parser_batch, n_all), round(n_all * cfg.parser_fraction))
    order = torch.randperm(n_all, generator=torch.Generator().manual_seed(cfg.parser_data_seed))[:n].sort().values
    images, masks = [], []
    for lo in range(0, n, 256):
        b = faces.batch(order[lo:lo + 256]) if not cfg.parser_data_root else _stack(faces, order[lo:lo + 256])
        images.append(((b["image"] + 1) * 127.5).round().to(torch.uint8))
        masks.append(b["mask"].to(torch.uint8))
    return {"image": torch.cat(images), "mask": torch.cat(masks)}


def _stack(dataset, indices) -> dict:
    """Samples of a real-data loader (faceedit_nb.data) stacked into a batch (tensors only)."""
    items = [dataset[int(i)] for i in indices]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]
            if isinstance(items[0][k], (torch.Tensor, int))}


def pretrain_parser(cfg: HierarchicalConfig, progress: bool = False, threads: int | None = None) -> dict:
    """Pre-train the parser on labelled faces (:func:`parser_training_set`); returns its state, the loss
    history, the held-out mIoU (:func:`parser_miou`) and the seconds taken."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        parser = build_parser(cfg)
    if cfg.parser_checkpoint:
        parser.load_face_parsing(cfg.parser_checkpoint)
    with torch_threads(threads):
        history = [] if cfg.parser_steps == 0 else train_parser(
            parser, parser_training_set(cfg), cfg.parser_steps, batch_size=cfg.parser_batch,
            lr=cfg.parser_pretrain_lr, seed=cfg.seed, log_every=100 if progress else 0)
        report = parser_miou(parser, cfg.image_size)
    return {"state": {k: v.detach().cpu() for k, v in parser.state_dict().items()}, "history": history,
            "report": report, "seconds": time.perf_counter() - start}


def load_parser(cfg: HierarchicalConfig, cache_dir=None, progress: bool = False,
                threads: int | None = None) -> tuple[nn.Module, dict]:
    """The pre-trained parser of ``cfg`` (trained once, then from the model cache) and its report
    (``miou``, ``parts_miou``, per-class IoU on the SynthFaces test split, ``seconds`` of pre-training)."""
    key = parser_config(cfg)
    result = load_or_train("hier-parser", key, lambda _: pretrain_parser(cfg, progress, threads),
                           cache_dir=cache_dir, verbose=progress)
    parser = build_parser(cfg)
    parser.load_state_dict(result["state"])
    return parser.eval(), {**result["report"], "seconds": float(result["seconds"])}


@torch.no_grad()
def parser_miou(parser: nn.Module, size: int, n: int = 640, seed: int = 0, batch_size: int = 128) -> dict:
    """mIoU of a parser on SynthFaces' test split (people never seen in training), from the confusion matrix
    over all ``n`` faces, averaged over the classes present in the ground truth (as the parser oracle's
    report), plus ``parts_miou``: the IoU of the 4 local parts (and of "none"), the masks the GAN uses."""
    from .oracles import confusion_matrix, iou_from_confusion
    faces = SynthFaces("test", size=size, n=n, seed=seed, n_identities=max(1, n // 8))
    was_training = parser.training
    parser.eval()
    dev = next(parser.parameters()).device
    c = len(L.PARSING_CLASSES)
    conf = torch.zeros(c, c, dtype=torch.long)
    conf_parts = torch.zeros(len(L.LOCAL_PARTS), len(L.LOCAL_PARTS), dtype=torch.long)
    per_face = []
    for lo in range(0, n, batch_size):
        b = faces.batch(torch.arange(lo, min(n, lo + batch_size)))
        pred = parser(b["image"].to(dev)).float().argmax(1).cpu()
        conf += confusion_matrix(pred, b["mask"], c)
        for i in range(len(pred)):
            iou_i, present_i = iou_from_confusion(confusion_matrix(pred[i], b["mask"][i], c))
            per_face.append(float(iou_i[present_i].mean()))
        conf_parts += confusion_matrix(L.map_mask(pred, "local_parts"), L.map_mask(b["mask"], "local_parts"),
                                       len(L.LOCAL_PARTS))
    parser.train(was_training)
    iou, present = iou_from_confusion(conf)
    iou_p, present_p = iou_from_confusion(conf_parts)
    return {"miou": float(iou[present].mean()), "parts_miou": float(iou_p[1:][present_p[1:]].mean()),
            "per_class_iou": {L.PARSING_CLASSES[i]: float(iou[i]) for i in range(c) if present[i]},
            "per_part_iou": {H.PARTS[p]: float(iou_p[p + 1]) for p in range(len(H.PARTS))}, "n_test": n,
            "per_face_miou": per_face, "seed": seed}


def miou_difference(a: dict, b: dict) -> tuple[float, float]:
    """``a["miou"] - b["miou"]`` of two :func:`parser_miou` reports on the same test faces, and its standard
    error from the paired per-face mIoUs (std of the per-face differences / sqrt(n)): the uncertainty that
    the choice of test faces brings, not the spread between training seeds."""
    if (a["n_test"], a.get("seed")) != (b["n_test"], b.get("seed")):
        raise ValueError("the two mIoU reports are on different test faces: measure both with the same n and seed")
    d = torch.tensor(a["per_face_miou"]) - torch.tensor(b["per_face_miou"])
    return a["miou"] - b["miou"], float(d.std() / math.sqrt(len(d)))


# =========================================================================================================
# Training and loading through the engine and the model cache
# =========================================================================================================
class HierarchicalBatches:
    """Training batches of the translation set, served by step number, each face with 68 landmarks.

    SynthFaces (default): rendered into memory once (:class:`faceedit_nb.baselines.SynthFacesBatches`, no
    flips: the rectangular baseline's landmarks would need mirroring too), landmarks from the renderer.
    RaFD / AffectNet (``cfg.dataset``): decoded from ``cfg.data_root`` batch by batch, in the same seeded
    epoch order; AffectNet's landmarks come with it. RaFD has none: give ``parser`` (the pre-trained one)
    and each part's landmarks are placed at the centre of that part in the parser's segmentation, which
    is where the rectangular baseline's boxes then centre. Semantic parts need no landmarks.
    """

    def __init__(self, cfg: HierarchicalConfig, parser: nn.Module | None = None):
        self.cfg, self.parser = cfg, parser
        if cfg.dataset == "synthfaces":
            self.base = SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                                          flip=False, seed=cfg.seed, data_seed=cfg.data_seed, background=cfg.background)
            ds = self.base.dataset
            self.landmarks = torch.cat([ds.batch(torch.arange(lo, min(len(ds), lo + 256)))["landmarks"]
                                        for lo in range(0, len(ds), 256)])
            self.n = self.base.n
            return
        from .data import AffectNet, RaFD
        self.dataset = {"rafd": RaFD, "affectnet": AffectNet}[cfg.dataset](cfg.data_root, "train", size=cfg.image_size)
        self.n = len(self.dataset)
        if cfg.batch_size > self.n:
            raise ValueError(f"batch_size {cfg.batch_size} exceeds the {self.n} training faces under {cfg.data_root}")

    def get(self, indices: torch.Tensor) -> dict:
        if self.cfg.dataset == "synthfaces":
            out = self.base.get(indices)
            out["landmarks"] = self.landmarks[indices]
            return out
        out = _stack(self.dataset, indices)
        out["index"] = indices
        if "landmarks" not in out and self.parser is not None:
            out["landmarks"] = part_centre_landmarks(self.parser, out["image"])
        return out

    def __call__(self, step: int) -> dict:
        if self.cfg.dataset == "synthfaces":
            out = self.base(step)
            out["landmarks"] = self.landmarks[out["index"]]
            return out
        return self.get(epoch_indices(step, self.cfg.batch_size, self.n, self.cfg.seed))


@torch.no_grad()
def part_centre_landmarks(parser: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """68 stand-in landmarks (B, 68, 2) for faces without any: every landmark of a part's group
    (:data:`faceedit_nb.nets.hierarchical.PART_LANDMARKS`) sits at the centre of mass of that part in the
    parser's segmentation (pixel units), so that :func:`~faceedit_nb.nets.hierarchical.rectangular_boxes`
    centres its boxes there; a part the parser does not find is placed at the image centre."""
    was_training = parser.training
    parser.eval()
    dev = next(parser.parameters()).device
    masks = H.hard_part_masks(parser(images.to(dev)).float().argmax(1)).cpu()  # (B, 4, H, W)
    parser.train(was_training)
    B, _, S_, _ = masks.shape
    ys, xs = torch.meshgrid(torch.arange(S_, dtype=torch.float32), torch.arange(S_, dtype=torch.float32), indexing="ij")
    area = masks.sum((2, 3))
    cx = torch.where(area > 0, (masks * xs).sum((2, 3)) / area.clamp(min=1), torch.full_like(area, (S_ - 1) / 2))
    cy = torch.where(area > 0, (masks * ys).sum((2, 3)) / area.clamp(min=1), torch.full_like(area, (S_ - 1) / 2))
    out = torch.zeros(B, 68, 2)
    for p, idx in enumerate(H.PART_LANDMARKS):
        out[:, list(idx), 0] = cx[:, p, None]
        out[:, list(idx), 1] = cy[:, p, None]
    return out


def build_hierarchical(cfg: HierarchicalConfig, parser_state: dict | None = None,
                       global_nets: dict | None = None) -> HierarchicalGAN:
    """The networks of ``cfg``, initialised from ``cfg.seed``; ``parser_state``: pre-trained parser weights;
    ``global_nets``: the StarGAN ``{"G", "D"}`` whose weights the global branch starts from (``global_from``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = HierarchicalGAN(cfg)
    if parser_state is not None:
        if model.parser is None:
            raise ValueError("the rectangular baseline has no parser to load weights into")
        model.parser.load_state_dict(parser_state)
    if global_nets is not None:
        if not cfg.global_from:
            raise ValueError("global_nets given, but the config trains its global generator from scratch: "
                             "set global_from to the StarGAN's profile")
        model.G_global.load_state_dict(global_nets["G"].state_dict())
        model.D_global.load_state_dict(global_nets["D"].state_dict())
        model.D_fusion.load_state_dict(global_nets["D"].state_dict())
    return model


def load_global_stargan(cfg: HierarchicalConfig, progress: bool = False, cache_dir=None,
                        threads: int | None = None):
    """The baselines chapter's StarGAN that the global branch starts from (``cfg.global_from``), from the
    model cache (trained now if missing); None when the global generator trains from scratch."""
    sg = cfg.global_stargan()
    if sg is None:
        return None
    from .baselines import load_stargan
    return load_stargan(sg, progress=progress, cache_dir=cache_dir, threads=threads)


def hierarchical_optimizers(cfg: HierarchicalConfig, model: HierarchicalGAN) -> dict:
    """Adam (β = 0.5, 0.999) over :func:`parameter_groups`; the fused kernel (same update, faster on CPU)."""
    return {k: torch.optim.Adam(groups, betas=(0.5, 0.999), fused=True)
            for k, groups in parameter_groups(model).items()}


class HierarchicalEditor:
    """``editor(images, source_expression, target_expression)`` for the evaluation harness: the fusion
    output x_t of Fig. 2. The rectangular baseline crops around landmarks, which the editor reads from
    ``dataset`` by sample index (SynthFaces' ground truth; the harness passes ``indices``)."""

    def __init__(self, model: HierarchicalGAN, dataset=None):
        self.model, self.dataset = model.eval(), dataset
        self.wants_indices = model.cfg.parts == "rectangular"
        if self.wants_indices and dataset is None:
            raise ValueError("the rectangular baseline needs landmarks: pass the data set being edited "
                             "(hierarchical_editor(model, dataset))")

    def __call__(self, images, source, target, indices=None):
        c = F.one_hot(target.long(), self.model.cfg.c_dim).float().to(images.device)
        landmarks = None
        if self.wants_indices:
            landmarks = self.dataset.batch(torch.as_tensor(indices).cpu())["landmarks"].to(images.device)
        return self.model.translate(images, c, landmarks=landmarks)["out"]

    def __repr__(self) -> str:
        cfg = self.model.cfg
        return f"HierarchicalEditor(parts={cfg.parts!r}, end_to_end={cfg.end_to_end}, exclude={cfg.exclude})"


def hierarchical_editor(model: HierarchicalGAN, dataset=None) -> HierarchicalEditor:
    return HierarchicalEditor(model, dataset)


def train_hierarchical(cfg: HierarchicalConfig, run_dir=None, progress: bool = True, resume: bool = True,
                       threads: int | None = None, n_samples: int = 8, cache_dir=None) -> Trainer:
    """Train the hierarchical GAN with the engine (a resumable run in ``run_dir``). Semantic parts start
    from the pre-trained parser of :func:`load_parser` (frozen, or updated by Eq. 9 when end-to-end)."""
    parser_state = None
    if cfg.parts == "semantic":
        parser_state = load_parser(cfg, cache_dir=cache_dir, progress=progress, threads=threads)[0].state_dict()
    stargan_global = load_global_stargan(cfg, progress=progress, cache_dir=cache_dir, threads=threads)
    model = build_hierarchical(cfg, parser_state, stargan_global.nets if stargan_global is not None else None)
    opts = hierarchical_optimizers(cfg, model)
    data = HierarchicalBatches(cfg, parser=load_parser(cfg, cache_dir=cache_dir, threads=threads)[0]
                               if cfg.dataset == "rafd" and cfg.parts == "rectangular" else None)
    fixed = data.get(torch.arange(min(n_samples, data.n)))
    run_dir = run_dir if run_dir is not None else run_dir_for("hierarchical", cfg.cache_key())

    def samples(step):
        model.eval()
        dev = next(model.parameters()).device
        x, lm = fixed["image"].to(dev), fixed["landmarks"].to(dev)
        eye = torch.eye(cfg.c_dim, device=dev)
        return [x] + [model.translate(x, eye[k].expand(len(x), -1), landmarks=lm)["out"] for k in range(cfg.c_dim)]

    return run_baseline("hierarchical", cfg, {"model": model}, opts, None, hierarchical_step, data, samples, cfg.steps,
                        run_dir, progress, resume, threads)


def load_hierarchical(cfg: HierarchicalConfig, outdir=None, progress: bool = True, cache_dir=None,
                      threads: int | None = None) -> Trained:
    """The hierarchical GAN trained with ``cfg``: from the model cache, or trained now (resuming an
    interrupted run). ``nets["model"]`` is the :class:`HierarchicalGAN` (eval mode), ``editor`` its
    :class:`HierarchicalEditor` (semantic parts; the rectangular baseline needs
    ``hierarchical_editor(model, dataset)``), ``stats`` the training log."""
    def train_fn(_key):
        return train_hierarchical(cfg, run_dir=run_dir_for("hierarchical", cfg.cache_key(), outdir),
                                  progress=progress, threads=threads, cache_dir=cache_dir).export()

    state = load_or_train("hierarchical", cfg.cache_key(), train_fn, cache_dir=cache_dir)
    model = build_hierarchical(cfg)
    model.load_state_dict(state["models"]["model"])
    model.eval()
    editor = hierarchical_editor(model) if cfg.parts == "semantic" else None
    return Trained({"model": model}, {}, state.get("stats", []), cfg, editor)



def _pretrain_in_worker(cfg: HierarchicalConfig, cache_dir, threads: int | None) -> float:
    return load_parser(cfg, cache_dir=cache_dir, threads=threads)[1]["seconds"]


def _train_in_worker(cfg: HierarchicalConfig, outdir, cache_dir, threads: int | None) -> float:
    return load_hierarchical(cfg, outdir=outdir, progress=False, cache_dir=cache_dir, threads=threads).train_seconds


def train_all(configs, workers: int = 1, outdir=None, cache_dir=None, threads: int | None = 1,
              progress: bool = True) -> dict:
    """Make sure every config in ``configs`` (a dict name -> config, or a list) is in the model cache,
    training the missing ones ``workers`` at a time, each in its own process with ``threads`` torch threads
    (the runs are independent, so the weights are those of :func:`load_hierarchical`). What several configs
    share is made first, once: the global StarGANs (in this process) and the missing pre-trained parsers
    (in the pool). Returns the number of models cached before and trained."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    items = list(configs.values()) if isinstance(configs, dict) else list(configs)
    missing = []
    for c in items:
        if not is_cached("hierarchical", c.cache_key(), cache_dir) and c not in missing:
            missing.append(c)
    stargans, parsers = {}, {}  # the distinct global StarGANs and missing parsers the missing models start from
    for c in missing:
        if c.global_from:
            stargans.setdefault(config_hash(c.global_stargan()), c)
        if c.parts == "semantic" and not is_cached("hier-parser", parser_config(c), cache_dir):
            parsers.setdefault(config_hash(parser_config(c)), c)
    for c in stargans.values():
        load_global_stargan(c, progress=progress, cache_dir=cache_dir, threads=threads)

    def in_pool(fn, configs, *args):
        if workers <= 1 or len(configs) <= 1:
            return [fn(c, *args) for c in configs]
        with ProcessPoolExecutor(min(workers, len(configs)), mp_context=multiprocessing.get_context("spawn")) as ex:
            return list(ex.map(fn, configs, *[[a] * len(configs) for a in args]))

    if progress and missing:
        print(f"training {len(missing)} of {len(items)} models ({len(items) - len(missing)} cached) and "
              f"{len(parsers)} parsers, {workers} at a time")
    in_pool(_pretrain_in_worker, list(parsers.values()), cache_dir, threads)
    in_pool(_train_in_worker, missing, outdir, cache_dir, threads)
    return {"cached": len(items) - len(missing), "trained": len(missing)}


# =========================================================================================================
# The models of the series (one place, so that every chapter asks the cache for the same configs)
# =========================================================================================================
SERIES = ("rectangular", "ours w/o end-to-end", "ours w/ end-to-end")


def series_configs(profile: str, seed: int = 0, **overrides) -> dict[str, HierarchicalConfig]:
    """The three hierarchical models of Table 1 at a profile: the rectangular baseline (landmark boxes, no
    parser), ours with the pre-trained parser frozen, ours trained end to end (Eq. 9)."""
    base = config_for(profile, seed=seed, **overrides)
    return {"rectangular": base.replace(parts="rectangular", end_to_end=False),
            "ours w/o end-to-end": base.replace(end_to_end=False),
            "ours w/ end-to-end": base.replace(end_to_end=True)}


# =========================================================================================================
# Verdicts: the paper's claims against our figures
# =========================================================================================================
def rate_difference(p1: float, n1: int, p2: float, n2: int) -> tuple[float, float]:
    """``p1 - p2`` of two rates (e.g. EEA) measured on ``n1`` and ``n2`` edits, and its standard error as
    for independent binomial samples. Optimistic for edits of the same faces (they are correlated), and
    blind to the spread between training seeds: a floor on the uncertainty, not the whole of it."""
    if n1 < 1 or n2 < 1:
        raise ValueError(f"need at least one edit on each side; got n1={n1}, n2={n2}")
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2, se


def verdict(difference: float, se: float | None = None, better: str = "higher", z: float = 2.0) -> str:
    """The book's verdict on a claim "A is better than B" from ``difference = A - B``: ``reproduced`` when
    the difference points the claimed way by more than ``z`` standard errors (by any amount when ``se`` is
    None, e.g. FID, which has no error bar here), else ``not reproduced``, with the reason."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower'; got {better!r}")
    if not math.isfinite(difference):
        return "not testable here"
    signed = difference if better == "higher" else -difference
    margin = 0.0 if se is None else z * se
    if signed > margin:
        return "reproduced"
    if se is not None and signed < -margin:
        return "not reproduced (reversed)"
    if se is not None:
        return f"not reproduced (within ±{z:g} SE)"
    return "not reproduced"
