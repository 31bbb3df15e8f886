"""Channels-last memory layout against the default (contiguous) one: seconds per training step and their ratio.

    python benchmarks/channels_last.py                  # the five oracles and the baselines' nets, cpu profile
    python benchmarks/channels_last.py --only oracles   # or: --only gans
    python benchmarks/channels_last.py --steps 10 --threads 2

One step is a forward pass under the device's autocast (bf16 on a CPU with native bf16), a backward pass of
the mean output and an AdamW step, on a random batch of the profile's batch size at 64 px. The two layouts
run in alternating blocks (contiguous, channels-last, contiguous, channels-last) and each reports its
fastest block, so a load that drifts affects both alike. A ratio above 1 means channels-last is faster.

Measured on the 2-core AMD EPYC (avx512_bf16) build machine, 1 thread, with two other jobs running:
the oracles 1.28 (parser) to 1.44 (AU regressor); the GANs' networks 0.75 to 1.07 (AttGAN's critic 0.76-0.79,
StarGAN's and GANimation's generators 0.93-1.04): the oracles' cpu profile trains channels-last, the GANs
do not.
"""
from __future__ import annotations

import argparse
import time

import torch

from faceedit_nb import oracles as O
from faceedit_nb.device import autocast, memory_layout
from faceedit_nb.papers import attgan as AT
from faceedit_nb.papers import ganimation as GA
from faceedit_nb.papers import stargan as SG


def step_seconds(net: torch.nn.Module, inputs: list[torch.Tensor], *, channels_last: bool, steps: int) -> float:
    """Mean seconds of ``steps`` training steps (after 2 warm-up steps) in the given layout."""
    layout = memory_layout(channels_last)
    net = net.to(memory_format=layout)
    inputs = [x.contiguous(memory_format=layout) if x.dim() == 4 else x for x in inputs]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    for k in range(steps + 2):
        if k == 2:
            start = time.perf_counter()
        with autocast("cpu"):
            out = net(*inputs)
        out = out[0] if isinstance(out, tuple) else out
        out.float().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def cases(only: str) -> dict[str, tuple[torch.nn.Module, list[torch.Tensor]]]:
    """``{name: (network, inputs)}`` at the cpu profile's sizes."""
    torch.manual_seed(0)
    out = {}
    if only in ("all", "oracles"):
        for name, cfg in O.oracle_configs("cpu", 64).items():
            out[f"oracle {name}"] = (O._build(name, cfg), [torch.randn(cfg.batch_size, 3, 64, 64)])
    if only in ("all", "gans"):
        sg = SG.StarGANConfig.profile("cpu")
        at = AT.AttGANConfig.profile("cpu")
        ga = GA.GANimationConfig.profile("cpu")
        sgn, atn, gan = SG.build_stargan(sg), AT.build_attgan(at), GA.build_ganimation(ga)
        x16 = torch.randn(16, 3, 64, 64)
        out.update({
            "stargan G": (sgn["G"], [torch.randn(sg.batch_size, 3, 64, 64), torch.rand(sg.batch_size, sg.c_dim)]),
            "attgan G": (atn["G"], [torch.randn(at.batch_size, 3, 64, 64), torch.rand(at.batch_size, 13)]),
            "attgan D": (atn["D"], [torch.randn(at.batch_size, 3, 64, 64)]),
            "ganimation G": (gan["G"], [x16, torch.rand(16, 17)]),
            "ganimation D": (gan["D"], [x16]),
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("all", "oracles", "gans"), default="all")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name, (net, inputs) in cases(args.only).items():
        times = {False: [], True: []}
        for channels_last in (False, True, False, True):
            times[channels_last].append(step_seconds(net, inputs, channels_last=channels_last, steps=args.steps))
        a, b = min(times[False]), min(times[True])
        print(f"{name:18s} contiguous {a:.3f} s/step  channels-last {b:.3f} s/step  ratio {a / b:.2f}", flush=True)


if __name__ == "__main__":
    main()
