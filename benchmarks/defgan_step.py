"""Seconds per training iteration of DefGAN and of its ablations against GANimation's at the same profile, as
ratios (what the series' cpu budget is planned from).

    python benchmarks/defgan_step.py                       # cpu profile, 1 thread, 3 blocks of 10 iterations
    python benchmarks/defgan_step.py --profile smoke --iters 4 --blocks 2

One iteration: a critic step, its gradient-penalty step and, every ``train_G_every_n_iterations``, a
generator step (every 10 in DefGAN's config, the paper's; every 5 in GANimation's), so each
block is a whole number of generator cycles of both. The variants run in alternating blocks on the same
in-memory SynthFaces batches; the script reports the median block's CPU seconds per iteration (with one
thread it barely depends on what else runs) and the ratio to GANimation's.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import torch

from faceedit_nb.papers import defgan as DG
from faceedit_nb.papers import ganimation as GA
from step_timing import timed_block  # benchmarks/step_timing.py


def _trainer(step, build, opts, cfg, data, tmp, iters):
    nets = build(cfg)
    return timed_block(step, nets, opts(cfg, nets), cfg, data, tmp, iters)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--iters", type=int, default=10, help="iterations per block (a multiple of both G periods)")
    ap.add_argument("--blocks", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ga = GA.GANimationConfig.profile(args.profile, curve_every=0)
    variants = {"GANimation": (GA.ganimation_step, GA.build_ganimation, GA.ganimation_optimizers, ga)}
    for name, cfg in DG.series_configs(args.profile, curve_every=0).items():
        if name in ("DefGAN", "w/o texture"):
            embed = DG.identity_network(cfg)
            variants[name] = (lambda tr, c, b, i, e=embed: DG.defgan_step(tr, c, b, i, embed=e), DG.build_defgan,
                              DG.defgan_optimizers, cfg)
    data = GA.GANimationBatches(ga)
    with tempfile.TemporaryDirectory() as tmp:
        blocks = {name: _trainer(*v[:3], v[3], data, os.path.join(tmp, str(k)), args.iters)
                  for k, (name, v) in enumerate(variants.items())}
        times = {name: [] for name in blocks}
        for b in range(args.blocks):
            for name, run in blocks.items():
                times[name].append(run())
    print(f"profile {args.profile}, 1 thread, {args.blocks} blocks of {args.iters} iterations, "
          f"load average {os.getloadavg()[0]:.2f}")
    base = statistics.median(times["GANimation"])
    for name, t in times.items():
        m = statistics.median(t)
        print(f"{name:>14}: {m:.3f} CPU s/iteration, {m / base:.2f}x GANimation's")


if __name__ == "__main__":
    main()
