"""The plumbing every method of the book shares: batches from SynthFaces, a trained-model record, the
run and load functions on top of the training engine and the model cache, and a pool of training
processes. The methods themselves live in :mod:`faceedit_nb.papers` (this module never imports them).

A method supplies a config (a :class:`faceedit_nb.config.Profiles` dataclass), ``build`` (its networks),
a step function ``step(tr, cfg, batch, i) -> log`` (one iteration, on top of
:class:`faceedit_nb.train.Trainer`), and calls::

    run_method("stargan", cfg, stargan_step, nets=nets, opts=opts, schedule=..., data=..., samples=...,
               total_steps=cfg.num_iters)                       # a resumable run
    load_method("stargan", cfg, build=build_stargan, train=train_stargan, editor=stargan_editor)

Speed (see benchmarks/train_step.py): critics see real and fake images in one pass
(:func:`critic_real_fake`), are frozen during generator steps (:func:`frozen`), and Adam uses its fused
kernel (:func:`adam`).
"""
from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .cache import load_or_train
from .device import DEVICE
from .data.synthfaces import SynthFaces
from .train import Trainer, epoch_indices, run_dir_for

__all__ = ["frozen", "he_init", "adam", "critic_real_fake", "SynthFacesBatches", "Trained", "seeded", "run_method",
           "load_method", "load_all", "train_in_pool", "results_as_completed", "learning_curve", "curve_references",
           "CURVE_METRICS",
           "check_evaluation_data"]


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


def he_init(module: nn.Module, slope: float = 0.01) -> nn.Module:
    """He et al.'s normal initialisation (fan-in, gain of LeakyReLU(slope)) of every conv weight, zero biases:
    activations keep their scale through a deep critic without normalisation. PyTorch's default init (the
    StarGAN code's) shrinks them about sqrt(3)x per layer: a 5-layer critic's domain head then sits at chance
    for its first ~500 steps (benchmarks/cpu_recipes_findings.md)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=slope, mode="fan_in", nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def adam(module: nn.Module, lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    """Adam as in all three papers; the fused kernel (4x faster than the default on this CPU, same update)."""
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(beta1, beta2), fused=True)


def critic_real_fake(D: Callable, real: torch.Tensor, fake: torch.Tensor, c_real: torch.Tensor | None = None,
                     c_fake: torch.Tensor | None = None) -> tuple[tuple, tuple]:
    """The critic's outputs on real and on fake images from one pass over both (with their labels, for a
    conditional critic ``D(x, c)``). The baselines' critics have no batch statistics (no norm, or instance
    norm), so this equals two passes, with less overhead."""
    n = real.shape[0]
    both = torch.cat([real, fake])
    out = D(both) if c_real is None else D(both, torch.cat([c_real, c_fake]))
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


def run_method(name: str, cfg, step_fn: Callable, *, nets: dict, opts: dict, data, samples: Callable,
               total_steps: int, schedule=None, run_dir=None, progress: bool = True, resume: bool = True,
               threads: int | None = None, curve: Callable | None = None, curve_every: int = 0) -> Trainer:
    """Run ``step_fn(tr, cfg, batch, i)`` with the engine for ``total_steps`` in ``run_dir`` (default: the
    run directory of ``name`` and ``cfg``), resuming from its last snapshot. ``data(step)`` gives the batch
    of a step, ``samples(step)`` the sample grid's columns, ``schedule(step)`` the learning-rate factor;
    the config supplies EMA, precision, seed and the logging, sampling and snapshot intervals.
    ``curve(nets, step) -> {name: value}`` measures the networks every ``curve_every`` steps (a learning
    curve: stats rows ``eval/<name>`` against the training clock; nothing it does changes the training)."""
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(name, cfg)
    tr = Trainer(nets, opts, total_steps=total_steps, run_dir=run_dir, options=cfg, lr_schedule=schedule,
                 ema={"G": cfg.ema_decay} if cfg.ema_decay else None, precision=cfg.precision, seed=cfg.seed,
                 snapshot_every=cfg.snapshot_every, log_every=cfg.log_every, sample_every=cfg.sample_every,
                 resume=resume, progress=progress, threads=threads)
    eval_fn = None if curve is None else (lambda step: curve(tr.models, step))
    tr.run(lambda batch, i: step_fn(tr, cfg, batch, i), data, samples, eval_fn=eval_fn, eval_every=curve_every)
    return tr


def load_method(name: str, cfg, *, build: Callable, train: Callable, editor: Callable, outdir=None,
                progress: bool = True, cache_dir=None, threads: int | None = None) -> Trained:
    """The method ``name`` trained with ``cfg``: from the model cache (key: ``name`` and the config's
    hash), or trained now by ``train(cfg, run_dir=..., progress=..., threads=...)`` (resuming an
    interrupted run). ``build(cfg)`` makes the networks to load the weights into; ``editor(G, cfg)`` the
    evaluation harness's editor of the generator (the EMA copy when there is one)."""
    def train_fn(c):
        return train(c, run_dir=run_dir_for(name, c, outdir), progress=progress, threads=threads).export()

    state = load_or_train(name, cfg, train_fn, cache_dir=cache_dir)  # tensors on the CPU
    nets = build(cfg)
    for k, m in nets.items():
        m.load_state_dict(state["models"][k])
        m.to(DEVICE).eval()  # on a GPU the editor and its evaluation run there, as the training did
    ema = {}
    for k, sd in state.get("ema", {}).items():
        ema[k] = build(cfg)[k]
        ema[k].load_state_dict(sd)
        ema[k].to(DEVICE).eval()
    G = ema.get("G", nets["G"])
    return Trained(nets, ema, state.get("stats", []), cfg, editor(G, cfg))


