"""Seconds per training iteration of Bodur et al.'s hierarchical GAN at candidate settings on this machine.

    python benchmarks/hierarchical_step.py                       # the cpu profile and its neighbours
    python benchmarks/hierarchical_step.py --candidates cpu      # only the cpu profile
    python benchmarks/hierarchical_step.py --iters 40 --threads 1

One iteration is one call of :func:`faceedit_nb.papers.seg_hierarchical.hierarchical_step` through the engine
(:meth:`faceedit_nb.train.Trainer.iterate`, bf16 autocast on CPU): a critic step on the six branches and,
every ``n_critic`` iterations, a generator step (with the parser when end-to-end). Iterations are timed in
blocks of ``n_critic`` (one generator step each) after ``--warmup`` iterations; the script prints the
median block time per iteration, the CPU time per iteration (with ``--threads 1`` it barely depends on
what else runs on a shared machine), the ratio of each candidate to the first, the training minutes its
``steps`` would take, and the load average before and after. Data: SynthFaces rendered into memory once.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from faceedit_nb.papers import seg_hierarchical as S
from faceedit_nb.train import Trainer

# name -> overrides of the cpu profile
CANDIDATES = {
    "cpu": {},
    "cpu-rect": dict(parts="rectangular"),
    "cpu-frozen": dict(end_to_end=False),
    "cpu-bisenet": dict(parser="bisenet"),
    "train-global": dict(train_global=True),
    "scratch-w8": dict(global_from="", train_global=True, g_conv_dim=8, d_conv_dim=8, fusion_dim=8, g_repeat=3),
    "w8": dict(g_conv_dim=8, d_conv_dim=8, fusion_dim=8),
    "w16": dict(g_conv_dim=16, d_conv_dim=16, fusion_dim=16),
    "w16-r3": dict(g_conv_dim=16, d_conv_dim=16, fusion_dim=16, g_repeat=3),
    "fp32": dict(precision="fp32"),
}


def measure(name: str, overrides: dict, iters: int, warmup: int, threads: int) -> dict:
    cfg = S.config_for("cpu", n_train=256, n_identities=32, **overrides)
    model = S.build_hierarchical(cfg)
    opts = S.hierarchical_optimizers(cfg, model)
    data = S.HierarchicalBatches(cfg)
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer({"model": model}, opts, total_steps=10 ** 9, run_dir=d, precision=cfg.precision,
                     progress=False, seed=0)
        torch.set_num_threads(threads)
        for m in tr.models.values():
            m.train()
        step = lambda b, i: S.hierarchical_step(tr, cfg, b, i)  # noqa: E731
        for _ in range(warmup):
            tr.iterate(step, data)
        blocks, cpu = [], []
        for _ in range(max(1, iters // cfg.n_critic)):
            t, c = time.perf_counter(), time.process_time()
            for _ in range(cfg.n_critic):
                tr.iterate(step, data)
            blocks.append((time.perf_counter() - t) / cfg.n_critic)
            cpu.append((time.process_time() - c) / cfg.n_critic)
    return {"name": name, "sec_per_iter": statistics.median(blocks), "cpu_per_iter": statistics.median(cpu),
            "steps": cfg.steps, "settings": overrides or "cpu profile"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per candidate")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rows = [measure(n, CANDIDATES[n], args.iters, args.warmup, args.threads) for n in args.candidates]
    base = rows[0]["sec_per_iter"]
    for r in rows:
        print(f"{r['name']:12s} sec_per_iter={r['sec_per_iter']:.3f} cpu_per_iter={r['cpu_per_iter']:.3f} "
              f"ratio={r['sec_per_iter'] / base:.2f} minutes_for_{r['steps']}_steps="
              f"{r['sec_per_iter'] * r['steps'] / 60:.1f}  {r['settings']}")
    print(f"load average after: {os.getloadavg()}")
    print(f"sec_per_iter={rows[0]['sec_per_iter']:.3f}")


if __name__ == "__main__":
    main()
