"""The device, chosen once, and the mixed-precision policy: bf16 autocast on CPU, fp16 AMP on CUDA.

    from faceedit_nb.device import DEVICE, autocast, seed_everything
    with autocast():
        loss = model(x.to(DEVICE))

``FACEEDIT_DEVICE=cpu`` (or ``cuda``, ``cuda:1``) overrides the choice; ``FACEEDIT_AUTOCAST=0`` turns
mixed precision off (fp32 everywhere), e.g. to compare against it in a benchmark.
"""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

__all__ = ["DEVICE", "pick_device", "autocast", "autocast_dtype", "seed_everything", "grad_scaler", "torch_threads"]


def pick_device() -> torch.device:
    """``$FACEEDIT_DEVICE`` if set, else the first CUDA GPU if there is one, else the CPU."""
    name = os.environ.get("FACEEDIT_DEVICE")
    if name:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"FACEEDIT_DEVICE={name} but torch sees no CUDA GPU; unset it or use cpu")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DEVICE = pick_device()


def autocast_dtype(device: torch.device | str = DEVICE) -> torch.dtype | None:
    """bf16 on CPU, fp16 on CUDA, None when mixed precision is turned off."""
    if os.environ.get("FACEEDIT_AUTOCAST", "1") == "0":
        return None
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def autocast(device: torch.device | str = DEVICE, enabled: bool = True):
    """The mixed-precision context for forward passes on ``device`` (a no-op when disabled)."""
    dtype = autocast_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(device: torch.device | str = DEVICE) -> torch.amp.GradScaler:
    """A gradient scaler for fp16 on CUDA; disabled (a pass-through) for bf16 and fp32."""
    on = torch.device(device).type == "cuda" and autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler(torch.device(device).type, enabled=on)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch CPU threads (``None`` or 0: leave the setting), restored afterwards.
    On a machine shared with other jobs, 1 thread per process keeps OpenMP from slowing to a crawl."""
    if n is not None and n < 0:
        raise ValueError(f"threads must be at least 1 (or None to leave the setting); got {n}")
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
