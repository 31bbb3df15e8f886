"""What the ``*_step.py`` benchmarks share: a block of training iterations timed in CPU seconds.

Imported by the scripts of this folder (``python benchmarks/lssl_step.py`` puts the folder on the path).
"""
from __future__ import annotations

import time

from faceedit_nb.train import Trainer


def timed_block(step, nets: dict, opts: dict, cfg, data, run_dir: str, iters: int, start: int = 0):
    """A function that runs ``iters`` more iterations of ``step(tr, cfg, batch, i)`` (from iteration ``start``
    on, e.g. past a warm-up) on one engine and returns their CPU seconds per iteration (one thread: it barely
    depends on what else the machine runs)."""
    tr = Trainer(nets, opts, total_steps=10 ** 9, run_dir=run_dir, options=cfg, precision=cfg.precision, seed=cfg.seed,
                 snapshot_every=10 ** 9, log_every=10 ** 9, progress=False, threads=1)
    state = {"i": start}

    def block() -> float:
        t = time.process_time()
        for _ in range(iters):
            step(tr, cfg, data(state["i"]), state["i"])
            state["i"] += 1
        return (time.process_time() - t) / iters
    return block
