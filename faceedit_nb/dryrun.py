"""The paper profile, checked on the CPU: every model the chapters train at ``paper``, at its paper size, two
training iterations and one evaluation batch, with what a GPU would need for the whole run.

    python -m faceedit_nb.dryrun                       # every paper-profile model (~1 hour on 2 cores)
    python -m faceedit_nb.dryrun --only stargan         # the models whose label contains "stargan"
    python -m faceedit_nb.book --profile paper --dry-run   # the same, from the book's runner

For each model it prints its parameters, the FLOPs of one training iteration (torch's
FLOP formulas, ``torch.utils.flop_counter``: matrix products and convolutions, forward and backward,
the gradient penalty's double backward included; averaged over one critic/generator cycle, so that an
iteration without a generator step counts as it should), the CPU's peak memory over those iterations (resident
set growth: an upper bound of what the GPU needs in fp32, about half with AMP), the iterations the paper asks
for, and **estimated** GPU hours on a T4 and an A100:

    hours = iterations x FLOPs per iteration / (GPU peak x efficiency)

with the GPUs' dense fp16 / bf16 tensor peaks (T4 65 TFLOP/s, A100 312 TFLOP/s) and a stated efficiency per GPU
(:data:`EFFICIENCY`: 10 % of the T4's tensor peak, 5 % of the A100's). Where those come from: two papers report
their StarGAN's training time (:data:`CALIBRATION`); with our FLOP count of the same StarGAN they imply 25-37 % of
their GPU's fp32 peak (the dry run prints it). Mixed precision speeds convolutional GANs up about 2-4x over fp32,
not by the tensor cores' 8x (T4) or 16x (A100) over fp32 peak; 25 % of fp32 peak times 3 is about 9 % of the T4's
tensor peak and 5 % of the A100's. An estimate, not a measurement: no GPU was used.

The GAN models run their own training code (``load_<method>``, the engine's loop) in a fresh process with a
temporary model cache; the models they start from (a parser, the global StarGAN of Bodur et al., DefGAN's face
embedding) are built untrained instead of trained. The oracles, the parsers and the critic curve train with
their own loops: for them, one step is the network's forward and backward on a batch of their size and an
optimiser step (the loss head left out), times their steps.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .train import count_parameters

__all__ = ["GPUS", "CALIBRATION", "EFFICIENCY", "DryRun", "measure", "dry_run", "format_table", "main"]

# dense fp16 / bf16 tensor-core peaks, TFLOP/s (NVIDIA's data sheets: T4 65 fp16; A100 SXM 312 bf16)
GPUS = {"T4": 65e12, "A100": 312e12}

# Two papers' own StarGAN training times (full texts in the project's shared/papers), the GPU's fp32 peak, and
# the run: our FLOP count of that run over (hours x peak) is the efficiency it implies.
CALIBRATION = [
    {"source": "Bodur et al.: StarGAN baseline, 200K iterations, batch 8, GTX 1080, ~12 hours",
     "gpu_fp32": 8.9e12, "hours": 12.0, "iterations": 200_000, "batch_size": 8},
    {"source": "SeCGAN: its StarGAN framework (x ~2.2 a StarGAN iteration, stop 33), 200K iterations, batch 16, "
               "RTX 2080 Ti, ~1 day", "gpu_fp32": 13.4e12, "hours": 24.0 / 2.2, "iterations": 200_000,
     "batch_size": 16},
]
# The share of each GPU's tensor peak the estimates assume (the module docstring says why).
EFFICIENCY = {"T4": 0.10, "A100": 0.05}

# Training images of the papers' own data sets, for the methods whose schedule is in epochs: on SynthFaces'
# 3,200 training faces the paper profile runs the papers' epochs, far fewer iterations than the papers did.
PAPER_DATA = {
    "ganimation": (190_000, "EmotioNet subset of 190k images (DefGAN's Sec. 4.1: GANimation on the same subset)"),
    "defgan": (190_000, "EmotioNet subset of 190k images (DefGAN, Sec. 4.1)"),
    "relative_au": (200_000, "AffectNet subset of 200,000 samples (Ling et al., Sec. 4)"),
    "attgan": (182_000, "CelebA's training split, 182,000 images (AttGAN-PyTorch; SeCGAN: ~1.1M iterations)"),
}


@dataclass
class DryRun:
    """What one model costs: measured on the CPU (``params``, ``flops_per_iteration``, ``eval_flops``,
    ``peak_mib``, ``cpu_seconds_per_iteration``) and the paper's ``iterations``."""
    label: str
    kind: str
    image_size: int
    batch_size: int
    params: int
    iterations: int
    flops_per_iteration: float
    cpu_seconds_per_iteration: float
    peak_mib: float
    eval_flops: float = 0.0
    eval_seconds: float = 0.0
    measured_iterations: int = 0
    series: str = ""      # the chapter or series that trains it (:func:`series_of`)
    key: str = ""         # the hash of its config (a dry run of another config is another row)
    paper_data_iterations: int = 0  # an epoch schedule's iterations on the paper's own data set (0: not epochs)
    paper_data: str = ""            # that data set (:data:`PAPER_DATA`)

    def gpu_hours(self, gpu: str, efficiency: float | None = None, *, paper_data: bool = False) -> float:
        """Estimated hours of the paper profile's whole run on ``gpu`` (at :data:`EFFICIENCY` of its peak by
        default); ``paper_data``: of the run on the paper's own data set (an epoch schedule's; else the same)."""
        efficiency = EFFICIENCY[gpu] if efficiency is None else efficiency
        n = self.paper_data_iterations if paper_data and self.paper_data_iterations else self.iterations
        return n * self.flops_per_iteration / (GPUS[gpu] * efficiency) / 3600


