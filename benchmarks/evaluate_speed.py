"""Speed of the evaluation harness: ``evaluate`` on SynthFaces test images with the ground-truth editor.

Runs the RaFD-style expression protocol (every image to each of the 8 expressions) on ``--n`` test
images at ``--size`` px with the oracles of ``--profile``, and prints the seconds taken, images and edits
per second, where the time goes (data, editor, oracles, ground truth, statistics), and the ratio to the
bar of the evaluation chapter (1,000 test images in 3 minutes on 2 cores).

    python benchmarks/evaluate_speed.py [--n 1000] [--size 64] [--profile cpu] [--protocol expression]
                                        [--threads 2] [--batch-size 100]

The machine may be shared: the load average is printed with the result.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from faceedit_nb.data import SynthFaces
from faceedit_nb.metrics import evaluate, ground_truth_editor
from faceedit_nb.oracles import load_oracles

BAR_SECONDS_PER_1000 = 180.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="test images")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--profile", default="cpu", help="oracle profile (smoke, cpu, paper)")
    ap.add_argument("--protocol", default="expression")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--compare-contiguous", action="store_true",
                    help="run it again with every oracle reading in the contiguous layout (before stop 32 they "
                         "did; they are trained channels-last) and print the ratio and the metrics of both")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    oracles = load_oracles(size=args.size, profile=args.profile)
    print(f"oracles ({args.profile}) ready in {time.perf_counter() - t:.1f} s (trained once, then cached)")
    n_ids = max(1, args.n // 16)
    test = SynthFaces("test", size=args.size, n=args.n, n_identities=n_ids)
    evaluate(ground_truth_editor(test), test, oracles, protocol=args.protocol, n=min(args.n, 2 * args.batch_size),
             batch_size=args.batch_size, kid_subsets=2)  # warm-up: textures, allocator, kernels
    table = evaluate(ground_truth_editor(test), test, oracles, protocol=args.protocol, batch_size=args.batch_size)
    m = table.meta
    sec = m["seconds"]
    print(f"cores={os.cpu_count()} torch_threads={torch.get_num_threads()} "
          f"load_average={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"evaluate: protocol={args.protocol} size={args.size} images={m['n_images']} edits={m['n_edits']}")
    print(f"  {sec['total']:.1f} s, {m['n_images'] / sec['total']:.1f} test images/s, "
          f"{m['n_edits'] / sec['total']:.1f} edits/s")
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in sec.items() if k != "total"))
    per_1000 = sec["total"] * 1000 / m["n_images"]
    print(f"  {per_1000:.0f} s per 1,000 test images; ratio to the {BAR_SECONDS_PER_1000:.0f} s bar: "
          f"{BAR_SECONDS_PER_1000 / per_1000:.2f}x")
    if args.compare_contiguous:
        _compare_contiguous(oracles, test, table, args)


def _compare_contiguous(oracles, test, table, args) -> None:
    """The same evaluation with every oracle reading contiguous tensors: seconds ratio, metrics side by side."""
    for name, net in oracles.nets.items():
        if net is not None:
            net.to(memory_format=torch.contiguous_format)
            oracles.configs[name] = dataclasses.replace(oracles.configs[name], channels_last=False)
    other = evaluate(ground_truth_editor(test), test, oracles, protocol=args.protocol, batch_size=args.batch_size)
    a, b = table.meta["seconds"], other.meta["seconds"]
    print(f"contiguous reading: {b['total']:.1f} s (oracles {b['oracles']:.1f} s); the trained layout is "
          f"{b['total'] / a['total']:.2f}x faster in all, {b['oracles'] / a['oracles']:.2f}x in the oracles")
    for metric in table.metrics():
        print(f"  {metric}: {table.value(metric):.6g} (trained layout) vs {other.value(metric):.6g} (contiguous)")


if __name__ == "__main__":
    main()