def load_all(load: Callable, configs: dict, *, workers: int = 1, progress: bool = False, cache_dir=None,
             threads: int | None = 1) -> dict[str, Trained]:
    """``{name: load(cfg, ...)}`` for a series' configs: the missing models first trained ``workers`` at a time,
    each in its own process (bit-identical to one by one), then every model loaded from the cache. ``load`` is
    a method's ``load_<method>(cfg, *, progress, cache_dir, threads)``, a module-level function."""
    if workers > 1:  # train the missing ones in parallel; loading is then a cache hit
        train_in_pool(_load_in_worker, list(configs.values()), workers=workers,
                      args=(load, progress, cache_dir, threads))
    return {name: load(c, progress=progress, cache_dir=cache_dir, threads=threads) for name, c in configs.items()}


def _load_in_worker(cfg, load: Callable, progress: bool, cache_dir, threads: int | None) -> None:
    load(cfg, progress=progress, cache_dir=cache_dir, threads=threads)  # the weights stay in the cache


def seeded(seed: int, build: Callable[[], dict]) -> dict:
    """``build()`` under ``torch.manual_seed(seed)``, leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def train_in_pool(fn: Callable, items: Sequence, *, workers: int, args: tuple = ()) -> list:
    """``[fn(item, *args) for item in items]``, ``workers`` at a time, each call in its own spawned process
    (so that runs stay independent and bit-identical to serial ones); serially when ``workers <= 1`` or
    there is at most one item. ``fn`` must be a module-level function (it is pickled by name)."""
    return [result for _, result in sorted(_indexed_results(fn, items, workers, args), key=lambda r: r[0])]


def results_as_completed(fn: Callable, items: Sequence, *, workers: int, args: tuple = ()):
    """:func:`train_in_pool`, yielding each ``fn(item, *args)`` as soon as it returns (in the order the calls
    end, not the order of ``items``), so that a caller can say what has finished while the rest still runs.
    Calls start in the order of ``items``."""
    return (result for _, result in _indexed_results(fn, items, workers, args))


def _indexed_results(fn: Callable, items: Sequence, workers: int, args: tuple):
    """``(position in items, fn(item, *args))`` pairs as the calls end (see :func:`train_in_pool`)."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from ((i, fn(item, *args)) for i, item in enumerate(items))
        return
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("spawn")) as ex:
        futures = {ex.submit(fn, item, *args): i for i, item in enumerate(items)}
        yield from ((futures[f], f.result()) for f in as_completed(futures))


# what each protocol's learning curve records (faceedit_nb.metrics.evaluate's keys)
CURVE_METRICS = {"expression": ("eea", "id_distance"), "expression_aus": ("eea",), "aus": ("ed", "id_distance"),
                 "attributes": ("attribute_accuracy", "id_distance"), "stargan": ("attribute_accuracy",)}


