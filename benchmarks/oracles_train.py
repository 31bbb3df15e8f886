"""Training speed of the oracle networks (cpu profile sizes, 64 px): fp32 vs bf16 autocast, 1 vs 2 threads.

Prints milliseconds per training step (forward, backward, AdamW step) of each network at its cpu-profile
batch size, and the ratios bf16 / fp32 and 2 threads / 1 thread (below 1: faster). The load average
is printed too: on a shared machine, other processes change the numbers, and a bf16 step with as many
threads as cores slows down much more than an fp32 step when the cores are busy.

    python benchmarks/oracles_train.py [--steps 5] [--only expression parser]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from faceedit_nb.device import autocast
from faceedit_nb.oracles import ORACLES, _build, oracle_configs


def step_ms(name: str, cfg, threads: int, bf16: bool, steps: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = _build(name, cfg).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(cfg.batch_size, 3, cfg.size, cfg.size) * 2 - 1
    for i in range(steps + 1):
        if i == 1:  # the first step warms up the allocator and oneDNN's kernels
            t = time.perf_counter()
        with autocast("cpu", enabled=bf16):
            out = net(x)
        loss = out.float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / steps * 1000


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", nargs="+", default=list(ORACLES), choices=ORACLES)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    configs = oracle_configs("cpu", size=args.size)
    print(f"cores={os.cpu_count()} load average (1, 5, 15 min)={os.getloadavg()}")
    print(f"{'oracle':12s} {'batch':>5s} {'fp32/1':>8s} {'fp32/2':>8s} {'bf16/1':>8s} {'bf16/2':>8s}"
          f" {'bf16/fp32 (2 thr)':>18s} {'2 thr/1 thr (bf16)':>19s}")
    for name in args.only:
        cfg = configs[name]
        ms = {(p, t): step_ms(name, cfg, t, p == "bf16", args.steps) for p in ("fp32", "bf16") for t in (1, 2)}
        print(f"{name:12s} {cfg.batch_size:5d} " + " ".join(f"{ms[k]:8.0f}" for k in
              (("fp32", 1), ("fp32", 2), ("bf16", 1), ("bf16", 2)))
              + f" {ms['bf16', 2] / ms['fp32', 2]:18.2f} {ms['bf16', 2] / ms['bf16', 1]:19.2f}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
