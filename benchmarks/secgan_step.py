"""Seconds per training iteration of SeCGAN's eight Table 1 models against their parents' cpu iterations
(the baselines' StarGAN and AttGAN), as ratios: what the series' cpu budget is planned from.

    python benchmarks/secgan_step.py                       # cpu profile, 1 thread, 3 blocks of 10 iterations
    python benchmarks/secgan_step.py --profile smoke --iters 4 --blocks 2

One iteration after the critics' warm-up (Algorithm 1: both critics with their gradient penalties and, every
N-th iteration, both generators; the cpu recipes of both parents take a generator step every iteration).
The models run in alternating blocks; the script reports the median block's CPU seconds per iteration (with
one thread it barely depends on what else runs) and its ratio to its parent's, then one warm-up step.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import torch

from faceedit_nb.methods import SynthFacesBatches
from faceedit_nb.papers import attgan as AT
from faceedit_nb.papers import secgan as SC
from faceedit_nb.papers import stargan as SG
from step_timing import timed_block  # benchmarks/step_timing.py


def _parent_blocks(profile: str, tmp: str, iters: int) -> dict:
    sg = SG.StarGANConfig.profile(profile, domain="attributes13", curve_every=0)  # the recipe SeCGAN inherits
    at = AT.chapter_configs(profile)["STGAN-diff"].replace(curve_every=0)
    blocks = {}
    for name, cfg, build, optim, step in (("StarGAN", sg, SG.build_stargan, SG.stargan_optimizers, SG.stargan_step),
                                          ("AttGAN", at, AT.build_attgan, AT.attgan_optimizers, AT.attgan_step)):
        nets = build(cfg)
        data = SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                                 flip=cfg.flip, background=getattr(cfg, "synthfaces_background", "identity"))
        blocks[name] = timed_block(step, nets, optim(cfg, nets), cfg, data, os.path.join(tmp, name), iters, cfg.d_warmup)
    return blocks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    configs = SC.series_configs(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        blocks = _parent_blocks(args.profile, tmp, args.iters)
        parent = {}
        for k, (key, cfg) in enumerate(configs.items()):
            name = " / ".join(key)
            nets = SC.build_secgan(cfg)  # P untrained: its weights do not change the cost
            blocks[name] = timed_block(SC.secgan_step, nets, SC.secgan_optimizers(cfg, nets), cfg, SC.SeCGANBatches(cfg),
                                  os.path.join(tmp, str(k)), args.iters, cfg.d_warmup)
            parent[name] = key[1]
        cfg = configs[("attributes13", "StarGAN", "secgan")]
        nets = SC.build_secgan(cfg)
        blocks["warm-up step (StarGAN / secgan)"] = timed_block(SC.secgan_step, nets, SC.secgan_optimizers(cfg, nets), cfg,
                                                           SC.SeCGANBatches(cfg), os.path.join(tmp, "w"), args.iters, 0)
        parent["warm-up step (StarGAN / secgan)"] = "StarGAN"
        times = {name: [] for name in blocks}
        for _ in range(args.blocks):
            for name, run in blocks.items():
                times[name].append(run())
    print(f"profile {args.profile}, 1 thread, {args.blocks} blocks of {args.iters} iterations, "
          f"load average {os.getloadavg()[0]:.2f}")
    base = {name: statistics.median(times[name]) for name in ("StarGAN", "AttGAN")}
    for name, t in times.items():
        m = statistics.median(t)
        ref = parent.get(name, name)
        print(f"{name:>36}: {m:.3f} CPU s/iteration, {m / base[ref]:.2f}x {ref}'s")


if __name__ == "__main__":
    main()
