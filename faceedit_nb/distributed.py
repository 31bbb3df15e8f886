"""Data-parallel training over several processes (one per GPU, or CPU processes with gloo), launched by torchrun.

    torchrun --nproc_per_node 4 -m faceedit_nb.parallel --method stargan --profile paper   # the command

Every process runs the same training code; the engine (:class:`faceedit_nb.train.Trainer`) does the rest, the
way NVlabs/stylegan2-ada-pytorch's training loop does it without a DDP wrapper:

* **one global batch.** ``batch_size`` stays the paper's batch, split over the processes: every process asks the
  data for the whole batch of the step (a function of the step) and keeps its slice (:func:`shard`), so
  ``batch_size`` must be a multiple of the number of processes;
* **gradients averaged** after every backward pass (:func:`average_gradients`), before the optimiser steps: a loss
  that is a mean over the batch's samples has the mean of the processes' gradients as its whole-batch gradient;
  the losses that sum over the batch (the total variations) or divide by it twice (GANimation's ``MSE / B``) are
  written with :func:`batch_sum` and :func:`global_batch`. The gradient penalty's double backward stays inside
  each process, and the ``n_critic`` schedule is a function of the step, the same in every process;
* **randomness drawn for the whole batch.** Each process holds the same random state and draws what a single
  process would draw for the whole batch, then keeps its slice: the points of the gradient penalty
  (:func:`uniform`) and the shuffled target labels (:func:`shuffled`: the batch's labels are gathered first).
  So a run on N processes equals single-process training on the combined batch, within float tolerance, and
  every process's random state stays that of the single process;
* **batch statistics over the whole batch**: the BatchNorm layers of a trained model (AttGAN's generator, the
  parsers trained end to end) normalise with the statistics of the global batch (:func:`sync_batch_norm`;
  torch's ``SyncBatchNorm`` runs on GPUs only, this one also on the CPU); the running statistics of instance
  norms (StarGAN's) and the logged losses are averaged over the processes after each iteration;
* **one writer.** Process 0 writes the run directory (options, stats, samples, snapshots) and the model cache;
  every process resumes from the same snapshot, so a run resumes on any number of processes, and a run killed
  (SIGKILL included; a worker dies with its launcher) continues from its last snapshot when the same command is
  run again.

On one process (no torchrun) every function here is what the code did before: :func:`shuffled` and
:func:`uniform` draw the same numbers, :func:`shard` and :func:`average_gradients` do nothing.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import sys
from typing import Any, Iterable, Mapping

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["world_size", "rank", "is_main", "alone", "init_from_env", "shard", "global_batch", "batch_sum", "uniform",
           "shuffled", "average_gradients", "average_running_stats", "mean_values", "agree", "barrier",
           "broadcast_modules", "sync_batch_norm"]

_ALONE = [0]  # depth of alone() blocks: inside one, this process acts as if it trained by itself


def world_size() -> int:
    """Processes training together (1 without torchrun, or inside :func:`alone`)."""
    if _ALONE[0] or not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    """Whether this process writes the run directory and the model cache (rank 0, or a single process)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@contextlib.contextmanager
def alone():
    """A block only this process runs (process 0's learning-curve points, sample grids): nothing in it waits for
    the other processes, and models it loads from the cache are loaded (or trained) by this process alone."""
    _ALONE[0] += 1
    try:
        yield
    finally:
        _ALONE[0] -= 1


def init_from_env(timeout_minutes: float = 180.0) -> int:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``);
    NCCL with one GPU per process when CUDA is there, else gloo on the CPU. Returns the number of processes
    (1, and nothing done, without torchrun). ``timeout_minutes`` bounds how long a process waits for the
    others (process 0 alone measures the learning curve's points)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or dist.is_initialized():
        return world_size()
    _die_with_the_launcher()
    if torch.cuda.is_available() and os.environ.get("FACEEDIT_DEVICE", "cuda").startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"process with LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) are "
                               "visible: pass --nproc_per_node at most the number of GPUs")
        torch.cuda.set_device(local)  # "cuda" (faceedit_nb.device.DEVICE) now means this process's GPU
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    return world_size()


def _die_with_the_launcher() -> None:
    """On Linux, this process gets SIGKILL when torchrun (its parent) dies: torchrun starts each worker in a
    session of its own, so a launcher killed with SIGKILL would otherwise leave the workers training on, and the
    run started again to resume it would share the run directory with them."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # another C library: the workers then outlive a killed launcher
        return
    if os.getppid() == 1:  # the launcher died before the call
        os._exit(1)


def shard(batch: Any, size: int | None = None, index: int | None = None) -> Any:
    """This process's slice of a global batch: every tensor whose first dimension is the batch's (the length
    of ``batch["image"]``, or of the first tensor found) is cut into ``size`` equal parts, part ``index`` kept;
    other values pass unchanged. Defaults: :func:`world_size`, :func:`rank`."""
    size = world_size() if size is None else size
    index = rank() if index is None else index
    if size == 1:
        return batch
    n = _batch_length(batch)
    if n is None:
        return batch
    if n % size:
        raise ValueError(f"the global batch of {n} samples does not split over {size} processes: set batch_size "
                         f"to a multiple of {size}, or run on a number of processes that divides {n}")
    per = n // size
    return _cut(batch, n, slice(index * per, (index + 1) * per))


def _batch_length(batch: Any) -> int | None:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() else None
    if isinstance(batch, Mapping):
        if isinstance(batch.get("image"), torch.Tensor):
            return batch["image"].shape[0]
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for v in batch:
            n = _batch_length(v)
            if n is not None:
                return n
    return None


def _cut(batch: Any, n: int, part: slice) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[part] if batch.dim() and batch.shape[0] == n else batch
    if isinstance(batch, Mapping):
        return {k: _cut(v, n, part) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_cut(v, n, part) for v in batch)
    return batch


def global_batch(n: int) -> int:
    """The whole batch's size, for ``n`` samples in this process (a loss that divides by the batch size, as
    GANimation's ``MSELoss / B``, divides by this)."""
    return n * world_size()


