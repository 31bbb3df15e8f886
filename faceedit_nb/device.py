"""The device, chosen once, and the mixed-precision policy: bf16 autocast on CPU, fp16 AMP on CUDA.

bf16 on the CPU only where the CPU computes in bf16 (oneDNN's check: AVX-512 BF16 or AMX). Elsewhere
oneDNN emulates it, and a StarGAN critic step at 64 px took 2.85 s in bf16 against 0.093 s in fp32 on an
AVX2-only AMD EPYC (31x slower, measured), so there the policy is fp32.

    from faceedit_nb.device import DEVICE, autocast, seed_everything
    with autocast():
        loss = model(x.to(DEVICE))

``FACEEDIT_DEVICE=cpu`` (or ``cuda``, ``cuda:1``) overrides the choice; ``FACEEDIT_AUTOCAST=0`` turns
mixed precision off (fp32 everywhere), e.g. to compare against it in a benchmark; ``FACEEDIT_AUTOCAST=bf16``
uses bf16 on a CPU even without native support.
"""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

__all__ = ["DEVICE", "pick_device", "autocast", "autocast_dtype", "cpu_has_native_bf16", "memory_layout",
           "seed_everything", "grad_scaler", "torch_threads"]


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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 convolutions and matrix products natively (oneDNN's own check)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def memory_layout(channels_last: bool) -> torch.memory_format:
    """The memory format for ``Module.to`` / ``Tensor.to``: channels-last (faster convolutions with bf16 on a CPU
    with oneDNN, for batch-normed classifiers; other rounding) or the default contiguous one."""
    return torch.channels_last if channels_last else torch.contiguous_format


def autocast_dtype(device: torch.device | str = DEVICE) -> torch.dtype | None:
    """fp16 on CUDA; bf16 on a CPU with native bf16; None (fp32) on other CPUs or when turned off."""
    flag = os.environ.get("FACEEDIT_AUTOCAST", "1")
    if flag == "0":
        return None
    if torch.device(device).type == "cuda":
        return torch.float16
    return torch.bfloat16 if flag == "bf16" or cpu_has_native_bf16() else None


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
