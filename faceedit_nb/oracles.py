"""The oracles: the networks every chapter measures its results with, trained once and cached.

No pretrained evaluation network is available offline (VGG-Face, ArcFace, OpenFace, BiSeNet weights),
so the book trains its own on the data set it edits, on the **train** split, and reports how good each
one is on the held-out **test** split (other identities), so a reader can judge how far to trust the
tables built on them::

    from faceedit_nb.oracles import load_oracles
    oracles = load_oracles(size=64, profile="cpu")     # trains on the first call (minutes), then loads
    oracles.report["expression"]["accuracy"]           # the oracle's own held-out accuracy
    logits = oracles.expression_logits(fake_images)    # B x 8, images B x 3 x 64 x 64 in [-1, 1]

The five oracles
----------------
==============  ============================================  ==============================================
method          network                                       used for
==============  ============================================  ==============================================
expression      VGG-16 classifier, 8 RaFD classes             editing accuracy (Bodur et al., SeCGAN, StarGAN)
attribute       STGAN's attribute classifier, 13 attributes   attribute editing accuracy (STGAN, SeCGAN)
aus             AU regressor, 17 intensities in [0, 1]        expression distance ED (Ling et al.)
                (STGAN's classifier; 4 of its 5 stages in cpu)
identity        ArcFace-loss embedding, unit norm             ID loss (cosine), ACD (L2) (Bodur, Ling)
parse           UNet face parser, 19 classes                  mIoU, part masks
==============  ============================================  ==============================================

Every method takes images B x 3 x S x S in [-1, 1] at the oracles' size ``S`` and runs the network in
eval mode, in fp32, under ``torch.no_grad()``, in batches. **A batch of another size is an error**,
not silently resized: an oracle trained at 64 px is a different instrument from one trained at 128 px,
and resizing generated images changes what is measured. Load oracles at the size of the images
(``load_oracles(size=128)``), or resize explicitly and say so.

Held-out figures (``Oracles.report``)
-------------------------------------
* expression: accuracy (and per class) on the test split's expression-labelled images.
* attributes: accuracy per attribute (logit > 0 vs the 0/1 label) and their mean.
* aus: mean absolute error over the 17 AUs (and per AU), intensities in [0, 1], each face read together
  with its mirror image (``AUOracleConfig.flip_average``), as :meth:`Oracles.aus` reads it.
* identity: verification ROC AUC: cosine similarity of every pair of test images, positives the pairs
  showing the same identity (test identities are never seen in training).
* parser: mIoU from the confusion matrix accumulated over the whole test set, averaged over the
  classes present in the test ground truth (SynthFaces draws no hat or necklace; absent classes would
  otherwise count as 0 or be undefined), and the IoU of each class.
* ``train_seconds`` of each oracle (wall clock of its training and evaluation on this machine).

Profiles: ``smoke`` (seconds; tiny networks and data, the figures are meaningless but the code path is
the one of the other profiles), ``cpu`` (a few minutes per oracle on 2 CPU cores at 64 px; bars in
:data:`CPU_BARS`), ``paper`` (the papers' network sizes, for a GPU). Each oracle is cached by
:func:`faceedit_nb.cache.load_or_train` under its config (a dataclass below with a ``version`` field).

Real data sets: ``load_oracles(dataset="rafd", root=...)`` (or ``affectnet``, ``celeba``,
``celebamaskhq``, ``openface``), a ``(train, test)`` pair of Datasets, or one Dataset (a random 10% is
held out then, not identity-disjoint) train the oracles whose labels the data set has; the others are
``None`` and their methods raise an error saying which data set would provide them.
"""
from __future__ import annotations

import numbers
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import labels as L
from .cache import load_or_train
from .device import DEVICE, autocast, memory_layout, seed_everything
from .metrics.image import confusion_matrix, iou_from_confusion
from .nets.classifiers import VGG16_STAGES, AttributeClassifier, AURegressor, VGGClassifier
from .nets.identity import ArcFaceHead, IdentityNet
from .nets.parsing import BiSeNet, UNet, poly_lr, train_parser
from .progress import report as report_progress

__all__ = ["load_oracles", "Oracles", "OracleConfig", "ExpressionOracleConfig", "AttributeOracleConfig",
           "AUOracleConfig", "IdentityOracleConfig", "ParserOracleConfig", "oracle_configs", "PROFILES",
           "CPU_BARS", "ORACLES", "warn_missed_bars", "roc_auc", "verification_roc_auc", "confusion_matrix",
           "DATASETS"]

ORACLES = ("expression", "attributes", "aus", "identity", "parser")
_LABEL_KEY = {"expression": "expression", "attributes": "attributes", "aus": "aus", "identity": "identity",
              "parser": "mask"}

# The bars the cpu profile must reach on SynthFaces at 64 px (held-out test split).
CPU_BARS = {"expression_accuracy": (">=", 0.95), "attribute_accuracy_mean": (">=", 0.90),
            "parser_miou": (">=", 0.85), "identity_roc_auc": (">=", 0.95), "au_mae": ("<=", 0.05)}
