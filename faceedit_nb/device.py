"""The device, chosen once, and the mixed-precision policy: bf16 autocast on a CPU that computes it, on CUDA bf16
where the GPU has it (Ampere and later: A100, L4) and fp16 with a gradient scaler otherwise (T4, V100).

bf16 on the CPU only where the CPU computes in bf16 (oneDNN's check: AVX-512 BF16 or AMX). Elsewhere
oneDNN emulates it, and a StarGAN critic step at 64 px took 2.85 s in bf16 against 0.093 s in fp32 on an
AVX2-only AMD EPYC (31x slower, measured), so there the policy is fp32.

    from faceedit_nb.device import DEVICE, autocast, seed_everything
    with autocast():
        loss = model(x.to(DEVICE))

``FACEEDIT_DEVICE=cpu`` (or ``cuda``, ``cuda:1``) overrides the choice; ``FACEEDIT_AUTOCAST=0`` turns
mixed precision off (fp32 everywhere), e.g. to compare against it in a benchmark; ``FACEEDIT_AUTOCAST=bf16``
uses bf16 on a CPU even without native support, ``FACEEDIT_AUTOCAST=fp16`` fp16 on a GPU that has bf16.

Two more switches of the training engine, for GPUs (:func:`channels_last_default`, :func:`compiled_models`): the
networks in channels-last memory layout (``FACEEDIT_CHANNELS_LAST``: on by default on CUDA, off on the CPU) and
``torch.compile`` of named networks (``FACEEDIT_COMPILE=G``; off by default). On the CPU nothing changes unless
asked: channels-last made the GANs' steps 0.75-1.07x as fast here (``benchmarks/channels_last.py``), and a
compiled critic cannot take the gradient penalty's double backward.
"""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

__all__ = ["DEVICE", "pick_device", "autocast", "autocast_dtype", "cpu_has_native_bf16", "memory_layout",
           "channels_last_default", "compiled_models", "compile_backend", "seed_everything", "grad_scaler",
           "torch_threads"]


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
    """On CUDA bf16 where the GPU computes it, else fp16 (the engine then scales the losses); bf16 on a CPU with
    native bf16; None (fp32) on other CPUs or when turned off (``FACEEDIT_AUTOCAST``)."""
    flag = os.environ.get("FACEEDIT_AUTOCAST", "1")
    if flag == "0":
        return None
    if torch.device(device).type == "cuda":
        if flag == "fp16":
            return torch.float16
        return torch.bfloat16 if flag == "bf16" or torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if flag == "bf16" or cpu_has_native_bf16() else None


def _switch(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "default"):
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r}: use 1 (on) or 0 (off)")


def channels_last_default(device: torch.device | str = DEVICE) -> bool:
    """Whether the engine trains in channels-last layout: ``FACEEDIT_CHANNELS_LAST`` (1 / 0), else on CUDA only
    (tensor cores read NHWC; on this project's CPUs it did not speed the GANs up)."""
    return _switch("FACEEDIT_CHANNELS_LAST", torch.device(device).type == "cuda")


def compiled_models() -> tuple[str, ...]:
    """The networks the engine compiles with ``torch.compile``: ``FACEEDIT_COMPILE`` names them, comma-separated
    (``G``; ``1`` means ``G``, the generator), none by default. Only networks without the gradient penalty's double
    backward through them can be compiled (so not the critics)."""
    value = os.environ.get("FACEEDIT_COMPILE", "").strip()
    if value.lower() in ("", "0", "false", "no", "off"):
        return ()
    if value.lower() in ("1", "true", "yes", "on"):
        return ("G",)
    return tuple(v.strip() for v in value.split(",") if v.strip())


def compile_backend() -> str:
    """``torch.compile``'s backend for :func:`compiled_models`: ``FACEEDIT_COMPILE_BACKEND``, else "inductor"."""
    return os.environ.get("FACEEDIT_COMPILE_BACKEND", "inductor")


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