class _Done(Exception):
    """Raised out of the engine's loop once the iterations are measured (nothing is stored)."""

    def __init__(self, result: dict):
        super().__init__("dry run measured")
        self.result = result


# --- memory ------------------------------------------------------------------------------------------------
def _status_mib(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``: now; ``VmHWM``: the peak), MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not Linux: the process's peak, never reset
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Reset the kernel's peak resident set of this process to its current size (Linux: ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _FlopCount(TorchDispatchMode):
    """torch's FLOP formulas (``torch.utils.flop_counter.flop_registry``: matrix products, convolutions and their
    backward passes) summed over every operation run in the block. ``FlopCounterMode`` itself tracks modules with
    backward hooks, which ``autograd.grad`` (the gradient penalty) refuses."""

    def __init__(self):
        from torch.utils.flop_counter import flop_registry
        super().__init__()
        self.total, self.formulas = 0, flop_registry

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


@contextlib.contextmanager
def _measured():
    """``{"flops", "seconds", "peak_mib"}`` of the block: torch's FLOP count, wall time, resident-set growth."""
    out = {}
    _reset_peak()
    base = _status_mib("VmRSS")
    start = time.perf_counter()
    with _FlopCount() as counter:
        yield out
    out["seconds"] = time.perf_counter() - start
    out["flops"] = float(counter.total)
    out["peak_mib"] = max(0.0, _status_mib("VmHWM") - base)


# --- the GAN models: the engine's loop, stopped after the measured iterations --------------------------------
def _period(options: dict) -> int:
    """Iterations of one critic / generator cycle of a method's config."""
    if options.get("n_critic"):
        return int(options["n_critic"])
    if options.get("train_G_every_n_iterations"):
        return int(options["train_G_every_n_iterations"])
    if options.get("n_d") is not None and "dis_dim" in options:
        return int(options["n_d"]) + 1  # AttGAN: n_d critic batches, then one generator batch
    return 1


