"""Training LSSL: the frozen parser P (pre-trained once per resolution and cached), the networks, one iteration
(:func:`lssl_step`: Eq. 7's critic step, then its generator step every ``n_critic``), the editor, and training /
loading through the engine and the model cache, several models at a time (:func:`load_series`)."""
from __future__ import annotations

import time
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ... import labels as L
from ...cache import config_hash, load_or_train
from ...data.synthfaces import SynthFaces
from ...device import torch_threads
from ...distributed import shuffled
from ...methods import Trained, adam, critic_real_fake, frozen, load_all, load_method, run_method, seeded
from ...metrics import confusion_matrix, iou_from_confusion
from ...nets.parsing import train_parser
from ...train import Trainer, linear_decay
from .config import LSSLConfig, parser_config
from .data import LSSLBatches
from .losses import (adversarial_loss_d, adversarial_loss_g, bidirectional_loss, classification_loss_fake,
                     classification_loss_real, discriminator_loss, generator_loss, gradient_penalty_loss,
                     identity_loss, parsing_loss)
from .model import N_PARTS, DepthwiseUNet, build_critic, build_generator, landmark_heatmap

__all__ = ["build_parser", "pretrain_parser", "load_parser", "parser_miou", "build_lssl", "lssl_optimizers",
           "critic_input", "lssl_step", "LSSLEditor", "lssl_editor", "refine", "train_lssl", "load_lssl",
           "load_series"]


# --- the parser P -----------------------------------------------------------------------------------------
def build_parser(cfg: LSSLConfig) -> DepthwiseUNet:
    return seeded(cfg.seed, lambda: {"P": DepthwiseUNet(cfg.parser_width)})["P"]