def batch_sum(total):
    """A loss (or a logged count) summed over the batch's samples (the total variations of GANimation and DefGAN,
    Bodur et al.'s parts not found), as this process contributes it to the whole batch's sum: the engine averages
    the processes' gradients and logged values, so the local sum is scaled by their number (one process:
    ``total`` itself)."""
    size = world_size()
    return total if size == 1 else total * size


def uniform(n: int, *shape: int, device=None, dtype: torch.dtype | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """``U(0, 1)`` draws for ``n`` samples of this process's slice (shape ``(n, *shape)``), taken from what one
    process draws for the whole batch (all processes draw the same numbers and keep their slices)."""
    size = world_size()
    if size == 1:
        return torch.rand(n, *shape, generator=generator, device=device, dtype=dtype)
    draws = torch.rand(n * size, *shape, generator=generator, dtype=dtype)  # the CPU stream every process shares
    r = rank()
    return draws[r * n:(r + 1) * n].to(device)


def shuffled(x: torch.Tensor) -> torch.Tensor:
    """``x`` (one row per sample) in a random order of the whole batch: ``x[torch.randperm(len(x))]`` on one
    process; on several, the rows of the global batch in one permutation, this process's slice of it (the
    target labels StarGAN, AttGAN, SeCGAN, LSSL and Bodur et al. draw)."""
    size = world_size()
    if size == 1:
        return x[torch.randperm(len(x)).to(x.device)]
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    everything = torch.cat(parts)
    order = torch.randperm(len(everything)).to(x.device)
    r, n = rank(), len(x)
    return everything[order][r * n:(r + 1) * n]


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each gradient by its mean over the processes (one flat all-reduce; parameters without a
    gradient are skipped, the same ones in every process)."""
    size = world_size()
    if size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average_running_stats(modules: Iterable[nn.Module]) -> None:
    """Average the running statistics of the norm layers (``running_mean``, ``running_var``) over the processes:
    an instance norm that tracks them (StarGAN's) updates them with each process's half of the batch, and the
    update is linear, so their mean is what one process updates on the whole batch."""
    if world_size() == 1:
        return
    stats = [b for m in modules for name, b in m.named_buffers()
             if name.rsplit(".", 1)[-1] in ("running_mean", "running_var")]
    if stats:
        flat = torch.cat([b.reshape(-1).float() for b in stats])
        dist.all_reduce(flat)
        flat /= world_size()
        offset = 0
        for b in stats:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def mean_values(values: Mapping[str, float]) -> dict[str, float]:
    """Logged numbers (one per loss) averaged over the processes: the whole batch's means."""
    if world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    flat = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(flat)
    return dict(zip(keys, (flat / world_size()).tolist()))


def agree(ok: bool) -> bool:
    """Whether ``ok`` holds in every process (each process passes its own)."""
    if world_size() == 1:
        return bool(ok)
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=_collective_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast_modules(modules: Iterable[nn.Module]) -> None:
    """Process 0's parameters and buffers in every process (they are equal already when every process built
    and loaded the same; this makes sure)."""
    if world_size() == 1:
        return
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, src=0)


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


class _SumOverProcesses(torch.autograd.Function):
    """``all_reduce`` (sum) with its gradient: the gradient of a sum over the processes is the sum of theirs."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _GlobalBatchNorm:
    """The forward of a BatchNorm layer whose statistics are those of the global batch (mixed into
    ``nn.BatchNorm1d/2d`` by :func:`sync_batch_norm`; the parameters and buffers stay the layer's own)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        xf, c = x.float(), x.shape[1]
        view = [1, c] + [1] * (x.dim() - 2)
        total = float(x.numel() // c * world_size())
        mean = _SumOverProcesses.apply(xf.sum(dims)) / total
        centred = xf - mean.view(view)  # two passes: E[x^2] - E[x]^2 loses the variance when the mean is large
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * total / (total - 1), m)
        y = centred * torch.rsqrt(var.view(view) + self.eps)
        if self.affine:
            y = y * self.weight.view(view) + self.bias.view(view)
        return y.to(x.dtype)


_SYNCED: dict[type, type] = {}


def sync_batch_norm(module: nn.Module) -> int:
    """Make every ``nn.BatchNorm1d/2d/3d`` in ``module`` normalise with the global batch's statistics when
    training on several processes (in place: the same parameters, buffers and state-dict keys; on one process
    nothing changes). Returns how many layers it changed."""
    changed = 0
    for m in module.modules():
        kind = type(m)
        if kind in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
            if kind not in _SYNCED:
                _SYNCED[kind] = type(f"Global{kind.__name__}", (_GlobalBatchNorm, kind), {})
            m.__class__ = _SYNCED[kind]
            changed += 1
    return changed
