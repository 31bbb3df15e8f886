"""SynthFaces rendering speed on this machine, masks and landmarks included.

Prints samples per second for two ways of reading the data set and the ratio to the bars of
shared/specs/synthfaces.md (1,000 samples/s at 64 x 64 and 250 samples/s at 128 x 128 on 2 cores):

* ``batch``: one process rendering batches with ``SynthFaces.batch`` (torch uses every core);
* ``loader``: a ``DataLoader`` with one single-threaded worker per core, as a training loop reads it.

    python benchmarks/synthfaces_speed.py [--sizes 64 128] [--samples 2048] [--batch-size 64]
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader

from faceedit_nb.data import SynthFaces

BARS = {64: 1000.0, 128: 250.0}


def _worker_init(_):
    torch.set_num_threads(1)


def bench_batch(size: int, samples: int, batch_size: int) -> float:
    ds = SynthFaces("train", size=size, n=samples + batch_size)
    ds.batch(torch.arange(batch_size))  # warm-up: textures, allocator
    t = time.perf_counter()
    for lo in range(batch_size, samples + batch_size, batch_size):
        ds.batch(torch.arange(lo, lo + batch_size))
    return samples / (time.perf_counter() - t)


def bench_loader(size: int, samples: int, batch_size: int, workers: int) -> float:
    ds = SynthFaces("train", size=size, n=samples + 2 * workers * batch_size)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, worker_init_fn=_worker_init,
                        persistent_workers=False, prefetch_factor=4)
    it = iter(loader)
    for _ in range(2 * workers):  # warm-up: start the workers
        next(it)
    t = time.perf_counter()
    seen = 0
    for batch in it:
        seen += len(batch["image"])
    return seen / (time.perf_counter() - t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    print(f"cores={os.cpu_count()} torch_threads={torch.get_num_threads()} workers={args.workers}")
    for size in args.sizes:
        bar = BARS.get(size)
        for name, fn in (("batch", lambda: bench_batch(size, args.samples, args.batch_size)),
                         ("loader", lambda: bench_loader(size, args.samples, args.batch_size, args.workers))):
            rate = fn()
            ratio = f" ratio_to_bar={rate / bar:.2f} (bar {bar:.0f}/s)" if bar else ""
            print(f"size={size} mode={name} samples_per_s={rate:.0f}{ratio}", flush=True)


if __name__ == "__main__":
    main()
