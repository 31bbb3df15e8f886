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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import labels as L
from . import losses
from .baselines import frozen
from .config import Profiles
from .nets import hierarchical as H
from .nets import stargan
from .train import Trainer


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
    lr: float = 1e-4               # Adam, betas (0.5, 0.999), for every network
    parser_lr: float = 1e-4        # the λ_p step of Eq. 9
    steps: int = 200_000
    seed: int = 0
    version: int = 1               # bump when the training code changes results

    _CPU = dict(image_size=64, part_size=32, g_conv_dim=16, g_repeat=3, d_conv_dim=16, fusion_dim=16,
                parser="unet", parser_width=16, batch_size=16, steps=1500)
    _SMOKE = dict(image_size=32, part_size=16, g_conv_dim=8, g_repeat=1, d_conv_dim=8, fusion_dim=8,
                  parser="unet", parser_width=8, batch_size=4, steps=4, n_critic=2)

    def __post_init__(self):
        if self.parser not in ("bisenet", "unet"):
            raise ValueError(f"parser must be 'bisenet' or 'unet'; got {self.parser!r}")
        if self.parts not in ("semantic", "rectangular"):
            raise ValueError(f"parts must be 'semantic' or 'rectangular'; got {self.parts!r}")
        unknown = set(self.exclude) - set(H.PARTS)
        if unknown:
            raise ValueError(f"unknown parts in exclude: {sorted(unknown)}; choose from {H.PARTS}")
        self.box_size = tuple(self.box_size)
        self.exclude = tuple(self.exclude)

    @property
    def active_parts(self) -> tuple[int, ...]:
        return tuple(i for i, p in enumerate(H.PARTS) if p not in self.exclude)


def build_parser(cfg: HierarchicalConfig) -> nn.Module:
    from .nets import parsing
    if cfg.parser == "bisenet":
        return parsing.BiSeNet()
    return parsing.UNet(base=cfg.parser_width)


class HierarchicalGAN(nn.Module):
    """Parser, global / local / fusion generators and their six discriminators (Fig. 2)."""

    def __init__(self, cfg: HierarchicalConfig, parser: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        g = lambda: stargan.Generator(cfg.g_conv_dim, cfg.c_dim, cfg.g_repeat)  # noqa: E731
        self.G_global = g()
        self.G_parts = nn.ModuleList([g() for _ in H.PARTS])
        self.fusion = H.FusionNetwork(cfg.fusion_dim)
        def d(size):
            return stargan.Discriminator(size, cfg.d_conv_dim, cfg.c_dim,
                                         min(cfg.d_repeat, stargan.default_d_repeat(size)))

        self.D_global, self.D_fusion = d(cfg.image_size), d(cfg.image_size)
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
        return [self.G_global, *self.G_parts, self.fusion]

    def discriminator_modules(self) -> list[nn.Module]:
        return [self.D_global, *self.D_parts, self.D_fusion]


# --- losses of one iteration (Eq. 5-8, with StarGAN's WGAN-GP) ------------------------------------------

def _branches(model: HierarchicalGAN, real: dict, fake: dict):
    """(name, weight λ_p, discriminator, real input, fake output) of every branch of Eq. 8."""
    cfg = model.cfg
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
    rec_of = {"global": (recon["global"], real["image"]), "fusion": (recon["out"], real["image"])}
    for p in cfg.active_parts:
        rec_of[H.PARTS[p]] = (recon["parts"][:, p], real["parts"][:, p])
    terms, total = {}, 0.0
    for name, lam, D, _, x_fake in _branches(model, real, fake):
        out_fake, cls_fake = D(x_fake)
        loss = (losses.wgan_generator_loss(out_fake) + cfg.lambda_cls * losses.expression_ce(cls_fake, label_trg)
                + cfg.lambda_rec * losses.l1(*rec_of[name]))
        terms[f"G/{name}"] = loss.detach()
        total = total + lam * loss
    return {"loss": total, **terms}


def real_inputs(images: torch.Tensor, fake: dict) -> dict:
    """What the discriminators see as real: the image, and its parts cut exactly as for the fakes."""
    return {"image": images, "parts": fake["parts_in"]}


def parameter_groups(model: HierarchicalGAN) -> dict[str, list[dict]]:
    """Adam parameter groups: generators (+ the parser when end-to-end, Eq. 9) and discriminators."""
    cfg = model.cfg
    g = [{"params": [p for m in model.generator_modules() for p in m.parameters()], "lr": cfg.lr}]
    if cfg.end_to_end and model.parser is not None:
        g.append({"params": list(model.parser.parameters()), "lr": cfg.parser_lr})
    d = [{"params": [p for m in model.discriminator_modules() for p in m.parameters()], "lr": cfg.lr}]
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
            g = generator_loss(model, real_inputs(x, fake), fake, model.reconstruct(fake, c_src), label_trg)
            g_log = {k: v for k, v in g.items() if k != "loss"}
            tr.update("G", g["loss"], g_log)
        log.update(g_log)
    return log


def config_for(profile: str, **overrides) -> HierarchicalConfig:
    """The paper's settings (``paper``), scaled down for a CPU (``cpu``) or a smoke test (``smoke``)."""
    return HierarchicalConfig.profile(profile, **overrides)
