"""Training Bodur et al.'s hierarchical GAN: one iteration (:func:`hierarchical_step`), the parser's
pre-training and mIoU, the translation batches, and training / loading through the engine and the model
cache, several models at a time (:func:`train_all`)."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ... import labels as L
from ...cache import config_hash, is_cached, load_or_train
from ...data.synthfaces import SynthFaces
from ...device import DEVICE, torch_threads
from ...distributed import batch_sum, shuffled
from ...methods import SynthFacesBatches, Trained, frozen, run_method, train_in_pool
from ...metrics import confusion_matrix, iou_from_confusion
from ...nets.parsing import train_parser
from ...train import Trainer, epoch_indices, run_dir_for
from .config import PARTS, HierarchicalConfig, parser_config
from .losses import discriminator_loss, generator_loss, real_inputs
from .model import HierarchicalGAN, build_hierarchical, build_parser, hierarchical_editor, part_centre_landmarks

__all__ = ["parameter_groups", "hierarchical_step", "parser_training_set", "pretrain_parser", "load_parser",
           "parser_miou", "HierarchicalBatches", "load_global_stargan", "hierarchical_optimizers",
           "train_hierarchical", "load_hierarchical", "train_all"]


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
    label_trg = shuffled(label_src)
    c_src, c_trg = F.one_hot(label_src, cfg.c_dim).float(), F.one_hot(label_trg, cfg.c_dim).float()
    landmarks = batch.get("landmarks")
    with torch.no_grad():
        fake = model.translate(x, c_trg, landmarks=landmarks)
    d = discriminator_loss(model, real_inputs(x, fake), fake, label_src)
    log = {k: v for k, v in d.items() if k != "loss"}
    log["parts_missing"] = float(batch_sum(fake["missing"]))  # in the whole batch (the log averages processes)
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



def parser_training_set(cfg: HierarchicalConfig) -> dict:
    """The labelled faces of pre-training: a seeded random ``parser_fraction`` of ``parser_masks`` SynthFaces
    faces (train split, seed ``parser_data_seed``), or of the first ``parser_masks`` faces of CelebAMask-HQ's
    train split when ``parser_data_root`` is set, as uint8 images and label maps. Smaller fractions are
    subsets of larger ones (the same permutation), as the paper's proportions of CelebAMask-HQ."""
    if cfg.parser_data_root:
        from ...data import CelebAMaskHQ
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
            lr=cfg.parser_pretrain_lr, seed=cfg.seed, log_every=100 if progress else 0,
            task=f"hier-parser-{config_hash(parser_config(cfg))}")
        report = parser_miou(parser, cfg.image_size, data_root=cfg.parser_data_root)  # CelebAMask-HQ test split if given
    return {"state": {k: v.detach().cpu() for k, v in parser.state_dict().items()}, "history": history,
            "report": report, "seconds": time.perf_counter() - start}


def load_parser(cfg: HierarchicalConfig, cache_dir=None, progress: bool = False,
                threads: int | None = None) -> tuple[nn.Module, dict]:
    """The pre-trained parser of ``cfg`` (trained once, then from the model cache) and its report
    (``miou``, ``parts_miou``, per-class IoU on the test split of :func:`parser_miou`, ``seconds`` of pre-training)."""
    key = parser_config(cfg)
    result = load_or_train("hier-parser", key, lambda _: pretrain_parser(cfg, progress, threads),
                           cache_dir=cache_dir, verbose=progress)
    parser = build_parser(cfg)
    parser.load_state_dict(result["state"])
    return parser.eval(), {**result["report"], "seconds": float(result["seconds"])}


@torch.no_grad()
def parser_miou(parser: nn.Module, size: int, n: int = 640, seed: int = 0, batch_size: int = 128,
                data_root: str = "") -> dict:
    """mIoU of a parser on a test split of people never seen in training: SynthFaces' (default), or
    CelebAMask-HQ's under ``data_root`` (the paper's Table 2; its first ``n`` test faces), from the
    confusion matrix over all ``n`` faces, averaged over the classes present in the ground truth (as the
    parser oracle's report), plus ``parts_miou``: the IoU of the 4 local parts (and of "none"), the masks
    the GAN uses, and ``per_face_miou`` for paired comparisons (:func:`faceedit_nb.claims.miou_difference`)."""
    if data_root:
        from ...data import CelebAMaskHQ
        test = CelebAMaskHQ(data_root, "test", size=size)  # an empty split raises
        n = min(n, len(test))

        class _Faces:  # the loader's samples as batches
            def batch(self, idx):
                return _stack(test, idx)
        faces, data = _Faces(), f"celebamaskhq:{data_root}"
    else:
        faces, data = SynthFaces("test", size=size, n=n, seed=seed, n_identities=max(1, n // 8)), "synthfaces"
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
            "per_part_iou": {PARTS[p]: float(iou_p[p + 1]) for p in range(len(PARTS))}, "n_test": n,
            "per_face_miou": per_face, "seed": seed, "data": data}



class HierarchicalBatches:
    """Training batches of the translation set, served by step number, each face with 68 landmarks.

    SynthFaces (default): rendered into memory once (:class:`faceedit_nb.methods.SynthFacesBatches`, no
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
        from ...data import AffectNet, RaFD
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



def load_global_stargan(cfg: HierarchicalConfig, progress: bool = False, cache_dir=None,
                        threads: int | None = None):
    """The baselines chapter's StarGAN that the global branch starts from (``cfg.global_from``), from the
    model cache (trained now if missing); None when the global generator trains from scratch."""
    sg = cfg.global_stargan()
    if sg is None:
        return None
    from ..stargan import load_stargan
    return load_stargan(sg, progress=progress, cache_dir=cache_dir, threads=threads)


def hierarchical_optimizers(cfg: HierarchicalConfig, model: HierarchicalGAN) -> dict:
    """Adam (β = 0.5, 0.999) over :func:`parameter_groups`; the fused kernel (same update, faster on CPU)."""
    return {k: torch.optim.Adam(groups, betas=(0.5, 0.999), fused=True)
            for k, groups in parameter_groups(model).items()}



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

    return run_method("hierarchical", cfg, hierarchical_step, nets={"model": model}, opts=opts, data=data,
                      samples=samples, total_steps=cfg.steps, run_dir=run_dir, progress=progress, resume=resume,
                      threads=threads)


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
    model.to(DEVICE).eval()  # the loaded tensors are on the CPU; on a GPU the editor runs there
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

    if progress and missing:
        print(f"training {len(missing)} of {len(items)} models ({len(items) - len(missing)} cached) and "
              f"{len(parsers)} parsers, {workers} at a time")
    train_in_pool(_pretrain_in_worker, list(parsers.values()), workers=workers, args=(cache_dir, threads))
    train_in_pool(_train_in_worker, missing, workers=workers, args=(outdir, cache_dir, threads))
    return {"cached": len(items) - len(missing), "trained": len(missing)}