def pretrain_parser(cfg: LSSLConfig, progress: bool = False, threads: int | None = None) -> dict:
    """Train P on ``parser_masks`` SynthFaces faces of other people (seed ``parser_data_seed``), their masks in
    LSSL's classes (other, lips, eyes, skin); its state, losses, held-out mIoU and seconds."""
    start = time.perf_counter()
    faces = SynthFaces("train", size=cfg.image_size, n=cfg.parser_masks, seed=cfg.parser_data_seed,
                       n_identities=max(1, cfg.parser_masks // 8))
    images, masks = [], []
    for lo in range(0, faces.n, 256):
        b = faces.batch(torch.arange(lo, min(faces.n, lo + 256)))
        images.append(((b["image"] + 1) * 127.5).round().to(torch.uint8))
        masks.append(L.map_mask(b["mask"], "lssl").to(torch.uint8))
    parser = build_parser(cfg)
    with torch_threads(threads):
        # LSSL's classes are symmetric, so train_parser's left/right swap of a flipped mask leaves them as they are
        history = train_parser(parser, {"image": torch.cat(images), "mask": torch.cat(masks)}, cfg.parser_steps,
                               batch_size=min(32, cfg.parser_masks), lr=5e-3, seed=cfg.seed,
                               log_every=100 if progress else 0, task=f"lssl-parser-{config_hash(parser_config(cfg))}")
        report = parser_miou(parser, cfg.image_size)
    return {"state": {k: v.detach().cpu() for k, v in parser.state_dict().items()}, "history": history,
            "report": report, "seconds": time.perf_counter() - start}


def load_parser(cfg: LSSLConfig, cache_dir=None, progress: bool = False, threads: int | None = None):
    """P for ``cfg`` (trained once per parser config, then from the cache), frozen, and its report
    (``miou``, ``per_class_iou``, ``seconds``, ``history``)."""
    result = load_or_train("lssl-parser", parser_config(cfg), lambda _: pretrain_parser(cfg, progress, threads),
                           cache_dir=cache_dir, verbose=progress)
    parser = build_parser(cfg)
    parser.load_state_dict(result["state"])
    parser.requires_grad_(False)
    return parser.eval(), {**result["report"], "seconds": float(result["seconds"]), "history": result["history"]}


@torch.no_grad()
def parser_miou(parser: nn.Module, size: int, n: int = 320, batch_size: int = 64) -> dict:
    """P's IoU per class (other, lips, eyes, skin) and their mean on SynthFaces' test people."""
    faces = SynthFaces("test", size=size, n=n, n_identities=max(1, n // 8))
    was = parser.training
    parser.eval()
    conf = torch.zeros(N_PARTS, N_PARTS, dtype=torch.long)
    for lo in range(0, n, batch_size):
        b = faces.batch(torch.arange(lo, min(n, lo + batch_size)))
        conf += confusion_matrix(parser(b["image"]).argmax(1), L.map_mask(b["mask"], "lssl"), N_PARTS)
    parser.train(was)
    iou, present = iou_from_confusion(conf)
    return {"miou": float(iou[present].mean()), "n_test": n,
            "per_class_iou": {L.LSSL_CLASSES[i]: float(iou[i]) for i in range(N_PARTS) if present[i]}}


# --- the networks and one iteration -----------------------------------------------------------------------
def build_lssl(cfg: LSSLConfig) -> dict[str, nn.Module]:
    """``G`` (G_enc and G_dec, :class:`.model.LSSLGenerator`) and ``D`` (:func:`.model.build_critic`), seeded."""
    return seeded(cfg.seed, lambda: {"G": build_generator(cfg), "D": build_critic(cfg)})


def lssl_optimizers(cfg: LSSLConfig, nets: dict) -> dict:
    """Adam for G (encoder and decoder) and for D (Sec. 4)."""
    return {"G": adam(nets["G"], cfg.g_lr, cfg.beta1, cfg.beta2), "D": adam(nets["D"], cfg.d_lr, cfg.beta1, cfg.beta2)}


def critic_input(cfg: LSSLConfig, image: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
    """What the critic judges: the (image, side image) pair in synthesis with a side input, else the image."""
    return torch.cat([image, side], 1) if cfg.side_input and cfg.task == "synthesis" else image


def _one_hot(labels: torch.Tensor, cfg: LSSLConfig) -> torch.Tensor:
    return F.one_hot(labels.long(), cfg.c_dim).float()


def lssl_step(tr: Trainer, cfg: LSSLConfig, batch: dict, i: int, *, parser: nn.Module | None = None) -> dict:
    """One iteration: the critic on Eq. 7 (bottom) and, every ``n_critic`` iterations, the generator on Eq. 7
    (top). Synthesis: targets are a permutation of the batch's classes. Pose normalisation: no label enters G,
    the critic's real faces are photo profiles (``batch["real"]``) and the class head keeps the input's
    expression."""
    D = tr.models["D"]
    pose = cfg.task == "pose_normalisation"
    x, s = batch["image"], batch["side"]
    y_src = _one_hot(batch["label"], cfg)
    real = critic_input(cfg, x, s) if not pose else batch["real"]
    y_real = y_src if not pose else _one_hot(batch["real_label"], cfg)
    if i < cfg.d_warmup:  # cpu recipe: the critic's class head alone on real faces, L_cls^r
        d_cls = classification_loss_real(D(real)[1], y_real)
        tr.update("D", cfg.lambda_cls * d_cls, {"D/cls": d_cls})
        return {"D/cls": d_cls}
    y_trg = shuffled(y_src) if not pose else y_src
    c_trg = y_trg if cfg.condition_dim else None

    # Critic, Eq. 7: L_D = -E D_src(x, s) + E D_src(x', s') + λ_gp L_gp + λ_cls L_cls^r
    with torch.no_grad():
        out = tr.models["G"](x, s, c_trg)
    fake = critic_input(cfg, out["image"], out["side"])
    (real_src, real_cls), (fake_src, _) = critic_real_fake(D, real, fake)
    d_real, d_fake = adversarial_loss_d(real_src, fake_src)
    d_cls = classification_loss_real(real_cls, y_real)
    d_gp = gradient_penalty_loss(D, real, fake)
    log = {"D/real": d_real, "D/fake": d_fake, "D/cls": d_cls, "D/gp": d_gp}
    tr.update("D", discriminator_loss(d_real, d_fake, d_cls, d_gp, lambda_cls=cfg.lambda_cls,
                                      lambda_gp=cfg.lambda_gp), log)
    if (i + 1) % cfg.n_critic == 0:
        log.update(_generator_step(tr, cfg, x, s, y_src, y_trg, parser))
    return log


def _generator_step(tr: Trainer, cfg: LSSLConfig, x, s, y_src, y_trg, parser) -> dict:
    """Eq. 7 (top): L_G = L_GAN + λ_bi L_bi + λ_cls L_cls^f + λ_id L_id + λ_p L_p."""
    G, D = tr.models["G"], tr.models["D"]
    zero = x.new_zeros((), dtype=torch.float32)
    with frozen(D):
        out = G(x, s, y_trg if cfg.condition_dim else None)                      # x', s' = G_dec(G_enc(x, s), y)
        fake_src, fake_cls = D(critic_input(cfg, out["image"], out["side"]))
        g_adv = adversarial_loss_g(fake_src)                                         # Eq. 1
        g_cls = classification_loss_fake(fake_cls, y_trg)                            # Eq. 3
        g_id = identity_loss(out["image"], x)                                        # Eq. 4
        g_p = parsing_loss(parser, out["image"], x) if cfg.lambda_p else zero        # Eq. 5
        latent = out["latent"].detach() if cfg.latent_target == "detached" else out["latent"]  # G_enc(x, s)
        if not cfg.lambda_bi:
            g_bi = g_bi_img = g_bi_side = g_bi_lat = zero
        elif cfg.task == "synthesis":                                                # Eq. 6
            back = G(out["image"], out["side"], y_src)                         # x̂, ŝ = G_dec(G_enc(x', s'), y')
            g_bi, g_bi_img, g_bi_side, g_bi_lat = bidirectional_loss(x, back["image"], s, back["side"],
                                                                     latent, back["latent"])
        else:  # pose normalisation: the latent half (no target domain to cycle through)
            g_bi, g_bi_img, g_bi_side, g_bi_lat = bidirectional_loss(x, None, None, None, latent,
                                                                     G.enc(out["image"], s))
        g_log = {"G/adv": g_adv, "G/cls": g_cls, "G/id": g_id, "G/parsing": g_p, "G/bi": g_bi,
                 "G/bi_image": g_bi_img, "G/bi_side": g_bi_side, "G/bi_latent": g_bi_lat}
        tr.update("G", generator_loss(adversarial=g_adv, classification=g_cls, bidirectional=g_bi, identity=g_id,
                                      parsing=g_p, lambda_bi=cfg.lambda_bi, lambda_cls=cfg.lambda_cls,
                                      lambda_id=cfg.lambda_id, lambda_p=cfg.lambda_p), g_log)
    return g_log


# --- editing ----------------------------------------------------------------------------------------------
class LSSLEditor:
    """``editor(images, source, target)`` for the evaluation harness: class indices of the model's attribute.
    With a side input the editor needs each input face's landmarks: :meth:`bind` a SynthFaces data set (its
    landmarks rendered once) and the harness passes the faces' indices (``wants_indices``), or pass
    ``landmarks=`` (B x 68 x 2) directly."""

    def __init__(self, G: nn.Module, cfg: LSSLConfig, landmarks: torch.Tensor | None = None):
        self.G, self.cfg, self.landmarks = G, cfg, landmarks
        self.wants_indices = cfg.side_input

    def bind(self, dataset) -> "LSSLEditor":
        """This editor reading the side images of ``dataset``'s faces (by the indices the harness passes)."""
        pts = torch.cat([dataset.batch(torch.arange(lo, min(len(dataset), lo + 256)))["landmarks"]
                         for lo in range(0, len(dataset), 256)]) if self.cfg.side_input else None
        return LSSLEditor(self.G, self.cfg, pts)

    def side(self, images: torch.Tensor, indices=None, landmarks=None) -> torch.Tensor | None:
        if not self.cfg.side_input:
            return None
        if landmarks is None:
            if self.landmarks is None or indices is None:
                raise ValueError("LSSL with a side input edits a face from its landmarks: bind the editor to the "
                                 "data set (editor.bind(dataset)) or pass landmarks=")
            landmarks = self.landmarks[torch.as_tensor(indices).cpu()]
        return landmark_heatmap(landmarks, images.shape[-1], self.cfg.sigma_pixels).to(images.device, images.dtype)

    @torch.no_grad()
    def __call__(self, images, source, target, indices=None, landmarks=None) -> torch.Tensor:
        y = _one_hot(torch.as_tensor(target).to(images.device), self.cfg).to(images.dtype)
        return self.G(images, self.side(images, indices, landmarks), y if self.cfg.condition_dim else None)["image"]


def lssl_editor(G: nn.Module, cfg: LSSLConfig) -> LSSLEditor:
    return LSSLEditor(G, cfg)


@torch.no_grad()
def refine(G: nn.Module, cfg: LSSLConfig, simulated: torch.Tensor, profile: torch.Tensor,
           batch_size: int = 256) -> torch.Tensor:
    """Pose normalisation (Fig. 3b): the realistic frontal faces of ``simulated`` frontal renders, with the
    ``profile`` photos as side images (ignored by a model without side input, such as SimGAN's refiner)."""
    if cfg.task != "pose_normalisation":
        raise ValueError("refine needs a pose-normalisation model (task='pose_normalisation')")
    dev = next(G.parameters()).device
    out = [G(simulated[lo:lo + batch_size].to(dev),
             profile[lo:lo + batch_size].to(dev) if cfg.side_input else None)["image"].cpu()
           for lo in range(0, len(simulated), batch_size)]
    return torch.cat(out)


# --- training and loading ---------------------------------------------------------------------------------
def train_lssl(cfg: LSSLConfig, run_dir=None, progress: bool = True, resume: bool = True, n_samples: int = 8,
               threads: int | None = None, cache_dir=None) -> Trainer:
    """Train LSSL (or an ablation, a pose or lighting model, a refiner) with the engine (a resumable run)."""
    data = LSSLBatches(cfg)
    nets = build_lssl(cfg)
    opts = lssl_optimizers(cfg, nets)
    parser = load_parser(cfg, cache_dir=cache_dir, threads=threads)[0] if cfg.lambda_p else None
    fixed = data.get(torch.arange(min(n_samples, data.n)))

    def samples(step):
        G = nets["G"].eval()
        x = fixed["image"].to(next(G.parameters()).device)
        s = None if fixed["side"] is None else fixed["side"].to(x.device)
        if cfg.task == "pose_normalisation":
            return [x, fixed["side"] if fixed["side"] is not None else x, G(x, s)["image"]]
        return [x] + [G(x, s, _one_hot(torch.full((len(x),), k), cfg).to(x.device))["image"] for k in range(cfg.c_dim)]

    schedule = linear_decay(cfg.num_iters, cfg.num_iters_decay, cfg.lr_update_step, cfg.official_lr_decay)
    return run_method("lssl", cfg, partial(lssl_step, parser=parser), nets=nets, opts=opts, schedule=schedule,
                      data=data, samples=samples, total_steps=cfg.num_iters, run_dir=run_dir, progress=progress,
                      resume=resume, threads=threads)


def load_lssl(cfg: LSSLConfig, outdir=None, progress: bool = True, cache_dir=None,
              threads: int | None = None) -> Trained:
    """The model trained with ``cfg``: from the model cache, or trained now (resuming an interrupted run)."""
    train = partial(train_lssl, cache_dir=cache_dir)
    return load_method("lssl", cfg, build=build_lssl, train=train, editor=lssl_editor, outdir=outdir,
                       progress=progress, cache_dir=cache_dir, threads=threads)


def load_series(configs: dict[str, LSSLConfig], *, workers: int = 1, progress: bool = False, cache_dir=None,
                threads: int | None = 1) -> dict[str, Trained]:
    """Every model of ``configs``, ``workers`` trainings at a time in their own processes (bit-identical to one
    by one; the parser is trained first, once), then all loaded from the cache
    (:func:`~faceedit_nb.methods.load_all`)."""
    for cfg in {config_hash(parser_config(c)): c for c in configs.values() if c.lambda_p}.values():
        load_parser(cfg, cache_dir=cache_dir, threads=threads)
    return load_all(load_lssl, configs, workers=workers, progress=progress, cache_dir=cache_dir, threads=threads)