def _measuring_run(iterations: int):
    """A replacement of :meth:`faceedit_nb.train.Trainer.run` that measures ``iterations`` (at least one cycle)
    and one sample grid (the evaluation batch: the generator editing a batch to every target), then raises."""
    def run(self, step_fn, data_fn, sample_fn=None, *, eval_fn=None, eval_every=0):
        self._prepare_together()
        self._resume()
        for m in self.models.values():
            m.train()
        opts = self.options
        warmup = int(opts.get("d_warmup", 0) or 0)  # the paper profile has none; a critic-only step is cheaper
        while self.step < warmup:
            self.iterate(step_fn, data_fn)
        k = max(iterations, _period(opts))
        self.iterate(step_fn, data_fn)  # one unmeasured iteration: allocations, kernels chosen
        with torch.enable_grad(), _measured() as train:
            for _ in range(k):
                self.iterate(step_fn, data_fn)
        evaluation = {"flops": 0.0, "seconds": 0.0}
        if sample_fn is not None:
            with torch.no_grad(), self.autocast(), _measured() as evaluation:
                sample_fn(self.step)
        raise _Done({"params": sum(count_parameters(m) for m in self.models.values()), "measured_iterations": k,
                     "flops_per_iteration": train["flops"] / k, "cpu_seconds_per_iteration": train["seconds"] / k,
                     "peak_mib": train["peak_mib"], "eval_flops": evaluation["flops"],
                     "eval_seconds": evaluation["seconds"]})
    return run


def _untrained_parser(module, *, frozen: bool = False):
    def load_parser(cfg, *args, **kwargs):
        net = module.build_parser(cfg).eval()
        if frozen:
            net.requires_grad_(False)
        return net, {"seconds": 0.0, "history": [], "miou": float("nan")}
    return load_parser


@contextlib.contextmanager
def _stand_ins():
    """The models a GAN starts from, built untrained (their own costs are their own rows of the table)."""
    from types import SimpleNamespace
    from .papers import stargan
    from .papers.defgan import train as defgan_train
    from .papers.lssl import train as lssl_train
    from .papers.secgan import model as secgan_model
    from .papers.secgan import train as secgan_train
    from .papers.seg_hierarchical import model as hier_model
    from .papers.seg_hierarchical import train as hier_train

    def global_stargan(cfg, *args, **kwargs):
        sg = cfg.global_stargan()
        return None if sg is None else SimpleNamespace(nets=stargan.build_stargan(sg))

    def face_embedding(cfg):
        if not (cfg.deformation and cfg.lambda_face_id):
            return None
        from .oracles import _build, oracle_configs
        net = _build("identity", oracle_configs(cfg.curve_oracles, cfg.image_size, cfg.identity_seed)["identity"])
        return net.requires_grad_(False).eval()

    with mock.patch.object(hier_train, "load_parser", _untrained_parser(hier_model)), \
            mock.patch.object(hier_train, "load_global_stargan", global_stargan), \
            mock.patch.object(lssl_train, "load_parser", _untrained_parser(lssl_train, frozen=True)), \
            mock.patch.object(secgan_train, "load_parser", _untrained_parser(secgan_model)), \
            mock.patch.object(defgan_train, "identity_network", face_embedding):
        yield