# each figure of CPU_BARS: the oracle it belongs to and its key in that oracle's report
_BAR_FIGURES = {"expression_accuracy": ("expression", "accuracy"),
                "attribute_accuracy_mean": ("attributes", "accuracy_mean"), "au_mae": ("aus", "mae"),
                "identity_roc_auc": ("identity", "roc_auc"), "parser_miou": ("parser", "miou")}


# --- configs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OracleConfig:
    version: int = 1              # bump when the training code changes in a way that matters
    dataset: str = "synthfaces"   # "synthfaces", or the key of a real data set (see load_oracles)
    size: int = 64                # image side the oracle takes (64 in the cpu profile, 128 in paper)
    seed: int = 0                 # initialisation, batch order, augmentation
    data_seed: int = 0            # SynthFaces seed (its identities and samples); subset choice on real data
    train_identities: int = 1000  # SynthFaces identities of the training set (train split)
    test_identities: int = 40     # SynthFaces identities of the test set (test split, never seen in training)
    n_train: int = 8000           # training images, rendered once (real data: at most this many)
    n_test: int = 1280            # held-out images (real data: at most this many)
    au_mode: str = "mixed"        # SynthFaces AUs: "expression" prototypes, "random", or "mixed" (half each)
    steps: int = 600              # optimiser steps
    batch_size: int = 64
    lr: float = 1e-3              # AdamW, linear warm-up over 5% of the steps, then poly(0.9) decay
    weight_decay: float = 1e-4
    flip: bool = True             # random horizontal flips (masks: left/right classes swapped)
    amp: bool = True              # bf16 autocast on CPU, fp16 on CUDA (faceedit_nb.device.autocast)
    channels_last: bool = False   # train in the channels-last memory layout: 1.28-1.44x faster per step with
    #                               bf16 on a CPU with oneDNN (benchmarks/channels_last.py); other rounding, so
    #                               other weights: part of the cache key when on

    def unhashed_fields(self) -> tuple[str, ...]:
        """Left out of the cache key while off, so that oracles cached before the field existed keep their keys."""
        return () if self.channels_last else ("channels_last",)


@dataclass(frozen=True)
class ExpressionOracleConfig(OracleConfig):
    au_mode: str = "expression"   # prototype expressions: every image has an expression label
    stages: tuple = VGG16_STAGES  # VGG-16: (channels, convs) per stage
    width: float = 1.0            # multiplies every stage's channels
    fc_dim: int = 4096            # VGG-16's hidden fully connected layers
    dropout: float = 0.5


@dataclass(frozen=True)
class AttributeOracleConfig(OracleConfig):
    dim: int = 32                 # STGAN's classifier width (FC 16 * dim = 512)


@dataclass(frozen=True)
class AUOracleConfig(OracleConfig):
    dim: int = 32                 # same network as the attribute classifier, 17 sigmoid outputs
    stages: int = 5               # conv pairs kept (5: STGAN's; 4: a 4 x 4 map at 64 px reaches the head)
    loss: str = "mse"             # "mse" (GANimation's and Ling et al.'s AU regression loss) or "l1"
    flip_average: bool = True     # read each face and its mirror image and average the two readings (the
    #                               AU labels are the same for both: training flips faces, labels unchanged)


@dataclass(frozen=True)
class IdentityOracleConfig(OracleConfig):
    dim: int = 32                 # trunk width (STGAN classifier trunk)
    embedding_dim: int = 128      # dlib's size (ArcFace: 512)
    s: float = 64.0               # ArcFace scale
    m: float = 0.5                # ArcFace additive angular margin (radians)
    randomise_background: bool = True  # SynthFaces: repaint background and clothes (ground-truth mask)
    #                                    with random colours, so that the embedding cannot learn the
    #                                    identity from them (they are drawn per identity)


@dataclass(frozen=True)
class ParserOracleConfig(OracleConfig):
    arch: str = "unet"            # "unet" (full-resolution output) or "bisenet" (stride 8, see parsing.py)
    base: int = 64                # UNet width of the first level
    depth: int = 4                # UNet levels
    loss: str = "ohem"            # "ohem" (face-parsing.PyTorch) or "ce"
    batch_size: int = 32
    lr: float = 2e-3


_CONFIG_CLASSES = {"expression": ExpressionOracleConfig, "attributes": AttributeOracleConfig,
                   "aus": AUOracleConfig, "identity": IdentityOracleConfig, "parser": ParserOracleConfig}

