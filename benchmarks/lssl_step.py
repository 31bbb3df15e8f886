"""Seconds per training iteration of LSSL's models against StarGAN's (the baselines' expression model) at the
same profile, as ratios (what the series' cpu budget is planned from).

    python benchmarks/lssl_step.py                       # cpu profile, 1 thread, 3 blocks of 10 iterations
    python benchmarks/lssl_step.py --profile smoke --iters 4 --blocks 2

One iteration after the critic's warm-up: a critic step with its gradient penalty and, every ``n_critic``,
a generator step (both LSSL's and StarGAN's cpu recipes take one every iteration). The variants run in
alternating blocks; the script reports the median block's CPU seconds per iteration (with one thread it barely
depends on what else runs), the ratio to StarGAN's, and one warm-up step of LSSL's class head.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from functools import partial

import torch

from faceedit_nb.methods import SynthFacesBatches
from faceedit_nb.papers import lssl as LS
from faceedit_nb.papers import stargan as SG
from step_timing import timed_block  # benchmarks/step_timing.py


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sg = SG.chapter_configs(args.profile)["expression"].replace(curve_every=0)
    sg_data = SynthFacesBatches(sg.image_size, sg.n_train, sg.batch_size, n_identities=sg.n_identities,
                                flip=sg.flip, background=sg.synthfaces_background)
    configs = {**LS.series_configs(args.profile), "pose normalisation": LS.pose_configs(args.profile)["LSSL"],
               "SimGAN refiner": LS.pose_configs(args.profile)["SimGAN"]}
    with tempfile.TemporaryDirectory() as tmp:
        nets = SG.build_stargan(sg)
        blocks = {"StarGAN": timed_block(SG.stargan_step, nets, SG.stargan_optimizers(sg, nets), sg, sg_data,
                                    os.path.join(tmp, "sg"), args.iters, sg.d_warmup)}
        parser = LS.load_parser(configs["LSSL"])[0]
        for k, (name, cfg) in enumerate(configs.items()):
            nets = LS.build_lssl(cfg)
            blocks[name] = timed_block(partial(LS.lssl_step, parser=parser), nets, LS.lssl_optimizers(cfg, nets), cfg,
                                  LS.LSSLBatches(cfg), os.path.join(tmp, str(k)), args.iters, cfg.d_warmup)
        cfg = configs["LSSL"]
        nets = LS.build_lssl(cfg)
        blocks["LSSL warm-up step"] = timed_block(partial(LS.lssl_step, parser=parser), nets, LS.lssl_optimizers(cfg, nets),
                                             cfg, LS.LSSLBatches(cfg), os.path.join(tmp, "w"), args.iters, 0)
        times = {name: [] for name in blocks}
        for _ in range(args.blocks):
            for name, run in blocks.items():
                times[name].append(run())
    print(f"profile {args.profile}, 1 thread, {args.blocks} blocks of {args.iters} iterations, "
          f"load average {os.getloadavg()[0]:.2f}")
    base = statistics.median(times["StarGAN"])
    for name, t in times.items():
        m = statistics.median(t)
        print(f"{name:>24}: {m:.3f} CPU s/iteration, {m / base:.2f}x StarGAN's")


if __name__ == "__main__":
    main()
