"""Training SeCGAN: the frozen parser P (pre-trained once per resolution and cached), one iteration of
Algorithm 1 (:func:`secgan_step`), the translation batches (SynthFaces or a real data set), and training /
loading through the engine and the model cache (:func:`load_secgan`, several at a time: :func:`train_all`)."""
from __future__ import annotations

import contextlib
import time

import torch
from torch import nn

from ... import labels as L
from ...cache import config_hash, is_cached, load_or_train
from ...data.synthfaces import SynthFaces
from ...device import torch_threads
from ...distributed import shuffled
from ...methods import SynthFacesBatches, Trained, adam, frozen, load_method, run_method, train_in_pool
from ...metrics import confusion_matrix, iou_from_confusion
from ...nets.parsing import train_parser
from ...train import Trainer, epoch_indices, linear_decay
from .config import SeCGANStarGANConfig, parser_config
from .losses import discriminator_loss_rgb, discriminator_loss_seg, generator_loss_rgb, generator_loss_seg
from .model import N_SEGMENTS, backbone_of, build_parser, build_secgan, secgan_editor, segment_probabilities

__all__ = ["method_name", "parser_training_set", "pretrain_parser", "load_parser", "parser_miou", "SeCGANBatches",
           "secgan_optimizers", "secgan_schedule", "exponential_decay", "secgan_step", "train_secgan", "load_secgan",
           "train_all"]


def method_name(cfg) -> str:
    """The cache and run name of a config: ``secgan-stargan`` or ``secgan-attgan``."""
    return "secgan-stargan" if isinstance(cfg, SeCGANStarGANConfig) else "secgan-attgan"


# --- the parser P ---------------------------------------------------------------------------------------
def _stack(dataset, indices) -> dict:
    """Samples of a real-data loader (faceedit_nb.data) stacked into a batch (tensors only)."""
    items = [dataset[int(i)] for i in indices]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]
            if isinstance(items[0][k], (torch.Tensor, int, float))}