# Overrides of the config defaults (the papers' sizes) per profile; "*" applies to every oracle.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "*": dict(n_train=96, n_test=48, train_identities=24, test_identities=8, steps=4, batch_size=16),
        "expression": dict(stages=((8, 1),) * 5, width=1.0, fc_dim=32),
        "attributes": dict(dim=8), "aus": dict(dim=8), "identity": dict(dim=8, embedding_dim=32),
        "parser": dict(base=4, depth=3),
    },
    "cpu": {
        "*": dict(n_train=8000, n_test=1280, train_identities=1000, steps=600, batch_size=64, channels_last=True),
        # VGG-16 at a quarter of its width; no dropout: with 0.5 (VGG's) 600 steps reached 83% held-out
        # accuracy, without it and with 1500 steps 98% (measured, SynthFaces 64 px)
        "expression": dict(width=0.25, fc_dim=256, dropout=0.0, lr=2e-3, steps=1500),
        "attributes": dict(dim=32),  # STGAN's own width
        # AUs, held-out MAE (prototype expressions / free AU vectors), measured on SynthFaces 64 px:
        #   MSE, 2,500 steps, 8,000 images, 5 stages: 0.080 (0.037 / 0.122)
        #   L1, 5,000 steps, 16,000 images, 5 stages: 0.070 (0.031 / 0.109)
        #   L1, 3,000 steps, 16,000 images, 4 stages: 0.075 (0.033 / 0.117), train MAE 0.066: not overfitting
        #   L1, 5,000 steps, 64,000 images of 4,000 people, 4 stages: 0.064 (0.029 / 0.098), 1.4x faster/step
        #   the same after SynthFaces' own cues for AU07 / AU14 / AU15 / AU25: 0.057 (0.029 / 0.084); free-AU
        #   correlations now 0.73-0.94 for every AU but AU25 (0.57); per-AU free errors 0.056-0.144, spread over
        #   all AUs: training-limited now more than renderer-limited (3,672 s, fp32, 1 thread, AVX2 EPYC)
        #   10,000 steps: 0.048; each face also read in its mirror image (flip_average): 0.046 (0.027 / 0.064),
        #   worst AU25 0.079; training loss 0.057 at step 5,000, 0.045 at 10,000; 2,424 s at 1 thread
        #   (wider instead, dim 48 for 5,500 steps with the mirror reading: 0.049 in 2,687 s)
        "aus": dict(dim=32, stages=4, lr=2e-3, steps=10000, loss="l1", n_train=64000, train_identities=4000),
        "identity": dict(dim=32, s=32.0),  # s = 32 chosen a priori for 1000 classes (ArcFace: 64)
        # parser: 2,000 steps reached mIoU 0.844, every class at 0.78-0.99 but earrings (0.14, a few pixels
        # at 64 px), the loss still falling; twice the steps
        "parser": dict(base=16, depth=4, batch_size=16, steps=4000, lr=5e-3),
    },
    "paper": {
        "*": dict(n_train=32000, n_test=2560, train_identities=4000, steps=6000, batch_size=64, channels_last=True),
        "expression": {}, "attributes": {}, "aus": {}, "identity": {}, "parser": dict(batch_size=16),
    },
}


