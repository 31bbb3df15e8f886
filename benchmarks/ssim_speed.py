"""Speed of the book's SSIM (``faceedit_nb.metrics.image.ssim``: the Gaussian window as two banded matrix
products) against torchmetrics' ``structural_similarity_index_measure`` (one grouped 11 x 11 convolution),
on the same SynthFaces batches, with the largest difference between the two.

    python benchmarks/ssim_speed.py [--n 200] [--size 64] [--threads 1] [--repeat 5]

The machine may be shared: the load average is printed with the result.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from faceedit_nb.data import SynthFaces
from faceedit_nb.metrics.image import ssim


def _seconds(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images per batch")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = SynthFaces("test", size=args.size, n=args.n).batch(torch.arange(args.n))["image"]
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    ours = _seconds(lambda: ssim(x, y), args.repeat)
    theirs = _seconds(lambda: structural_similarity_index_measure((x + 1) / 2, (y + 1) / 2, data_range=1.0,
                                                                  reduction="none"), args.repeat)
    diff = (ssim(x, y) - structural_similarity_index_measure((x + 1) / 2, (y + 1) / 2, data_range=1.0,
                                                             reduction="none")).abs().max().item()
    print(f"SSIM of {args.n} images at {args.size} px, {args.threads} thread(s), load {os.getloadavg()[0]:.1f}")
    print(f"  torchmetrics: {theirs * 1e3:.1f} ms   ours: {ours * 1e3:.1f} ms   ratio {theirs / ours:.2f}x faster")
    print(f"  largest difference: {diff:.2e}")


if __name__ == "__main__":
    main()