def parser_training_set(cfg) -> dict:
    """P's labelled faces: a seeded ``parser_fraction`` of ``parser_masks`` SynthFaces faces (other people than
    the GAN's: seed ``parser_data_seed``), or of CelebAMask-HQ's train split under ``parser_data_root`` (the
    paper's), as uint8 images and 19-class masks. Smaller fractions are subsets of larger ones."""
    if cfg.parser_data_root:
        from ...data import CelebAMaskHQ
        faces = CelebAMaskHQ(cfg.parser_data_root, "train", size=cfg.image_size)
        n_all = min(cfg.parser_masks, len(faces))
        get = lambda idx: _stack(faces, idx)  # noqa: E731
    else:
        n_all = cfg.parser_masks
        faces = SynthFaces("train", size=cfg.image_size, n=n_all, seed=cfg.parser_data_seed,
                           n_identities=max(1, n_all // 8))
        get = faces.batch
    n = max(min(cfg.parser_batch, n_all), round(n_all * cfg.parser_fraction))
    order = torch.randperm(n_all, generator=torch.Generator().manual_seed(cfg.parser_data_seed))[:n].sort().values
    images, masks = [], []
    for lo in range(0, n, 256):
        b = get(order[lo:lo + 256])
        images.append(((b["image"] + 1) * 127.5).round().to(torch.uint8))
        masks.append(b["mask"].to(torch.uint8))
    return {"image": torch.cat(images), "mask": torch.cat(masks)}


def pretrain_parser(cfg, progress: bool = False, threads: int | None = None) -> dict:
    """Pre-train P's 19-class UNet (:func:`faceedit_nb.nets.parsing.train_parser`); its state, losses, its
    12-segment mIoU on held-out faces (:func:`parser_miou`) and the seconds taken."""
    start = time.perf_counter()
    parser = build_parser(cfg)
    with torch_threads(threads):
        history = train_parser(parser, parser_training_set(cfg), cfg.parser_steps, batch_size=cfg.parser_batch,
                               lr=cfg.parser_lr, seed=cfg.seed, log_every=100 if progress else 0,
                               task=f"secgan-parser-{config_hash(parser_config(cfg))}")
        report = parser_miou(parser, cfg.image_size, data_root=cfg.parser_data_root)
    return {"state": {k: v.detach().cpu() for k, v in parser.state_dict().items()}, "history": history,
            "report": report, "seconds": time.perf_counter() - start}


def load_parser(cfg, cache_dir=None, progress: bool = False, threads: int | None = None) -> tuple[nn.Module, dict]:
    """P's pre-trained UNet for ``cfg`` (trained once per parser config, then from the cache) and its report
    (``miou`` over the 12 segments, ``per_segment_iou``, ``seconds``)."""
    result = load_or_train("secgan-parser", parser_config(cfg), lambda _: pretrain_parser(cfg, progress, threads),
                           cache_dir=cache_dir, verbose=progress)
    parser = build_parser(cfg)
    parser.load_state_dict(result["state"])
    return parser.eval(), {**result["report"], "seconds": float(result["seconds"]), "history": result["history"]}


@torch.no_grad()
def parser_miou(parser: nn.Module, size: int, n: int = 320, seed: int = 0, batch_size: int = 64,
                data_root: str = "") -> dict:
    """mIoU of P over the paper's 12 segments on people never seen in training: SynthFaces' test split, or
    CelebAMask-HQ's under ``data_root``; mean over the segments present in the ground truth."""
    if data_root:
        from ...data import CelebAMaskHQ
        test = CelebAMaskHQ(data_root, "test", size=size)
        n = min(n, len(test))
        get, data = (lambda idx: _stack(test, idx)), f"celebamaskhq:{data_root}"
    else:
        faces = SynthFaces("test", size=size, n=n, seed=seed, n_identities=max(1, n // 8))
        get, data = faces.batch, "synthfaces"
    was_training = parser.training
    parser.eval()
    dev = next(parser.parameters()).device
    conf = torch.zeros(N_SEGMENTS, N_SEGMENTS, dtype=torch.long)
    for lo in range(0, n, batch_size):
        b = get(torch.arange(lo, min(n, lo + batch_size)))
        pred = segment_probabilities(parser(b["image"].to(dev))).argmax(1).cpu()
        conf += confusion_matrix(pred, L.map_mask(b["mask"], "secgan"), N_SEGMENTS)
    parser.train(was_training)
    iou, present = iou_from_confusion(conf)
    return {"miou": float(iou[present].mean()), "n_test": n, "data": data,
            "per_segment_iou": {L.SECGAN_CLASSES[i]: float(iou[i]) for i in range(N_SEGMENTS) if present[i]}}


# --- data --------------------------------------------------------------------------------------------------
class SeCGANBatches:
    """Training batches served by step number: SynthFaces rendered once into memory (the backbone's
    background and flips), or CelebA / CelebA-HQ / RaFD read from ``cfg.data_root`` by the project's loaders
    (train split) in the same seeded epoch order."""

    def __init__(self, cfg):
        self.cfg = cfg
        if cfg.dataset == "synthfaces":
            background = getattr(cfg, "synthfaces_background", "identity")
            self.base = SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                                          flip=cfg.flip, seed=cfg.seed, data_seed=cfg.data_seed, background=background)
            self.n = self.base.n
            return
        from ...data import CelebA, CelebAMaskHQ, RaFD
        loader = {"celeba": CelebA, "celebahq": CelebAMaskHQ, "rafd": RaFD}[cfg.dataset]
        self.dataset = loader(cfg.data_root, "train", size=cfg.image_size)
        self.n = len(self.dataset)
        if cfg.batch_size > self.n:
            raise ValueError(f"batch_size {cfg.batch_size} exceeds the {self.n} training faces under {cfg.data_root}")
        need = "expression" if cfg.domain == "expression" else "attributes"
        if need not in self.dataset[0]:
            raise ValueError(f"{cfg.dataset} under {cfg.data_root} has no {need} labels (CelebA-HQ needs "
                             f"CelebAMask-HQ-attribute-anno.txt); SeCGAN's {cfg.domain} rows need them")

    def get(self, indices: torch.Tensor) -> dict:
        if self.cfg.dataset == "synthfaces":
            return self.base.get(indices)
        return {**_stack(self.dataset, indices), "index": indices}

    def __call__(self, step: int) -> dict:
        if self.cfg.dataset == "synthfaces":
            return self.base(step)
        return self.get(epoch_indices(step, self.cfg.batch_size, self.n, self.cfg.seed))


# --- Algorithm 1 ----------------------------------------------------------------------------------------
def secgan_optimizers(cfg, nets: dict) -> dict:
    """Adam (β from the backbone) for each trained network: η_G for G and G_seg, η_D for D and D_seg."""
    g_lr, d_lr = (cfg.g_lr, cfg.d_lr) if isinstance(cfg, SeCGANStarGANConfig) else (cfg.lr, cfg.lr)
    out = {"G": adam(nets["G"], g_lr, cfg.beta1, cfg.beta2), "D": adam(nets["D"], d_lr, cfg.beta1, cfg.beta2)}
    if cfg.semantic:
        out["G_seg"] = adam(nets["G_seg"], g_lr, cfg.beta1, cfg.beta2)
        out["D_seg"] = adam(nets["D_seg"], d_lr, cfg.beta1, cfg.beta2)
    return out


def exponential_decay(total_steps: int, start: int, final_factor: float):
    """Constant until ``start``, then exponential decay reaching ``final_factor`` at ``total_steps`` (SeCGAN on
    AttGAN: 2e-4 for the first 100 epochs, then down to 2e-6, a factor 0.01)."""
    span = max(1, total_steps - start)
    return lambda step: 1.0 if step < start else final_factor ** (min(step - start, span) / span)


def secgan_schedule(cfg):
    """The learning-rate factor by step: StarGAN's linear decay (its own schedule), or AttGAN's exponential one."""
    if isinstance(cfg, SeCGANStarGANConfig):
        return linear_decay(cfg.num_iters, cfg.num_iters_decay, cfg.lr_update_step, cfg.official_lr_decay)
    return exponential_decay(cfg.total_steps, cfg.decay_epoch * cfg.steps_per_epoch, cfg.lr_final / cfg.lr)


def _translate(nets: dict, cfg, x, s_in, cond):
    """G_rgb's output (+ Concat: the image with its one-hot mask at the input)."""
    G = nets["G"]
    return G(torch.cat([x, s_in.to(x.dtype)], 1), cond) if cfg.variant == "concat" else G(x, cond)


def secgan_step(tr: Trainer, cfg, batch: dict, i: int) -> dict:
    """One iteration of Algorithm 1: both critics on Eq. 13 and 15 (Eq. 17-18) every iteration and, every N-th
    (``n_critic`` / ``n_d``), both generators on Eq. 14 and 16 (Eq. 19-20) with the same mini-batch. Targets: a
    random permutation of the batch's labels. The baseline and + Concat have no semantic branch (λ_sc = 0)."""
    nets, bb = tr.models, backbone_of(cfg)
    G, D = nets["G"], nets["D"]
    x_in, y_src = batch["image"], bb.labels(batch)
    y_trg = shuffled(y_src)
    y_diff, zero = bb.condition(G, y_src, y_trg), bb.condition(G, y_src, y_src)  # y_trg - y_src, and 0
    s_in = nets["P"].one_hot(x_in) if cfg.needs_parser else None                 # s^in = one-hot of P(x^in)
    cls = dict(cls_loss=bb.cls_loss, lambda_cls=bb.lambda_cls_d)
    if i < cfg.d_warmup:  # the parent baseline's cpu recipe: the critics' domain heads alone, on real inputs
        log = {}
        for name, real in (("D", x_in),) + ((("D_seg", s_in),) if cfg.semantic else ()):
            d_cls = bb.cls_loss(nets[name](real)[1], y_src)
            log[f"{name}/loss_cls"] = d_cls
            tr.update(name, bb.lambda_cls_d * d_cls, log)
        return log

    # Critics, Eq. 13 and 15: L_adv^D + λ_cls L_cls^D for each branch. When the generators step in this
    # iteration too, their outputs are rendered once, with their graphs, and shared: the critics' step moves
    # neither generator, so the generator step would render the same numbers again (``share_fakes``)
    share = (i + 1) % bb.n_critic == 0 and getattr(cfg, "share_fakes", True)
    with contextlib.nullcontext() if share else torch.no_grad():
        x_out_g = _translate(nets, cfg, x_in, s_in, y_diff)
        s_out_g = nets["G_seg"](s_in, y_diff) if cfg.semantic else None
    x_out = x_out_g.detach()
    s_out = s_out_g.detach() if cfg.semantic else None
    d_rgb = discriminator_loss_rgb(D, x_in, x_out, y_src, lambda_gp=bb.lambda_gp, **cls)
    log = {k: v for k, v in d_rgb.items() if k != "loss"}
    tr.update("D", d_rgb["loss"], log)                                            # Eq. 17
    if cfg.semantic:
        d_seg = discriminator_loss_seg(nets["D_seg"], s_in, s_out, y_src, lambda_gp=bb.lambda_gp, **cls)
        log.update({k: v for k, v in d_seg.items() if k != "loss"})
        tr.update("D_seg", d_seg["loss"], log)                                    # Eq. 18
    if (i + 1) % bb.n_critic != 0:
        return log

    # Generators, Eq. 14 and 16: L_adv^G + λ_cls L_cls^G + λ_rec L_rec + λ_sc L_sc for each branch
    critics = [D] + ([nets["D_seg"]] if cfg.semantic else [])
    cls = dict(cls_loss=bb.cls_loss, lambda_cls=bb.lambda_cls_g, lambda_rec=bb.lambda_rec)
    with frozen(*critics):
        x_out = x_out_g if share else _translate(nets, cfg, x_in, s_in, y_diff)
        x_rec = _translate(nets, cfg, x_in, s_in, zero)                            # G_rgb(x, 0), Eq. 5
        sem = {}
        if cfg.semantic:
            s_out = s_out_g if share else nets["G_seg"](s_in, y_diff)
            s_rec = nets["G_seg"](s_in, zero)                                      # G_seg(s, 0), Eq. 10
            parsed_out = nets["P"](x_out)                                          # P(x^out), soft
            sem = dict(lambda_sc=cfg.lambda_sc, s_out=s_out, parsed_out=parsed_out)
        g_rgb = generator_loss_rgb(D, x_in, x_out, x_rec, y_trg, **cls, **sem)
        if cfg.semantic:  # computed before either generator moves: each sees the other's output of this batch
            g_seg = generator_loss_seg(nets["D_seg"], s_in, s_out, s_rec, y_trg, parsed_out, lambda_sc=cfg.lambda_sc,
                                       **cls)
        g_log = {k: v for k, v in g_rgb.items() if k != "loss"}
        tr.update("G", g_rgb["loss"], g_log)                                       # Eq. 19
        if cfg.semantic:
            g_log.update({k: v for k, v in g_seg.items() if k != "loss"})
            tr.update("G_seg", g_seg["loss"], g_log)                               # Eq. 20
    log.update(g_log)
    return log


# --- training and loading ------------------------------------------------------------------------------
def _targets(bb, y: torch.Tensor, cfg) -> list[torch.Tensor]:
    """The sample grid's targets: each expression, or each of the 13 attributes flipped."""
    if bb.name == "StarGAN" and cfg.domain == "expression":
        return [torch.full_like(y, k) for k in range(len(L.EXPRESSIONS))]
    out = []
    for k in range(y.shape[1]):
        t = y.clone()
        t[:, k] = 1 - t[:, k]
        out.append(t)
    return out


def train_secgan(cfg, run_dir=None, progress: bool = True, resume: bool = True, n_samples: int = 8,
                 threads: int | None = None, cache_dir=None) -> Trainer:
    """Train a variant of ``cfg`` with the engine (a resumable run in ``run_dir``); P from :func:`load_parser`."""
    nets = build_secgan(cfg)
    if cfg.needs_parser:
        nets["P"].net.load_state_dict(load_parser(cfg, cache_dir=cache_dir, progress=progress,
                                                  threads=threads)[0].state_dict())
    opts = secgan_optimizers(cfg, nets)
    data = SeCGANBatches(cfg)
    fixed = data.get(torch.arange(min(n_samples, data.n)))
    bb = backbone_of(cfg)

    def samples(step):
        edit = secgan_editor(nets, cfg)
        x = fixed["image"].to(next(nets["G"].parameters()).device)
        y = bb.labels(fixed).to(x.device)
        return [x] + [edit(x, y, t) for t in _targets(bb, y, cfg)]

    return run_method(method_name(cfg), cfg, secgan_step, nets=nets, opts=opts, schedule=secgan_schedule(cfg),
                      data=data, samples=samples, total_steps=cfg.total_steps, run_dir=run_dir, progress=progress,
                      resume=resume, threads=threads)


def load_secgan(cfg, outdir=None, progress: bool = True, cache_dir=None, threads: int | None = None) -> Trained:
    """The model trained with ``cfg``: from the model cache, or trained now (resuming an interrupted run).
    ``nets`` holds G, D, P (when used), G_seg and D_seg (SeCGAN); ``editor`` is G_rgb's."""
    def train(c, run_dir=None, progress=True, threads=None):
        return train_secgan(c, run_dir=run_dir, progress=progress, threads=threads, cache_dir=cache_dir)

    trained = load_method(method_name(cfg), cfg, build=build_secgan, train=train, editor=lambda G, c: None,
                          outdir=outdir, progress=progress, cache_dir=cache_dir, threads=threads)
    trained.editor = secgan_editor(trained.nets, cfg)
    return trained


def _train_in_worker(cfg, outdir, cache_dir, threads: int | None) -> float:
    return load_secgan(cfg, outdir=outdir, progress=False, cache_dir=cache_dir, threads=threads).train_seconds


def _parser_in_worker(cfg, cache_dir, threads: int | None) -> float:
    return load_parser(cfg, cache_dir=cache_dir, threads=threads)[1]["seconds"]


def train_all(configs, workers: int = 1, outdir=None, cache_dir=None, threads: int | None = 1,
              progress: bool = True) -> dict:
    """Make sure every config (a dict or a list) is in the model cache: the missing parsers first (shared),
    then the missing models, ``workers`` processes at a time. Returns how many were cached and trained."""
    items = list(configs.values()) if isinstance(configs, dict) else list(configs)
    missing = []
    for c in items:
        if not is_cached(method_name(c), c, cache_dir) and c not in missing:
            missing.append(c)
    parsers = {}
    for c in missing:
        if c.needs_parser and not is_cached("secgan-parser", parser_config(c), cache_dir):
            parsers.setdefault(config_hash(parser_config(c)), c)
    if progress and missing:
        print(f"training {len(missing)} of {len(items)} models and {len(parsers)} parsers, {workers} at a time")
    train_in_pool(_parser_in_worker, list(parsers.values()), workers=workers, args=(cache_dir, threads))
    train_in_pool(_train_in_worker, missing, workers=workers, args=(outdir, cache_dir, threads))
    return {"cached": len(items) - len(missing), "trained": len(missing)}