def _small_data(cfg):
    """``cfg`` with as few training faces as two batches need (rendering thousands of faces at 128-256 px would
    take longer than the measurement, and changes none of the figures) and no learning curve."""
    changes = {"curve_every": 0} if hasattr(cfg, "curve_every") else {}
    if hasattr(cfg, "n_train") and hasattr(cfg, "batch_size"):
        n = max(4 * cfg.batch_size, 64)
        changes["n_train"] = min(cfg.n_train, n)
        if hasattr(cfg, "n_identities"):
            changes["n_identities"] = max(1, min(cfg.n_identities, changes["n_train"] // 8))
    for field in ("parser_masks",):
        if hasattr(cfg, field):
            changes[field] = min(getattr(cfg, field), 64)
    return replace(cfg, **changes) if changes else cfg


def schedule(job) -> tuple[int, int, str]:
    """``(iterations at the profile, iterations on the paper's data set or 0, that data set)`` of a GAN job."""
    cfg = job.config
    total = cfg.total_steps if hasattr(cfg, "total_steps") else cfg.steps
    if hasattr(cfg, "nepochs_decay"):  # GANimation and the methods that extend it
        epochs, family = cfg.nepochs_no_decay + cfg.nepochs_decay, job.kind
    elif hasattr(cfg, "epochs") and hasattr(cfg, "n_d"):  # AttGAN, STGAN, SeCGAN on AttGAN
        epochs, family = cfg.epochs, "attgan"
    else:
        return total, 0, ""
    images, source = PAPER_DATA[family]
    return total, epochs * (images // cfg.batch_size), source


def _measure_gan(job, iterations: int) -> dict:
    from . import prebuild
    from .train import Trainer
    cfg = _small_data(job.config)
    with _stand_ins(), mock.patch.object(Trainer, "run", _measuring_run(iterations)):
        try:
            prebuild._run(replace(job, config=cfg))
        except _Done as done:  # the iterations of the job's own config, not of the few faces measured
            total, on_paper_data, source = schedule(job)
            cfg = job.config
            return {**done.result, "iterations": total, "paper_data_iterations": on_paper_data, "paper_data": source,
                    "image_size": getattr(cfg, "image_size", 0), "batch_size": getattr(cfg, "batch_size", 0)}
    raise RuntimeError(f"{job.label}: its training finished without reaching the engine's loop")


# --- networks trained by their own loops: one optimiser step on a batch --------------------------------------
def _network_spec(job) -> tuple:
    """``(build, batch size, image size, steps)`` of an oracle, a parser or the critic curve; ``build()`` makes the
    untrained network."""
    if job.kind == "oracle":
        from .oracles import _build, oracle_configs
        name, size, profile, seed = job.config
        cfg = oracle_configs(profile, size, seed)[name]
        return (lambda: _build(name, cfg)), cfg.batch_size, size, cfg.steps
    cfg = job.config
    if job.kind == "hier-parser":
        from .papers.seg_hierarchical import model as hier_model
        return (lambda: hier_model.build_parser(cfg)), cfg.parser_batch, cfg.image_size, cfg.parser_steps
    if job.kind == "lssl-parser":  # lssl.train.pretrain_parser's batch
        from .papers.lssl import train
        return (lambda: train.build_parser(cfg)), min(32, cfg.parser_masks), cfg.image_size, cfg.parser_steps
    if job.kind == "secgan-parser":
        from .papers.secgan import model as secgan_model
        return (lambda: secgan_model.build_parser(cfg)), cfg.parser_batch, cfg.image_size, cfg.parser_steps
    if job.kind == "critic-curve":
        from .papers import stargan
        cfg, steps, _ = job.config
        return (lambda: stargan.build_stargan(cfg)["D"]), cfg.batch_size, cfg.image_size, steps
    raise ValueError(f"no network step for job kind {job.kind!r}")


def _network_of(job) -> tuple[nn.Module, int, int, int]:
    """(untrained network, batch size, image size, steps) of an oracle, a parser or the critic curve."""
    build, batch, size, steps = _network_spec(job)
    return build(), batch, size, steps


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def _measure_network(job, iterations: int) -> dict:
    from .device import DEVICE, autocast
    net, batch, size, steps = _network_of(job)
    net.to(DEVICE).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=DEVICE)

    def step():
        with autocast():
            loss = sum(t.float().square().mean() for t in _tensors(net(x)) if t.is_floating_point())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # unmeasured: allocations, kernels chosen
    with _measured() as train:
        for _ in range(iterations):
            step()
    net.eval()
    with torch.no_grad(), autocast(), _measured() as evaluation:
        net(x)
    return {"params": count_parameters(net), "iterations": steps, "image_size": size, "batch_size": batch,
            "measured_iterations": iterations, "flops_per_iteration": train["flops"] / iterations,
            "cpu_seconds_per_iteration": train["seconds"] / iterations, "peak_mib": train["peak_mib"],
            "eval_flops": evaluation["flops"], "eval_seconds": evaluation["seconds"]}


# --- the driver ----------------------------------------------------------------------------------------------
def series_of(job) -> str:
    """The chapter (``baselines/stargan``, ``evaluation``) or series (``secgan``) whose notebooks train ``job``."""
    if job.kind == "oracle":
        return "defgan" if "Eq. 12" in job.label else "evaluation"
    if job.kind in ("hier-parser", "hierarchical") or "the series'" in job.label:
        return "seg_hierarchical"
    if job.kind == "secgan-parser":
        return "secgan"
    return {"stargan": "baselines/stargan", "critic-curve": "baselines/stargan", "ganimation": "baselines/ganimation",
            "attgan": "baselines/attgan", "relative_au": "relative_au", "defgan": "defgan", "secgan": "secgan",
            "lssl": "lssl", "lssl-parser": "lssl"}[job.kind]


NETWORK_KINDS = ("oracle", "hier-parser", "lssl-parser", "secgan-parser", "critic-curve")  # their own loops


def job_key(job) -> str:
    """The hash of what decides a job's model (SeCGAN's parser: its own settings, not the whole SeCGAN config)."""
    if job.kind == "secgan-parser":
        from .cache import config_hash
        from .papers.secgan.config import parser_config
        return config_hash(parser_config(job.config))
    return job.key[1]


def model_jobs(profile: str = "paper") -> list:
    """Every model the chapters train at ``profile``: :func:`faceedit_nb.prebuild.shared_jobs`, and SeCGAN's
    parser P, which its first model pre-trains (a job of its own here, so that its cost has a row)."""
    from . import prebuild
    out, parsers = list(prebuild.shared_jobs(profile)), set()
    for job in list(out):
        if job.kind == "secgan" and job.config.needs_parser:
            parser = prebuild.Job("secgan-parser", f"SeCGAN's parser P ({job.config.image_size} px)", job.config)
            if job_key(parser) not in parsers:
                parsers.add(job_key(parser))
                out.append(parser)
    return out


def measure(job, iterations: int = 2) -> DryRun:
    """One job of :func:`faceedit_nb.prebuild.shared_jobs` measured in this process (see the module docstring)."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1; got {iterations}")
    gan = job.kind not in NETWORK_KINDS
    result = _measure_gan(job, iterations) if gan else _measure_network(job, iterations)
    return DryRun(label=job.label, kind=job.kind, series=series_of(job), key=job_key(job), **result)


def _measure_in_process(job, iterations: int, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="faceedit-dryrun-") as tmp:
        os.environ["FACEEDIT_CACHE"] = tmp  # nothing of a dry run reaches the real model cache
        return measure(job, iterations).__dict__


def dry_run(profile: str = "paper", *, only=(), iterations: int = 2, threads: int | None = None,
            stream=None, jobs=None) -> list[DryRun]:
    """Measure every shared model of ``profile`` (or those whose label contains one of the texts of ``only``),
    each in a fresh process (so that one model's memory is not another's), printing a line per model as it ends."""
    stream = stream or sys.stdout
    only = [only] if isinstance(only, str) else list(only)
    jobs = [j for j in (jobs if jobs is not None else model_jobs(profile))
            if not only or any(o.lower() in j.label.lower() for o in only)]
    if not jobs:
        raise ValueError(f"no {profile}-profile model's label contains {' or '.join(map(repr, only))}")
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for job in jobs:
        with ctx.Pool(1) as pool:
            row = DryRun(**pool.apply(_measure_in_process, (job, iterations, threads)))
        rows.append(row)
        print(f"  {row.label}: {row.params / 1e6:.1f} M parameters, {row.flops_per_iteration / 1e9:.1f} GFLOP per "
              f"iteration, {row.cpu_seconds_per_iteration:.1f} CPU s per iteration, peak +{row.peak_mib:.0f} MiB, "
              f"{row.iterations:,} iterations: T4 ~{row.gpu_hours('T4'):.1f} h, A100 ~{row.gpu_hours('A100'):.1f} h "
              "(estimates)", file=stream, flush=True)
    return rows


def calibration(rows: list[DryRun]) -> list[dict]:
    """What :data:`CALIBRATION` implies, with the FLOPs per iteration this dry run measured for a paper-profile
    StarGAN (8 expressions, 128 px, batch 16), scaled to each report's batch."""
    star = [r for r in rows if r.kind == "stargan" and r.image_size == 128 and r.label.startswith("StarGAN (exp")]
    if not star:
        return []
    per_sample = star[0].flops_per_iteration / star[0].batch_size
    out = []
    for c in CALIBRATION:
        flops = per_sample * c["batch_size"] * c["iterations"]
        out.append({**c, "implied_efficiency": flops / (c["hours"] * 3600 * c["gpu_fp32"])})
    return out


def update_costs(rows: list[DryRun], path=None, *, threads: int | None = None) -> str:
    """Merge ``rows`` into the chapters' record of paper-profile costs (:data:`faceedit_nb.paper_scale.COSTS_FILE`,
    a Python module), replacing the rows of the same labels, with when and where they were measured and the
    efficiencies used."""
    import platform
    import pprint
    from .paper_scale import COSTS_FILE, load_costs
    path = path or COSTS_FILE
    try:
        old = load_costs(path)["rows"]
    except (FileNotFoundError, KeyError):
        old = []
    new = {r.label: r.__dict__ for r in rows}
    merged = [new.pop(r["label"], r) for r in old] + list(new.values())
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    record = {"measured": {"when": time.strftime("%Y-%m-%d"), "cpu": cpu, "torch": torch.__version__,
                           "threads": threads},
              "gpus": GPUS, "efficiency": EFFICIENCY, "calibration": calibration([DryRun(**r) for r in merged]),
              "rows": merged}
    text = ('"""What each paper-profile model costs: written by ``python -m faceedit_nb.dryrun --update`` (do not\n'
            'edit; run it again for the models whose config changed). Read by :mod:`faceedit_nb.paper_scale`."""\n\n'
            f"COSTS = {pprint.pformat(record, width=116, sort_dicts=False)}\n")
    Path(path).write_text(text)
    return str(path)


def _hours(h: float) -> str:
    return f"{h:.2f}" if h < 1 else f"{h:.1f}" if h < 100 else f"{h:,.0f}"


def format_table(rows: list[DryRun]) -> str:
    """The dry run as a Markdown table (the README's). An epoch schedule's iterations and hours are given on
    SynthFaces' training faces and then on the paper's own data set."""
    head = ("| model | px | batch | parameters | GFLOP / iteration | CPU s / iteration | peak memory (CPU) | "
            "iterations | T4 hours (est.) | A100 hours (est.) |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]

    def both(r, fmt):
        return fmt(False) + (f" / {fmt(True)}" if r.paper_data_iterations else "")
    for r in rows:
        its = both(r, lambda p: f"{r.paper_data_iterations if p else r.iterations:,}")
        t4 = both(r, lambda p: _hours(r.gpu_hours("T4", paper_data=p)))
        a100 = both(r, lambda p: _hours(r.gpu_hours("A100", paper_data=p)))
        lines.append(f"| {r.label} | {r.image_size} | {r.batch_size} | {r.params / 1e6:.1f} M | "
                     f"{r.flops_per_iteration / 1e9:,.1f} | {r.cpu_seconds_per_iteration:.2f} | "
                     f"{r.peak_mib:,.0f} MiB | {its} | {t4} | {a100} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faceedit_nb.dryrun", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper", choices=("smoke", "cpu", "paper"))
    ap.add_argument("--only", action="append", default=[], help="measure the models whose label contains this "
                    "text (repeatable)")
    ap.add_argument("--iterations", type=int, default=2, help="measured training iterations (at least one cycle)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    ap.add_argument("--update", action="store_true", help="write the rows into faceedit_nb/paper_costs.json (the "
                    "chapters' estimates), replacing the rows of the same models")
    args = ap.parse_args(argv)
    try:
        rows = dry_run(args.profile, only=args.only, iterations=args.iterations, threads=args.threads)
    except ValueError as exc:
        ap.error(str(exc))
    print()
    print(format_table(rows))
    print("\nGPU hours: iterations x FLOPs / (peak x efficiency): "
          + ", ".join(f"{g} {p / 1e12:.0f} TFLOP/s at {EFFICIENCY[g]:.0%}" for g, p in GPUS.items())
          + ". Estimates, not measurements.")
    for c in calibration(rows):
        print(f"calibration: {c['source']}: {c['implied_efficiency']:.0%} of its GPU's fp32 peak")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in rows], f, indent=1)
    if args.update:
        path = update_costs(rows, threads=args.threads)
        print(f"wrote {len(rows)} rows into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