def learning_curve(cfg, make_editor: Callable, protocols: Sequence[str], *, background: str = "identity",
                   au_mode: str = "expression") -> Callable | None:
    """The learning curve of a method (``None`` when ``cfg.curve_every`` is 0): ``curve(nets, step)``
    measures ``make_editor(nets)`` on a fixed held-out set, the first ``cfg.curve_faces`` faces of
    SynthFaces' test split (other people than training), with the oracles of profile
    ``cfg.curve_oracles``, through each protocol; returns ``{"<protocol>/<metric>": value}`` (the
    metrics of :data:`CURVE_METRICS`). Distribution metrics are skipped: a point costs seconds."""
    if not cfg.curve_every:
        return None
    from .oracles import load_oracles
    unknown = [p for p in protocols if p not in CURVE_METRICS]
    if unknown:
        raise ValueError(f"no learning-curve metrics for protocol(s) {unknown}; choose from {sorted(CURVE_METRICS)}")
    test = _curve_faces(cfg, background, au_mode)
    state = {}

    def curve(nets: dict, step: int) -> dict:
        if "oracles" not in state:  # loaded on the first point, in the training process
            state["oracles"] = load_oracles(size=cfg.image_size, profile=cfg.curve_oracles, verbose=False)
        return _curve_point(make_editor(nets), test, state["oracles"], protocols)
    return curve


def _curve_faces(cfg, background: str, au_mode: str):
    n = cfg.curve_faces
    return SynthFaces("test", size=cfg.image_size, n=n, n_identities=max(1, n // 8), seed=0, background=background,
                      au_mode=au_mode)


def _curve_point(editor, test, oracles, protocols) -> dict:
    from .metrics import evaluate
    out = {}
    for protocol in protocols:
        table = evaluate(editor, test, oracles, protocol, batch_size=100, parse=False, kid_subsets=2,
                         kid_subset_size=10)
        out.update({f"{protocol}/{m}": table.value(m) for m in CURVE_METRICS[protocol]})
    return out


CURVE_REFERENCES_NAME = "curve-references"  # their cache entries (models/curve-references-<hash>/)


def curve_references(cfg, protocols: Sequence[str], *, background: str = "identity", au_mode: str = "expression",
                     cache_dir=None) -> dict[str, dict]:
    """The lines a learning curve is read against, measured on the same held-out faces and oracles as
    :func:`learning_curve`: ``{"ground truth": {...}, "doing nothing": {...}}`` (SynthFaces' re-render of
    each edit, and the identity editor), keyed like the curve (``"<protocol>/<metric>"``).

    Measured once and kept in the model cache, keyed by the faces, the protocols and the oracles' own
    configs (a chapter's second run, and every method measured on the same faces, read them back)."""
    from .cache import config_hash
    from .oracles import oracle_configs
    key = {"image_size": cfg.image_size, "curve_faces": cfg.curve_faces, "curve_oracles": cfg.curve_oracles,
           "protocols": list(protocols), "background": background, "au_mode": au_mode,
           "oracles": {name: config_hash(c) for name, c in oracle_configs(cfg.curve_oracles, cfg.image_size).items()}}
    return load_or_train(CURVE_REFERENCES_NAME, key, lambda k: _measure_references(cfg, protocols, background, au_mode),
                         cache_dir=cache_dir, verbose=False)


def _measure_references(cfg, protocols: Sequence[str], background: str, au_mode: str) -> dict[str, dict]:
    from .metrics import ground_truth_editor, identity_editor
    from .oracles import load_oracles
    test = _curve_faces(cfg, background, au_mode)
    oracles = load_oracles(size=cfg.image_size, profile=cfg.curve_oracles, verbose=False)
    return {"ground truth": _curve_point(ground_truth_editor(test), test, oracles, protocols),
            "doing nothing": _curve_point(identity_editor, test, oracles, protocols)}


def check_evaluation_data(dataset: str, data_root: str = "", *, datasets: Sequence[str], needs: str) -> None:
    """Refuse, by name, to evaluate models trained on a real data set with the book's oracles (trained on
    SynthFaces) and SynthFaces' test faces: measured so, they would be judged on other data than they learnt
    from. ``needs`` says what that data set's own evaluation would take. Never a silent fall-back."""
    if dataset not in datasets:
        raise ValueError(f"dataset must be one of {tuple(datasets)}; got {dataset!r}")
    if dataset != "synthfaces":
        raise ValueError(
            f"evaluating models trained on {dataset!r} ({data_root or 'data_root'}) is not supported in this "
            f"chapter: the book's oracles are trained on SynthFaces, and {needs}. Train with 02_training "
            f"(dataset={dataset!r}) and measure its test split with such networks, or run this chapter with "
            f"dataset='synthfaces'")