def oracle_configs(profile: str = "cpu", size: int = 64, seed: int = 0, dataset: str = "synthfaces",
                   data_seed: int = 0) -> dict[str, OracleConfig]:
    """The config of each oracle for a profile (the cache keys of :func:`load_oracles`)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {tuple(PROFILES)}")
    out = {}
    for name in ORACLES:
        kw = {**PROFILES[profile].get("*", {}), **PROFILES[profile].get(name, {})}
        out[name] = _CONFIG_CLASSES[name](dataset=dataset, size=size, seed=seed, data_seed=data_seed, **kw)
    return out


# --- data -----------------------------------------------------------------------------------------------
DATASETS = ("synthfaces", "rafd", "affectnet", "celeba", "celebamaskhq", "openface")


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _to_float(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 127.5 - 1 if image.dtype == torch.uint8 else image.float()


_KEEP = ("image", "mask", "expression", "attributes", "aus", "identity")


class _Source:
    """Lazily loaded training and test tensors (images as uint8) of one data set, shared by the oracles."""

    def __init__(self, key: str, labels_present: set[str], render: Callable[[str, str, OracleConfig], dict],
                 attribute_names=L.ATTRIBUTES, held_out: str = ""):
        self.key, self.labels_present, self._render = key, labels_present, render
        self.attribute_names, self.held_out = tuple(attribute_names), held_out
        self._memo: dict[tuple, dict] = {}

    def get(self, split: str, cfg: OracleConfig) -> dict:
        n = cfg.n_train if split == "train" else cfg.n_test
        ids = cfg.train_identities if split == "train" else cfg.test_identities
        memo_key = (split, cfg.size, n, ids, cfg.data_seed, cfg.au_mode)
        if memo_key not in self._memo:
            self._memo[memo_key] = self._render(split, cfg.au_mode, cfg)
        return self._memo[memo_key]


def _synthfaces_source() -> _Source:
    from .data import SynthFaces

    def render(split: str, au_mode: str, cfg: OracleConfig) -> dict:
        n, ids = (cfg.n_train, cfg.train_identities) if split == "train" else (cfg.n_test, cfg.test_identities)
        ds = SynthFaces(split, size=cfg.size, n=n, seed=cfg.data_seed, n_identities=ids, au_mode=au_mode)
        parts = []
        for lo in range(0, n, 128):  # ~2000 samples/s at 64 px in chunks of 128
            b = ds.batch(torch.arange(lo, min(n, lo + 128)))
            parts.append({"image": _to_uint8(b["image"]), "mask": b["mask"].to(torch.uint8),
                          **{k: b[k] for k in ("expression", "attributes", "aus", "identity")}})
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    return _Source("synthfaces", set(ORACLES), render,
                   held_out="SynthFaces test split (identities never seen in training)")


_LOADERS = {"rafd": "RaFD", "affectnet": "AffectNet", "celeba": "CelebA", "celebamaskhq": "CelebAMaskHQ",
            "openface": "OpenFaceAUs"}


def _read_dataset(ds, n: int, seed: int, indices=None) -> dict:
    """At most ``n`` samples of a Dataset (a seeded random subset) as tensors, images as uint8."""
    total = len(ds)
    if indices is None:
        indices = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values
    else:
        indices = torch.as_tensor(indices)[:n]
    subset = torch.utils.data.Subset(ds, indices.tolist())
    loader = torch.utils.data.DataLoader(subset, batch_size=64, num_workers=min(2, os.cpu_count() or 1))
    parts: dict[str, list] = {}
    for b in loader:
        for k in _KEEP:
            if k in b:
                v = b[k]
                parts.setdefault(k, []).append(_to_uint8(v) if k == "image" else
                                               v.to(torch.uint8) if k == "mask" else v)
    if "image" not in parts:
        raise ValueError(f"{ds!r}: samples have no 'image' (expected SynthFaces-style sample dicts)")
    out = {k: torch.cat(v) for k, v in parts.items()}
    for k in ("expression", "identity"):
        if k in out:
            out[k] = out[k].long()
    for k in ("attributes", "aus"):
        if k in out:
            out[k] = out[k].float()
    return out


def _dataset_source(dataset, root, size: int) -> _Source:
    """A source for a real data set: a name (with ``root``), a (train, test) pair or one Dataset."""
    from torch.utils.data import Dataset

    from . import data as D

    held_out = "the data set's test split"
    if isinstance(dataset, str):
        name = dataset.lower().replace("-", "").replace("_", "")
        if name not in _LOADERS:
            raise ValueError(f"unknown data set {dataset!r}; choose one of {DATASETS}, or pass a Dataset "
                             "(or a (train, test) pair of Datasets)")
        if root is None:
            raise ValueError(f"dataset={dataset!r} needs root= the folder of the data set")
        cls = getattr(D, _LOADERS[name])
        train, test = cls(root, split="train", size=size), cls(root, split="test", size=size)
        key = f"{name}:{Path(root).expanduser().resolve()}"
    elif isinstance(dataset, (tuple, list)) and len(dataset) == 2 and all(isinstance(d, Dataset) for d in dataset):
        train, test = dataset
        key = f"{train!r}|{test!r}"
    elif isinstance(dataset, Dataset):
        train = test = dataset
        key = f"{dataset!r}"
        held_out = "a random 10% of the samples (not identity-disjoint: pass a (train, test) pair for that)"
    else:
        raise TypeError(f"dataset must be a name in {DATASETS}, a Dataset or a (train, test) pair of Datasets; "
                        f"got {type(dataset).__name__}")
    first = train[0]
    if "image" not in first or tuple(first["image"].shape[-2:]) != (size, size):
        shape = tuple(first["image"].shape) if "image" in first else None
        raise ValueError(f"{train!r}: samples need an 'image' 3 x {size} x {size} (the oracles' size); got "
                         f"{shape}. Build the data set with size={size}")
    present = {o for o, k in _LABEL_KEY.items() if k in first}
    if not present:
        raise ValueError(f"{train!r}: its samples carry none of the labels the oracles learn "
                         f"({sorted(set(_LABEL_KEY.values()))})")
    single = test is train
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(1234)) if single else None
    n_test_single = max(1, len(train) // 10) if single else 0

    def render(split: str, au_mode: str, cfg: OracleConfig) -> dict:
        if single:
            idx = perm[n_test_single:] if split == "train" else perm[:n_test_single]
            g = torch.Generator().manual_seed(cfg.data_seed)
            idx = idx[torch.randperm(len(idx), generator=g)].sort().values if split == "train" else idx.sort().values
            return _read_dataset(train, cfg.n_train if split == "train" else cfg.n_test, cfg.data_seed, idx)
        ds = train if split == "train" else test
        return _read_dataset(ds, cfg.n_train if split == "train" else cfg.n_test, cfg.data_seed)

    names = getattr(train, "attributes", L.ATTRIBUTES)
    return _Source(key, present, render, attribute_names=names if isinstance(names, (tuple, list)) else L.ATTRIBUTES,
                   held_out=held_out)


# --- training -------------------------------------------------------------------------------------------
def _batches(n: int, batch_size: int, gen: torch.Generator):
    """Endless shuffled epochs of indices, ``batch_size`` at a time."""
    while True:
        perm = torch.randperm(n, generator=gen)
        for lo in range(0, n - batch_size + 1, batch_size):
            yield perm[lo:lo + batch_size]
        if n < batch_size:
            yield perm[torch.randint(n, (batch_size,), generator=gen)]


@torch.enable_grad()  # trains even when a notebook has turned gradients off
def _fit(model: nn.Module, loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
         images: torch.Tensor, cfg: OracleConfig, extra: nn.Module | None = None,
         augment: Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor] | None = None,
         name: str = "oracle", log_every: int = 0) -> list[float]:
    """Train ``model`` on uint8 ``images``: ``loss_fn(model, x, idx)`` with ``x`` float in [-1, 1]."""
    gen = torch.Generator().manual_seed(cfg.seed)
    layout = memory_layout(cfg.channels_last)
    model.to(DEVICE, memory_format=layout).train()
    params = list(model.parameters()) + (list(extra.to(DEVICE).parameters()) if extra is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: poly_lr(s, cfg.steps, warmup))
    history, batches = [], _batches(len(images), cfg.batch_size, gen)
    for _ in range(cfg.steps):
        idx = next(batches)
        x = _to_float(images[idx])
        if augment is not None:
            x = augment(x, idx, gen)
        if cfg.flip:
            f = torch.rand(len(x), generator=gen) < 0.5
            x = torch.where(f[:, None, None, None], x.flip(-1), x)
        with autocast(DEVICE, enabled=cfg.amp):
            loss = loss_fn(model, x.to(DEVICE, memory_format=layout), idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        history.append(loss.item())
        report_progress(f"oracle-{name}-{cfg.size}px", len(history), cfg.steps)
        if log_every and len(history) % log_every == 0:
            print(f"[{name}] step {len(history)}/{cfg.steps} loss {sum(history[-log_every:]) / log_every:.4f}")
    model.eval()
    return history


@torch.no_grad()
def _predict(model: nn.Module, images: torch.Tensor, batch_size: int = 256, flip_average: bool = False,
             memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """``model`` on images (uint8 or float in [-1, 1]) in eval mode, fp32, batches; outputs on the CPU.

    ``flip_average``: the mean of the outputs on each image and on its mirror image (test-time flip).
    ``memory_format``: the inputs' layout (the model's, so that no convolution converts them).
    """
    was_training = model.training
    model.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        x = _to_float(x).to(DEVICE, memory_format=memory_format)
        return ((model(x).float() + model(x.flip(-1)).float()) / 2 if flip_average else model(x).float()).cpu()

    outs = [run(images[lo:lo + batch_size]) for lo in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def _result(model: nn.Module, report: dict, start: float, history: list[float]) -> dict:
    report = {**report, "train_seconds": round(time.perf_counter() - start, 2)}
    return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "report": report,
            "history": [round(h, 5) for h in history[:: max(1, len(history) // 200)]]}


def _build(name: str, cfg: OracleConfig, n_outputs: int | None = None) -> nn.Module:
    if name == "expression":
        return VGGClassifier(n_outputs or len(L.EXPRESSIONS), cfg.size, cfg.stages, cfg.width, cfg.fc_dim, cfg.dropout)
    if name == "attributes":
        return AttributeClassifier(n_outputs or len(L.ATTRIBUTES), cfg.dim, cfg.size)
    if name == "aus":
        return AURegressor(n_outputs or len(L.AUS), cfg.dim, cfg.size, cfg.stages)
    if name == "identity":
        return IdentityNet(cfg.embedding_dim, cfg.dim, cfg.size)
    if name == "parser":
        if cfg.arch == "unet":
            return UNet(n_outputs or len(L.PARSING_CLASSES), cfg.base, cfg.depth)
        if cfg.arch == "bisenet":
            return BiSeNet(n_outputs or len(L.PARSING_CLASSES))
        raise ValueError(f"parser arch must be 'unet' or 'bisenet'; got {cfg.arch!r}")
    raise ValueError(f"unknown oracle {name!r}; choose one of {ORACLES}")


def _train_expression(cfg: ExpressionOracleConfig, source: _Source, log_every: int = 0) -> dict:
    start = time.perf_counter()
    train, test = source.get("train", cfg), source.get("test", cfg)
    seed_everything(cfg.seed)
    model = _build("expression", cfg)
    y = train["expression"]
    history = _fit(model, lambda m, x, idx: F.cross_entropy(m(x).float(), y[idx].to(DEVICE),
                                                             ignore_index=L.NO_EXPRESSION), train["image"], cfg,
                   name="expression", log_every=log_every)
    keep = test["expression"] != L.NO_EXPRESSION
    pred = _predict(model, test["image"][keep]).argmax(1)
    truth = test["expression"][keep]
    per_class = {e: float((pred[truth == i] == i).float().mean()) for i, e in enumerate(L.EXPRESSIONS)
                 if (truth == i).any()}
    report = {"accuracy": float((pred == truth).float().mean()), "per_class": per_class, "n_test": int(keep.sum())}
    return _result(model, report, start, history)


def _train_attributes(cfg: AttributeOracleConfig, source: _Source, log_every: int = 0) -> dict:
    start = time.perf_counter()
    train, test = source.get("train", cfg), source.get("test", cfg)
    seed_everything(cfg.seed)
    y = train["attributes"].float()
    model = _build("attributes", cfg, y.shape[1])
    history = _fit(model, lambda m, x, idx: F.binary_cross_entropy_with_logits(m(x).float(), y[idx].to(DEVICE)),
                   train["image"], cfg, name="attributes", log_every=log_every)
    pred = (_predict(model, test["image"]) > 0).float()
    acc = (pred == test["attributes"].float()).float().mean(0)
    names = source.attribute_names if len(source.attribute_names) == len(acc) else tuple(map(str, range(len(acc))))
    report = {"accuracy_mean": float(acc.mean()), "per_attribute": dict(zip(names, acc.tolist())),
              "n_test": len(pred)}
    return _result(model, report, start, history)


def _train_aus(cfg: AUOracleConfig, source: _Source, log_every: int = 0) -> dict:
    start = time.perf_counter()
    train, test = source.get("train", cfg), source.get("test", cfg)
    seed_everything(cfg.seed)
    y = train["aus"].float()
    model = _build("aus", cfg, y.shape[1])
    if cfg.loss not in ("mse", "l1"):
        raise ValueError(f"AU oracle loss must be 'mse' or 'l1'; got {cfg.loss!r}")
    loss_fn = F.mse_loss if cfg.loss == "mse" else F.l1_loss
    history = _fit(model, lambda m, x, idx: loss_fn(m(x).float(), y[idx].to(DEVICE)), train["image"], cfg,
                   name="aus", log_every=log_every)
    err = (_predict(model, test["image"], flip_average=cfg.flip_average) - test["aus"].float()).abs()
    names = L.AUS if err.shape[1] == len(L.AUS) else tuple(map(str, range(err.shape[1])))
    report = {"mae": float(err.mean()), "per_au": dict(zip(names, err.mean(0).tolist())), "n_test": len(err)}
    if "expression" in test:  # SynthFaces "mixed": prototype expressions and free random AU vectors
        free = test["expression"] == L.NO_EXPRESSION
        for key, rows in (("mae_expression_samples", ~free), ("mae_random_samples", free)):
            if rows.any():
                report[key] = float(err[rows].mean())
    return _result(model, report, start, history)


def _repaint_background(mask: torch.Tensor):
    """An augmentation that paints background and clothes in random colours (per image), from the mask."""
    where = ((mask == L.PARSING_CLASSES.index("background")) | (mask == L.PARSING_CLASSES.index("cloth")))

    def augment(x: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        w = where[idx].unsqueeze(1)
        colour = torch.rand(len(x), 3, 1, 1, generator=gen) * 2 - 1
        shade = 1 + 0.15 * (torch.rand(len(x), 1, 1, 1, generator=gen) * 2 - 1) * torch.linspace(-1, 1, x.shape[-1])
        return torch.where(w, (colour * shade).clamp(-1, 1), x)

    return augment


def _train_identity(cfg: IdentityOracleConfig, source: _Source, log_every: int = 0) -> dict:
    start = time.perf_counter()
    train, test = source.get("train", cfg), source.get("test", cfg)
    seed_everything(cfg.seed)
    ids, labels = torch.unique(train["identity"], return_inverse=True)
    if len(ids) < 2:
        raise ValueError(f"the identity oracle needs at least 2 training identities; got {len(ids)}")
    model = _build("identity", cfg)
    head = ArcFaceHead(cfg.embedding_dim, len(ids), s=cfg.s, m=cfg.m)
    augment = _repaint_background(train["mask"]) if cfg.randomise_background and "mask" in train else None
    history = _fit(model, lambda m, x, idx: head(m(x), labels[idx].to(DEVICE)), train["image"], cfg,
                   extra=head, augment=augment, name="identity", log_every=log_every)
    emb = _predict(model, test["image"])
    report = {"roc_auc": verification_roc_auc(emb, test["identity"]), "n_test": len(emb),
              "n_test_identities": int(torch.unique(test["identity"]).numel()),
              "background_randomised": augment is not None}
    return _result(model, report, start, history)


def _train_parser(cfg: ParserOracleConfig, source: _Source, log_every: int = 0) -> dict:
    start = time.perf_counter()
    train, test = source.get("train", cfg), source.get("test", cfg)
    seed_everything(cfg.seed)
    model = _build("parser", cfg)
    history = train_parser(model, {"image": train["image"], "mask": train["mask"]}, cfg.steps,
                           batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay, loss=cfg.loss,
                           flip=cfg.flip, seed=cfg.seed, device=DEVICE, amp=cfg.amp, log_every=log_every,
                           task=f"oracle-parser-{cfg.size}px", channels_last=cfg.channels_last)
    n = len(L.PARSING_CLASSES)
    conf = torch.zeros(n, n, dtype=torch.long)
    for lo in range(0, len(test["image"]), 256):
        pred = _predict(model, test["image"][lo:lo + 256]).argmax(1)
        conf += confusion_matrix(pred, test["mask"][lo:lo + 256].long(), n)
    iou, present = iou_from_confusion(conf)
    report = {"miou": float(iou[present].mean()),
              "per_class_iou": {c: float(iou[i]) for i, c in enumerate(L.PARSING_CLASSES) if present[i]},
              "classes_present": [c for i, c in enumerate(L.PARSING_CLASSES) if present[i]],
              "n_test": len(test["image"])}
    return _result(model, report, start, history)


# --- evaluation helpers ---------------------------------------------------------------------------------
def roc_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative) + 0.5 P(tie).

    Computed from ranks (Mann-Whitney U), ties getting their average rank.
    """
    scores, positive = scores.flatten().double(), positive.flatten().bool()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs positives and negatives; got {n_pos} and {n_neg}")
    values, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    avg_rank = ends - (counts.double() - 1) / 2  # 1-based average rank of each distinct value
    rank_sum = avg_rank[inverse][positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def verification_roc_auc(embeddings: torch.Tensor, identities: torch.Tensor) -> float:
    """ROC AUC of face verification on every pair (i < j): score = cosine similarity, positive = same identity."""
    e = F.normalize(embeddings.float(), dim=1)
    i, j = torch.triu_indices(len(e), len(e), offset=1)
    sim = (e[i] * e[j]).sum(1)
    return roc_auc(sim, identities[i] == identities[j])


# --- the oracles ----------------------------------------------------------------------------------------
@dataclass
class Oracles:
    """Trained oracles at one image size; see the module docstring. Missing oracles are ``None``."""

    size: int
    profile: str
    dataset: str
    nets: dict[str, nn.Module | None]
    report: dict[str, Any]
    attribute_names: tuple = L.ATTRIBUTES
    batch_size: int = 256
    configs: dict[str, OracleConfig] = field(default_factory=dict)
    left_out: tuple = ()          # oracles the data set has labels for but ``load_oracles(which=)`` did not ask for

    def _net(self, name: str) -> nn.Module:
        net = self.nets.get(name)
        if net is None and name in self.left_out:
            raise RuntimeError(f"no {name} oracle: it was left out when the oracles were loaded (which= did not "
                               f"name it). Fix: load_oracles(..., which=(..., {name!r})), or drop the metric that "
                               f"needs it")
        if net is None:
            raise RuntimeError(f"no {name} oracle: the data set {self.dataset!r} has no '{_LABEL_KEY[name]}' labels. "
                               f"Load oracles from a data set that has them (SynthFaces has all; RaFD/AffectNet: "
                               f"expression; CelebA: attributes; CelebAMaskHQ: mask; openface: aus)")
        return net

    def _check(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"oracles take image batches B x 3 x H x W in [-1, 1]; got "
                             f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
        if tuple(images.shape[-2:]) != (self.size, self.size):
            raise ValueError(
                f"these oracles were trained at {self.size} x {self.size} px; got {images.shape[-2]} x "
                f"{images.shape[-1]} images. Fix: load_oracles(size={images.shape[-1]}) for oracles at that "
                f"size, or resize explicitly (F.interpolate(images, size={self.size}, mode='bilinear', "
                "antialias=True)) and report that you did")
        if images.dtype == torch.uint8:
            raise ValueError("oracles take float images in [-1, 1], got uint8; convert with x.float() / 127.5 - 1")
        if images.numel() and (images.min() < -1.01 or images.max() > 1.01):
            raise ValueError(f"images must lie in [-1, 1]; got values in [{float(images.min()):.3f}, "
                             f"{float(images.max()):.3f}] (0-1 or 0-255 images must be mapped first)")
        return images

    def _run(self, name: str, images: torch.Tensor) -> torch.Tensor:
        net, cfg = self._net(name), self.configs.get(name)
        layout = memory_layout(getattr(cfg, "channels_last", False))
        return _predict(net, self._check(images), self.batch_size, getattr(cfg, "flip_average", False),
                        memory_format=layout).to(images.device)

    def expression_logits(self, images: torch.Tensor) -> torch.Tensor:
        """B x 8 logits in ``labels.EXPRESSIONS`` order."""
        return self._run("expression", images)

    def attribute_logits(self, images: torch.Tensor) -> torch.Tensor:
        """B x 13 logits in ``labels.ATTRIBUTES`` order (``self.attribute_names``); > 0 means present."""
        return self._run("attributes", images)

    def aus(self, images: torch.Tensor) -> torch.Tensor:
        """B x 17 AU intensities in [0, 1] (``labels.AUS`` order; OpenFace's 0-5 scale divided by 5).

        With ``flip_average`` (the default of :class:`AUOracleConfig`) the mean of the readings of each face
        and of its mirror image, as in the held-out figure of ``report["aus"]``.
        """
        return self._run("aus", images)

    def identity_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """B x D unit-norm embeddings: cosine distance ``1 - a.b`` (ID loss), L2 distance ``|a - b|`` (ACD)."""
        return self._run("identity", images)

    def parse(self, images: torch.Tensor) -> torch.Tensor:
        """B x 19 x H x W parser logits in ``labels.PARSING_CLASSES`` order (``.argmax(1)`` for labels)."""
        return self._run("parser", images)

    def summary(self) -> dict[str, float]:
        """The headline held-out figures under the names of :data:`CPU_BARS`, plus training seconds."""
        r, out = self.report, {}
        for key, (name, fig) in _BAR_FIGURES.items():
            if r.get(name):
                out[key] = r[name][fig]
                out[f"{name}_train_seconds"] = r[name]["train_seconds"]
        return out

    def bars(self) -> dict[str, dict]:
        """Each figure of :data:`CPU_BARS` with its bar and whether it is met (meaningful for ``cpu``/``paper``)."""
        s = self.summary()
        return {k: {"value": s[k], "bar": f"{op} {v}", "met": s[k] >= v if op == ">=" else s[k] <= v}
                for k, (op, v) in CPU_BARS.items() if k in s}


def _check_size(size) -> int:
    """The oracles' image side: an int (a TypeError otherwise, whatever its value), a multiple of 32."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        fix = ""
        if isinstance(size, float) and size.is_integer():
            fix = f"; write size={int(size)}"
        elif isinstance(size, str) and size.strip().isdigit():
            fix = f"; write size={int(size)}, not the string {size!r}"
        raise TypeError(f"size must be an int (the image side in pixels, a multiple of 32: 32, 64, 128, 256); "
                        f"got {size!r} ({type(size).__name__}){fix}")
    if size < 32 or size % 32:
        raise ValueError(f"size must be a multiple of 32 (32 to 256 for SynthFaces); got {size!r}")
    return int(size)


def load_oracles(size: int = 64, seed: int = 0, profile: str = "cpu", dataset="synthfaces", *, root=None,
                 data_seed: int = 0, which=ORACLES, retrain: bool = False, verbose: bool = True) -> Oracles:
    """Train (once, cached) and return the oracles for images of ``size`` px.

    Args:
        size: image side (32-256 for SynthFaces; a multiple of 32 for the classifiers).
        seed: training seed (initialisation, batches, augmentation); same seed, same numbers on CPU.
        profile: "smoke", "cpu" or "paper" (see :data:`PROFILES`).
        dataset: "synthfaces"; a real data set name in :data:`DATASETS` with ``root=``; a ``(train, test)``
            pair of Datasets of SynthFaces-style sample dicts; or one Dataset (10% held out at random).
        data_seed: SynthFaces seed (the identities drawn); for real data, which subset is read.
        which: the oracles to load (default all the data set has labels for).
        retrain: ignore the cache and train again.
    """
    size = _check_size(size)
    unknown = [w for w in which if w not in ORACLES]
    if unknown:
        raise ValueError(f"unknown oracle(s) {unknown}; choose from {ORACLES}")
    if isinstance(dataset, str) and dataset.lower() == "synthfaces":
        if root is not None:
            raise ValueError("root= is for real data sets; SynthFaces is rendered, it has no root")
        source = _synthfaces_source()
    else:
        source = _dataset_source(dataset, root, size)
    configs = oracle_configs(profile, size, seed, source.key, data_seed)
    trainers = {"expression": _train_expression, "attributes": _train_attributes, "aus": _train_aus,
                "identity": _train_identity, "parser": _train_parser}
    nets: dict[str, nn.Module | None] = {}
    report: dict[str, Any] = {"profile": profile, "size": size, "dataset": source.key, "held_out": source.held_out}
    for name in ORACLES:
        if name not in which or name not in source.labels_present:
            nets[name], report[name] = None, None
            continue
        cfg, train = configs[name], trainers[name]
        log_every = 100 if verbose else 0
        result = load_or_train(f"oracle-{name}", cfg, lambda c, t=train: t(c, source, log_every),
                               retrain=retrain, verbose=verbose)
        state = result["state"]
        n_out = _n_outputs(name, state)
        net = _build(name, cfg, n_out)
        net.load_state_dict(state)
        # read in the layout it was trained (and its held-out figure measured) in: channels-last reads
        # 1.3-1.5x faster in fp32 too (benchmarks/evaluate_speed.py)
        nets[name] = net.to(DEVICE, memory_format=memory_layout(cfg.channels_last)).eval()
        report[name] = result["report"]
    left_out = tuple(n for n in ORACLES if n not in which and n in source.labels_present)
    oracles = Oracles(size=size, profile=profile, dataset=source.key, nets=nets, report=report,
                      attribute_names=source.attribute_names, configs=configs, left_out=left_out)
    warn_missed_bars(oracles)
    return oracles


def warn_missed_bars(oracles: Oracles) -> list[str]:
    """A warning for each oracle below its bar in :data:`CPU_BARS` (``cpu`` and ``paper`` profiles on
    SynthFaces at 64 px; the smoke profile's oracles are meaningless by design); returns the messages.

    An oracle below its bar usually means its training went wrong (a run whose loss stalled, stored in the
    cache like any other): every metric that reads it is then untrustworthy, so it is said where it is loaded.
    """
    if oracles.profile == "smoke" or oracles.dataset != "synthfaces" or oracles.size != 64:
        return []
    messages = []
    for key, bar in oracles.bars().items():
        if bar["met"]:
            continue
        name = _BAR_FIGURES[key][0]
        messages.append(
            f"the {name} oracle ({oracles.profile} profile) is below its bar: {key} = {bar['value']:.3f}, bar "
            f"{bar['bar']}. Every metric that reads it is untrustworthy. If its training went wrong, train it "
            f"again: load_oracles(..., which=({name!r},), retrain=True), or delete its folder "
            f"'oracle-{name}-*' in the model cache")
        warnings.warn(messages[-1], stacklevel=3)
    return messages


def _n_outputs(name: str, state: dict) -> int | None:
    """Number of outputs of a stored network (real data sets may have other label counts)."""
    last = {"expression": "classifier.7.weight", "attributes": "classifier.3.weight", "aus": "classifier.3.weight",
            "parser": "outc.weight"}.get(name)
    if last in state:
        return state[last].shape[0]
    if name == "parser" and "conv_out.conv_out.weight" in state:
        return state["conv_out.conv_out.weight"].shape[0]
    return None
