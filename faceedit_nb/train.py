"""The training engine: the paper-specific step stays a short function in view, the engine does the rest.

    from faceedit_nb.train import Trainer

    tr = Trainer({"G": G, "D": D}, {"G": opt_G, "D": opt_D}, total_steps=2000, run_dir="runs/stargan")

    def step(batch, i):                          # one iteration of the paper's algorithm
        d_loss = ...
        tr.update("D", d_loss)                   # zero_grad, backward, optimiser step, NaN check
        ...
        return {"D/loss": d_loss, ...}           # logged to stats.jsonl and the progress bar

    tr.run(step, data_fn)                        # data_fn(i) -> batch dict; resumes if snapshots exist

What the engine does (like NVlabs/stylegan2-ada-pytorch's ``training_loop``):

* mixed precision: ``step_fn`` runs under bf16 autocast on a CPU with native bf16 (else fp32) / fp16 AMP
  on CUDA (the policy of :mod:`faceedit_nb.device`; ``precision="fp32"`` turns it off);
  :meth:`Trainer.update` runs backward outside autocast and goes through one gradient scaler per
  optimiser (active for fp16 only);
* learning-rate schedules: ``lr_schedule(step) -> factor`` multiplies every optimiser's initial lr
  (:func:`linear_decay`, :func:`step_decay`, :func:`epoch_linear_decay` give the papers' schedules);
* an optional EMA copy of any model (``ema={"G": 0.999}``), updated after each step of its optimiser;
* a run directory ``<run_dir>/`` with ``options.json``, ``stats.jsonl`` (one line per ``log_every``
  steps: mean losses, lr, seconds per step), sample grids ``samples-<step>.png`` and snapshots
  ``snapshot-<step>.pt``, and a tqdm progress bar;
* snapshots every ``snapshot_every`` steps and at the end, written to a temporary file and moved into
  place with ``os.replace`` (a kill never leaves a half-written snapshot), holding weights, optimisers,
  scalers, EMA models, the step and every RNG state (Python, NumPy, torch CPU and CUDA, and the torch
  generators passed as ``generators=``) as tensors and lists, so they load with
  ``torch.load(weights_only=True)``;
* resume: :meth:`Trainer.run` continues from the newest snapshot in the run directory; a run killed at
  any moment (SIGKILL included) and restarted ends with the same weights, bit for bit, as a run that
  was never interrupted (CPU; every step's randomness must come from the saved RNGs or from the step
  number, e.g. :func:`epoch_indices`). Resuming says what it does: an unreadable snapshot is named in a
  :class:`ResumeWarning` before the previous one is tried; a run already past ``total_steps`` is reported
  (:class:`ResumeWarning`) and left as it is; a snapshot that does not fit the models or optimisers raises
  :class:`SnapshotMismatchError` naming the file and the keys; an unreadable ``options.json`` raises a
  ``ValueError`` naming the file and the fix;
* a loss that turns NaN or infinite stops the run with :class:`NonFiniteLossError` naming the loss and
  the step; no snapshot is written after it, so the last good one stays intact;
* data-parallel training when launched by ``torchrun`` (:mod:`faceedit_nb.distributed`): each process trains on
  its slice of the step's batch, gradients, norm statistics and logged losses are averaged over the processes,
  process 0 alone writes the run directory; on the GPU channels-last layout and ``torch.compile`` of named
  networks are switches (``channels_last``, ``compile``; :mod:`faceedit_nb.device`).

Finished models belong in the model cache (:func:`faceedit_nb.cache.load_or_train`); the run directory
is the place for resuming. :func:`run_dir_for` names the run of a cached model after the same config
hash, so a notebook killed while training resumes its run the next time it asks the cache.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from . import device as _device
from . import distributed as _dist
from .cache import atomic_write, cache_root, canonical_json, config_hash
from .progress import report as report_progress

__all__ = [
    "Trainer", "NonFiniteLossError", "SnapshotMismatchError", "ResumeWarning", "run_training", "run_dir_for",
    "default_outdir", "epoch_indices", "constant", "linear_decay", "step_decay", "epoch_linear_decay",
    "count_parameters",
]

SNAPSHOT_FORMAT = 1


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; training stopped before any update or snapshot used it."""


class SnapshotMismatchError(ValueError):
    """A snapshot does not fit the trainer's models, optimisers or EMA copies (the code changed since)."""


class ResumeWarning(UserWarning):
    """Resuming did something other than continue from the newest snapshot."""


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- learning-rate schedules: step -> factor of the initial learning rate ------------------------------
def constant() -> Callable[[int], float]:
    """No schedule."""
    return lambda step: 1.0


def linear_decay(total_steps: int, decay_steps: int, update_every: int = 1,
                 official_code: bool = False) -> Callable[[int], float]:
    """Constant, then linear decay to 0 over the last ``decay_steps`` steps, changed every ``update_every``
    steps (StarGAN: 200k iterations, decay over the last 100k, updated every 1000).

    The factor used at step ``i`` (0-based) counts the updates made after steps ``1 .. i`` that lie past
    ``total_steps - decay_steps``, as StarGAN's ``if (i+1) % lr_update_step == 0 and (i+1) > num_iters -
    num_iters_decay``. Note: StarGAN's code subtracts ``lr / num_iters_decay`` per update, i.e. only
    1/1000 of the way to 0 per 1000 steps (the lr ends at 99.9 % of its start value); the paper says the
    rate decays linearly to 0, which this schedule does (it subtracts ``lr * update_every / decay_steps``);
    ``official_code=True`` reproduces the code's decrement instead.
    """
    if not 0 <= decay_steps <= total_steps or update_every < 1:
        raise ValueError(f"need 0 <= decay_steps <= total_steps and update_every >= 1; got "
                         f"total_steps={total_steps}, decay_steps={decay_steps}, update_every={update_every}")
    start = total_steps - decay_steps
    per_update = (1 if official_code else update_every) / max(1, decay_steps)

    def factor(step: int) -> float:
        done = step // update_every - start // update_every if step > start else 0  # updates after steps < i
        return max(0.0, 1.0 - done * per_update)
    return factor


def step_decay(milestone: int, gamma: float = 0.1) -> Callable[[int], float]:
    """Multiply the rate by ``gamma`` from step ``milestone`` on (AttGAN: / 10 after epoch 100 of 200)."""
    return lambda step: gamma if step >= milestone else 1.0


def epoch_linear_decay(steps_per_epoch: int, epochs: int, decay_epochs: int) -> Callable[[int], float]:
    """GANimation: ``epochs`` at the initial rate, then ``decay_epochs`` epochs losing ``1/decay_epochs`` of
    it after each (``lr -= lr0 / nepochs_decay`` at the end of every epoch past ``nepochs_no_decay``)."""
    if steps_per_epoch < 1 or decay_epochs < 1:
        raise ValueError("steps_per_epoch and decay_epochs must be at least 1")
    return lambda step: max(0.0, 1.0 - max(0, step // steps_per_epoch - epochs) / decay_epochs)


# --- stateless data order ------------------------------------------------------------------------------
def epoch_indices(step: int, batch_size: int, n: int, seed: int = 0) -> torch.Tensor:
    """Sample indices of batch ``step``: a fresh permutation of ``range(n)`` each epoch, seeded by
    ``(seed, epoch)``, so the data order is a function of the step (nothing to save for resuming).
    The last incomplete batch of an epoch is dropped (``drop_last=True``)."""
    per_epoch = n // batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} is larger than the data set ({n} samples)")
    epoch, k = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)[k * batch_size:(k + 1) * batch_size]


# --- helpers ---------------------------------------------------------------------------------------------
def default_outdir() -> Path:
    """Where runs live unless told otherwise: ``<cache root>/runs``."""
    return cache_root() / "runs"


def run_dir_for(name: str, config: Any, outdir: str | os.PathLike | None = None) -> Path:
    """``<outdir>/<name>-<config hash>``: the run directory of the model the cache stores as ``name``."""
    return Path(outdir if outdir is not None else default_outdir()) / f"{name}-{config_hash(config)}"


def _to_device(batch: Any, dev: torch.device, channels_last: bool = False) -> Any:
    """The batch's tensors on ``dev``; with ``channels_last`` its images (4-d floating-point tensors) in that layout."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(dev, non_blocking=True)
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, Mapping):
        return {k: _to_device(v, dev, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, dev, channels_last) for v in batch)
    return batch


def _number(v: Any) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message in one line of at most ``limit`` characters (torch's run to pages; of a refused
    ``weights_only`` load, the unpickler's own reason is kept)."""
    text = str(exc).strip()
    refused = re.search(r"WeightsUnpickler error:\s*(\S.*)", text)
    if refused:
        text = f"not a file torch.load(weights_only=True) accepts: {refused.group(1).strip()}"
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= limit else text[:limit] + " ..."


def _rng_state(generators: Mapping[str, torch.Generator]) -> dict:
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in generators.items()},
    }


def _set_rng_state(state: dict, generators: Mapping[str, torch.Generator]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = set(generators) - set(state["generators"])
    if missing:
        raise KeyError(f"the snapshot holds no state for generator(s) {sorted(missing)}")
    for k, g in generators.items():
        g.set_state(state["generators"][k])


# --- the engine ------------------------------------------------------------------------------------------
class Trainer:
    """Runs ``step_fn`` for ``total_steps`` steps with checkpointing, logging, schedules and mixed precision.

    Args:
        models: named modules (moved to ``device``); all are put in train mode while training.
        optimizers: named optimisers over the models' parameters; :meth:`update` steps one by name.
        total_steps: number of calls of ``step_fn`` (iterations).
        run_dir: the run directory (created); see :func:`run_dir_for`.
        options: JSON-able description of the run (a config dataclass or dict), written to
            ``options.json``; resuming a run started with different options is refused.
        lr_schedule: ``step -> factor`` of each optimiser's initial lr (one for all, or a dict by name).
        ema: ``{model name: decay}`` of models to keep an exponential moving average of
            (read it with :meth:`ema_model`).
        precision: ``"auto"`` (the device policy: bf16 on a CPU with native bf16, else fp32; fp16 on CUDA),
            ``"fp32"``, ``"bf16"``, ``"fp16"``.
        seed: seeds Python, NumPy and torch when a run starts from scratch.
        snapshot_every, log_every, sample_every: intervals in steps (0 turns sampling off).
        keep_snapshots: how many snapshots to keep (the newest ones).
        generators: extra torch generators whose states are saved (e.g. a data sampler's).
        deterministic: ``torch.use_deterministic_algorithms(True)`` while running.
        resume: continue from the newest snapshot in ``run_dir`` (default); ``False`` deletes the run's
            snapshots and stats and starts over.
        progress: show a tqdm progress bar.
        threads: torch CPU threads while running (default: leave torch's setting). On a machine shared
            with other jobs, 1 thread per process avoids OpenMP slowing to a crawl when threads outnumber
            free cores; results can differ in the last bits between thread counts.
        channels_last: train the networks and the batches' images in channels-last layout (default:
            :func:`faceedit_nb.device.channels_last_default`: on CUDA, not on the CPU).
        compile: names of the models to ``torch.compile`` in place (default:
            :func:`faceedit_nb.device.compiled_models`, ``FACEEDIT_COMPILE``; none). Not a critic: the gradient
            penalty's double backward does not go through compiled graphs. ``compile_backend``: its backend
            (``FACEEDIT_COMPILE_BACKEND``, else "inductor").
    """

    def __init__(self, models: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer], *,
                 total_steps: int, run_dir: str | os.PathLike, options: Any = None,
                 lr_schedule: Callable[[int], float] | Mapping[str, Callable[[int], float]] | None = None,
                 ema: Mapping[str, float] | None = None, precision: str = "auto", seed: int = 0,
                 snapshot_every: int = 1000, log_every: int = 50, sample_every: int = 0, keep_snapshots: int = 2,
                 generators: Mapping[str, torch.Generator] | None = None, deterministic: bool = False,
                 resume: bool = True, progress: bool = True, threads: int | None = None,
                 device: torch.device | str | None = None, channels_last: bool | None = None,
                 compile: tuple[str, ...] | list[str] | None = None, compile_backend: str | None = None):
        if total_steps < 0:
            raise ValueError(f"total_steps must be >= 0; got {total_steps}")
        for name, every in (("snapshot_every", snapshot_every), ("log_every", log_every)):
            if every < 1:
                raise ValueError(f"{name} must be at least 1; got {every}")
        if precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16'; got {precision!r}")
        self.device = torch.device(device) if device is not None else _device.DEVICE
        self.models = dict(models)
        # data-parallel training (faceedit_nb.distributed): every process runs this loop on its slice of the batch
        self.world, self.rank = _dist.world_size(), _dist.rank()
        self.main = self.world == 1 or self.rank == 0  # the one process that writes the run directory
        self.channels_last = _device.channels_last_default(self.device) if channels_last is None else channels_last
        for m in self.models.values():
            m.to(self.device, memory_format=torch.channels_last) if self.channels_last else m.to(self.device)
            if self.world > 1:
                _dist.sync_batch_norm(m)
        if compile is None:  # FACEEDIT_COMPILE names networks of every method at once: those this run has
            wanted = _device.compiled_models()
            self.compiled = tuple(k for k in wanted if k in self.models)
            if wanted and not self.compiled:
                warnings.warn(f"FACEEDIT_COMPILE={','.join(wanted)} names none of this run's models "
                              f"({', '.join(sorted(self.models))}): nothing is compiled", stacklevel=2)
        else:
            self.compiled = tuple(compile)
            unknown = [k for k in self.compiled if k not in self.models]
            if unknown:
                raise KeyError(f"compile names unknown model(s) {unknown}; have {sorted(self.models)}")
        backend = compile_backend or _device.compile_backend()
        for k in self.compiled:  # in place: the module and its state-dict keys stay the same
            self.models[k].compile(backend=backend)
        self.optimizers = dict(optimizers)
        for opt in self.optimizers.values():
            for g in opt.param_groups:
                g.setdefault("initial_lr", g["lr"])
        self.total_steps, self.seed = int(total_steps), int(seed)
        self.run_dir = Path(run_dir)
        self.options = json.loads(canonical_json(options if options is not None else {}))
        if lr_schedule is None or callable(lr_schedule):
            self.lr_schedule = {k: lr_schedule for k in self.optimizers} if lr_schedule else {}
        else:
            unknown = set(lr_schedule) - set(self.optimizers)
            if unknown:
                raise KeyError(f"lr_schedule names unknown optimisers {sorted(unknown)}; "
                               f"have {sorted(self.optimizers)}")
            self.lr_schedule = dict(lr_schedule)
        self.snapshot_every, self.log_every, self.sample_every = snapshot_every, log_every, sample_every
        self.keep_snapshots = max(1, keep_snapshots)
        self.generators = dict(generators or {})
        self.deterministic, self.resume, self.progress = deterministic, resume, progress and self.main
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1; got {threads}")
        self.threads = threads

        if precision == "auto":
            self.amp_dtype = _device.autocast_dtype(self.device)
        else:
            self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        fp16 = self.amp_dtype == torch.float16
        self.scalers = {k: torch.amp.GradScaler(self.device.type, enabled=fp16) for k in self.optimizers}

        self.ema: dict[str, nn.Module] = {}
        self.ema_decay = dict(ema or {})
        self._ema_of_optimizer: dict[str, list[str]] = {k: [] for k in self.optimizers}
        for name, decay in self.ema_decay.items():
            if name not in self.models:
                raise KeyError(f"ema names unknown model {name!r}; have {sorted(self.models)}")
            if not 0.0 <= decay < 1.0:
                raise ValueError(f"EMA decay of {name} must lie in [0, 1); got {decay}")
            self.ema[name] = copy.deepcopy(self.models[name]).eval().requires_grad_(False)
            params = {id(p) for p in self.models[name].parameters()}
            owners = [k for k, opt in self.optimizers.items()
                      if any(id(p) in params for g in opt.param_groups for p in g["params"])]
            if not owners:
                raise ValueError(f"no optimiser updates the parameters of {name!r}, so its EMA would never move")
            for k in owners:
                self._ema_of_optimizer[k].append(name)

        self.step = 0
        self.history: list[dict] = []
        self.elapsed = 0.0
        self._window: dict[str, list[float]] = {}
        self._window_start = 0

    # --- used inside step_fn ---------------------------------------------------------------------------
    def autocast(self):
        """The mixed-precision context (the engine already runs ``step_fn`` inside it)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def update(self, optimizer: str, loss: torch.Tensor, terms: Mapping[str, Any] | None = None) -> None:
        """One optimisation step on ``loss`` with optimiser ``optimizer``: NaN/inf check, zero_grad,
        backward (outside autocast, through the gradient scaler), step, EMA update. Models used again in
        the same ``step_fn`` after this see the updated weights (the autocast weight cache is cleared).

        ``terms`` (the named parts of ``loss``) only serve the error message when ``loss`` is not finite.
        """
        if optimizer not in self.optimizers:
            raise KeyError(f"unknown optimiser {optimizer!r}; have {sorted(self.optimizers)}")
        finite = bool(torch.isfinite(loss.detach()).all())
        if not (_dist.agree(finite) if self.world > 1 else finite):  # every process stops at the same step
            bad = {k: _number(v) for k, v in (terms or {}).items() if not math.isfinite(_number(v))}
            where = "" if not finite else " in another process"
            self._raise_non_finite(f"{optimizer} loss{where}", _number(loss), bad)
        opt, scaler = self.optimizers[optimizer], self.scalers[optimizer]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=False):
            scaler.scale(loss).backward()
        if self.world > 1:  # the whole batch's gradient: the mean of the processes' (each loss is a batch mean)
            _dist.average_gradients(p for g in opt.param_groups for p in g["params"])
        scaler.step(opt)
        scaler.update()
        # autocast caches the low-precision copies of weights for the whole region step_fn runs in; they
        # are stale once the optimiser has changed the weights (GANimation uses D again after its update)
        torch.clear_autocast_cache()
        for name in self._ema_of_optimizer[optimizer]:
            self._update_ema(name)

    def ema_model(self, name: str) -> nn.Module:
        """The EMA copy of model ``name`` (in eval mode)."""
        return self.ema[name]

    @torch.no_grad()
    def _update_ema(self, name: str) -> None:
        src, dst, decay = self.models[name], self.ema[name], self.ema_decay[name]
        ps, pd = list(src.parameters()), list(dst.parameters())
        torch._foreach_lerp_([p.data for p in pd], [p.data for p in ps], 1.0 - decay)
        for bs, bd in zip(src.buffers(), dst.buffers()):
            bd.copy_(bs)

    # --- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: weights, optimisers, scalers, EMA, step, RNG states."""
        return {
            "format": SNAPSHOT_FORMAT, "step": self.step, "elapsed": self.elapsed,
            "models": {k: m.state_dict() for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items() if s.is_enabled()},
            "ema": {k: m.state_dict() for k, m in self.ema.items()},
            "rng": _rng_state(self.generators),
        }

    def _misfits(self, state: Mapping) -> list[str]:
        """How ``state`` does not fit this trainer: models, EMA copies and optimisers by name, then each
        model's missing, unexpected and wrongly shaped keys and each optimiser's parameter groups."""
        if not isinstance(state, Mapping) or state.get("format") != SNAPSHOT_FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            return [f"snapshot format {found!r} is not {SNAPSHOT_FORMAT}"]
        problems = []
        for group in ("models", "optimizers", "ema"):
            want, have = set(getattr(self, group)), set(state.get(group, {}))
            if want != have:
                problems.append(f"it holds {group} {sorted(have)} but this trainer has {sorted(want)}")
        if problems:
            return problems
        for group in ("models", "ema"):
            for k, m in getattr(self, group).items():
                mine, theirs = m.state_dict(), state[group][k]
                missing = sorted(set(mine) - set(theirs))
                unexpected = sorted(set(theirs) - set(mine))
                shapes = [f"{n} (snapshot {list(theirs[n].shape)}, model {list(t.shape)})" for n, t in mine.items()
                          if n in theirs and isinstance(theirs[n], torch.Tensor) and theirs[n].shape != t.shape]
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("wrong shape", shapes)):
                    if keys:
                        problems.append(f"{'model' if group == 'models' else 'EMA copy'} {k!r}: {what} "
                                        f"{', '.join(keys)}")
        for k, opt in self.optimizers.items():
            mine = [len(g["params"]) for g in opt.param_groups]
            theirs = [len(g["params"]) for g in state["optimizers"][k].get("param_groups", [])]
            if mine != theirs:
                problems.append(f"optimizer {k!r}: parameter groups of {theirs} parameters in the snapshot, "
                                f"{mine} here")
        return problems

    def load_state_dict(self, state: Mapping, *, source: str = "the state dict") -> None:
        """Restore :meth:`state_dict`; raises :class:`SnapshotMismatchError` naming ``source`` and every key
        that does not fit, before changing anything."""
        fix = ("The models or optimisers changed since it was written: restore the code that wrote it, use another "
               "run directory, or pass resume=False to start the run over (this deletes its snapshots)")
        problems = self._misfits(state)
        if problems:
            raise SnapshotMismatchError(f"{source} does not fit this trainer: {'; '.join(problems)}. {fix}")
        try:
            for k, m in self.models.items():
                m.load_state_dict(state["models"][k])
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in self.scalers.items():
                if s.is_enabled() and k in state["scalers"]:
                    s.load_state_dict(state["scalers"][k])
            for k, m in self.ema.items():
                m.load_state_dict(state["ema"][k])
            _set_rng_state(state["rng"], self.generators)
            self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:  # what the checks above do not foresee
            raise SnapshotMismatchError(f"{source} does not fit this trainer ({type(exc).__name__}: "
                                        f"{_first_line(exc)}). {fix}") from exc

    def snapshots(self) -> list[Path]:
        """The run's snapshot files, oldest first."""
        return sorted(self.run_dir.glob("snapshot-*.pt"))

    def save_snapshot(self) -> Path:
        path = self.run_dir / f"snapshot-{self.step:07d}.pt"
        if not self.main:  # process 0 writes; every process holds the same state
            return path
        atomic_write(path, lambda f: torch.save(self.state_dict(), f))
        for old in self.snapshots()[:-self.keep_snapshots]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return path

    def _load_latest(self) -> Path | None:
        errors = []
        snapshots = self.snapshots()
        for i in range(len(snapshots) - 1, -1, -1):
            path = snapshots[i]
            try:
                state = torch.load(path, map_location=self.device, weights_only=True)
            except Exception as exc:  # unreadable file (e.g. copied half-way): say so, try the previous one
                reason = f"{type(exc).__name__}: {_first_line(exc)}"
                errors.append(f"{path.name}: {reason}")
                then = (f"skipping it and trying the previous snapshot, {snapshots[i - 1].name} (the steps after "
                        "that one are trained again)" if i else "there is no earlier snapshot")
                warnings.warn(f"snapshot {path} cannot be read ({reason}); {then}", ResumeWarning, stacklevel=3)
                continue
            self.load_state_dict(state, source=f"snapshot {path}")
            return path
        if errors:
            raise RuntimeError(f"no snapshot in {self.run_dir} could be read ({'; '.join(errors)}); "
                               "delete the run directory or pass resume=False to start over")
        return None

    # --- run directory ----------------------------------------------------------------------------------
    def _prepare_together(self) -> None:
        """:meth:`_prepare_run_dir` in process 0 while the others wait; an error stops every process."""
        if self.world == 1:
            return self._prepare_run_dir()
        error = None
        if self.main:
            try:
                self._prepare_run_dir()
            except Exception as exc:  # the other processes must not wait for this one
                error = exc
        if not _dist.agree(error is None):
            raise error if error is not None else RuntimeError(
                f"process 0 could not prepare the run directory {self.run_dir} (its error is in its output)")

    def _prepare_run_dir(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create the run directory {self.run_dir} ({type(exc).__name__}: "
                          f"{_first_line(exc)}); nothing was trained. Fix: pass a writable run_dir, or make its "
                          "parent writable") from exc
        opts = self.run_dir / "options.json"
        if not self.resume:
            for p in self.snapshots() + [self.run_dir / "stats.jsonl"] + list(self.run_dir.glob("samples-*.png")):
                p.unlink(missing_ok=True)
        elif opts.is_file() and self.snapshots():
            old = self._read_options(opts)
            if old != self.options:
                diff = sorted(k for k in set(old) | set(self.options) if old.get(k) != self.options.get(k))
                raise ValueError(f"{self.run_dir} holds a run started with other options (differing: {diff}); "
                                 "use another run directory, or resume=False to start this one over")
        elif self.snapshots():
            warnings.warn(f"{self.run_dir} has snapshots but no options.json, so resuming cannot check that they were "
                          "trained with these options; resuming anyway (the snapshot must still fit the models). "
                          "Pass resume=False to start the run over", ResumeWarning, stacklevel=3)
        text = json.dumps(self.options, indent=2, sort_keys=True) + "\n"
        try:
            atomic_write(opts, lambda f: f.write(text), mode="w")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write {opts} ({type(exc).__name__}: {_first_line(exc)}); nothing was "
                          f"trained. Fix: make {self.run_dir} writable, or pass another run_dir") from exc

    def _read_options(self, opts: Path) -> dict:
        """The options a run was started with, or a ``ValueError`` naming the file and the fix."""
        try:
            old = json.loads(opts.read_text())
        except (OSError, ValueError) as exc:  # ValueError includes JSON and UTF-8 decoding errors
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
        else:
            if isinstance(old, dict):
                return old
            reason = f"it holds a JSON {type(old).__name__}, not an object"
        raise ValueError(
            f"{opts} cannot be read ({reason}); it records the options the run in {self.run_dir} was started with, "
            f"so resuming cannot check them. Fix: if the run was started with these same options, delete {opts} "
            "(it is written again) and rerun; otherwise use another run directory, or pass resume=False to start "
            "this one over (this deletes its snapshots)")

    def _resume(self) -> None:
        """Continue from the newest readable snapshot, or seed a fresh run; say so when the snapshot is already
        past ``total_steps``."""
        resumed = self._load_latest() if self.resume else None
        if resumed is None:
            _device.seed_everything(self.seed)
            self.step, self.elapsed = 0, 0.0
        if self.world > 1:  # every process read the same snapshot (or built the same models): make sure
            _dist.broadcast_modules(list(self.models.values()) + list(self.ema.values()))
        elif self.step > self.total_steps:
            warnings.warn(
                f"{resumed} is at step {self.step}, past total_steps={self.total_steps}: nothing is trained and "
                f"the models stay those of step {self.step}. For a {self.total_steps}-step run, use another run "
                "directory or pass resume=False (this deletes the run's snapshots)", ResumeWarning, stacklevel=3)

    def _restore_stats(self) -> None:
        """Keep the stats lines up to the resumed step (the steps after it will be logged again)."""
        path = self.run_dir / "stats.jsonl"
        self.history = []
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # a line cut by a kill
                    continue
                if isinstance(row, dict) and row.get("step", math.inf) <= self.step:
                    self.history.append(row)
        if not self.main:
            return
        text = "".join(json.dumps(r) + "\n" for r in self.history)
        atomic_write(path, lambda f: f.write(text), mode="w")

    def _log(self, seconds: float) -> dict:
        row = {"step": self.step}
        row.update({k: float(np.mean(v)) for k, v in sorted(self._window.items())})
        for k, opt in self.optimizers.items():
            row[f"lr/{k}"] = opt.param_groups[0]["lr"]
        row["sec_per_step"] = seconds / max(1, self.step - self._window_start)
        row["elapsed"] = round(self.elapsed, 3)
        self.history.append(row)
        if self.main:
            with open(self.run_dir / "stats.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        self._window, self._window_start = {}, self.step
        return row

    def _save_samples(self, sample_fn: Callable[[int], Any]) -> None:
        from torchvision.utils import save_image
        if not self.main:
            return
        with torch.no_grad(), self.autocast(), _dist.alone():
            out = sample_fn(self.step)
        for m in self.models.values():
            m.train()
        if isinstance(out, (list, tuple)):  # columns, e.g. [input, edit 1, edit 2, ...]: one row per image
            grid, nrow = torch.cat([o.float().cpu() for o in out], dim=3), 1
        else:
            grid, nrow = out.float().cpu(), 8
        save_image((grid.clamp(-1, 1) + 1) / 2, self.run_dir / f"samples-{self.step:07d}.png", nrow=nrow,
                   padding=0 if nrow == 1 else 2)

    def _raise_non_finite(self, what: str, value: float, bad_terms: Mapping[str, float] | None = None):
        snaps = self.snapshots()
        kept = (f"the last good snapshot {snaps[-1].name} in {self.run_dir} is intact (rerun to resume from it)"
                if snaps else f"no snapshot was written yet in {self.run_dir}")
        terms = f" (non-finite terms: {', '.join(f'{k}={v}' for k, v in bad_terms.items())})" if bad_terms else ""
        raise NonFiniteLossError(f"{what} is {value} at step {self.step}{terms}; training stopped and {kept}. "
                                 "Lower the learning rate, check the inputs, or try precision='fp32'.")

    def _apply_lr(self, step: int) -> None:
        for k, schedule in self.lr_schedule.items():
            f = schedule(step)
            for g in self.optimizers[k].param_groups:
                g["lr"] = g["initial_lr"] * f

    # --- the loop ---------------------------------------------------------------------------------------
    def iterate(self, step_fn: Callable[[Any, int], Mapping[str, Any]], data_fn: Callable[[int], Any]) -> dict:
        """One iteration: learning rates of this step, its batch on the device, ``step_fn`` under autocast,
        NaN/inf check of the returned losses (kept for the next stats line), ``step += 1``. :meth:`run`
        calls it in a loop and adds logging, samples and snapshots."""
        t0 = time.perf_counter()
        i = self.step
        self._apply_lr(i)
        batch = data_fn(i)
        if self.world > 1:  # every process gets the global batch of the step and keeps its slice
            batch = _dist.shard(batch, self.world, self.rank)
        batch = _to_device(batch, self.device, self.channels_last)
        with self.autocast():
            losses = step_fn(batch, i)
        values = {k: _number(v) for k, v in (losses or {}).items()}
        if self.world > 1:  # the whole batch's figures, and the norm layers' statistics of the whole batch
            values = _dist.mean_values(values)
            _dist.average_running_stats(self.models.values())
        for k, x in values.items():
            if not math.isfinite(x):
                self._raise_non_finite(f"loss {k!r}", x)
            self._window.setdefault(k, []).append(x)
        self.step = i + 1
        self.elapsed += time.perf_counter() - t0
        if self.main:
            report_progress(self.run_dir.name, self.step, self.total_steps)
        return values

    def _evaluate(self, eval_fn: Callable[[int], Mapping[str, float]]) -> dict:
        """A learning-curve point: ``eval_fn(step)`` in eval mode, under ``no_grad`` and autocast, with every random state
        restored afterwards (training goes on bit-identically) and its time kept out of ``elapsed`` (the
        training clock); logged as a stats row of ``eval/<name>`` figures at the current step. In data-parallel
        training process 0 measures it alone."""
        if not self.main:
            return {}
        states = _rng_state(self.generators)  # Python, NumPy, torch (CPU and CUDA) and the named generators
        for m in self.models.values():
            m.eval()  # no running statistics updated by the measurement
        try:
            with torch.no_grad(), self.autocast(), _dist.alone():
                out = eval_fn(self.step)
        finally:
            _set_rng_state(states, self.generators)
        for m in self.models.values():
            m.train()
        row = {"step": self.step, "elapsed": round(self.elapsed, 3)}
        row.update({f"eval/{k}": float(v) for k, v in out.items()})
        self.history.append(row)
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    @torch.enable_grad()  # trains even when a notebook has turned gradients off
    def run(self, step_fn: Callable[[Any, int], Mapping[str, Any]], data_fn: Callable[[int], Any],
            sample_fn: Callable[[int], Any] | None = None, *,
            eval_fn: Callable[[int], Mapping[str, float]] | None = None, eval_every: int = 0) -> list[dict]:
        """Train until ``total_steps``, resuming from the newest snapshot; returns the stats history.

        ``data_fn(step)`` returns the batch of step ``step`` (tensors are moved to the device);
        ``step_fn(batch, step)`` performs the iteration (calling :meth:`update`) and returns a dict of
        named losses (tensors or numbers); ``sample_fn(step)`` returns images in [-1, 1] for a grid:
        a batch, or a list of batches shown side by side (one row per image). ``eval_fn(step)`` returns
        named figures (e.g. EEA on a fixed held-out subset) measured at step 0 of a fresh run, every
        ``eval_every`` steps and at the end: the learning curve against ``elapsed`` training seconds.
        """
        if eval_fn is not None and eval_every < 1:
            raise ValueError(f"eval_every must be at least 1 when eval_fn is given; got {eval_every}")
        from tqdm.auto import tqdm

        self._prepare_together()
        self._resume()
        self._restore_stats()
        for m in self.models.values():
            m.train()
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        if self.deterministic:
            torch.use_deterministic_algorithms(True)
        with _device.torch_threads(self.threads):
            bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress,
                       desc=self.run_dir.name, dynamic_ncols=True, leave=True)
            self._window, self._window_start = {}, self.step
            if eval_fn is not None and self.step == 0 and not any("step" in r and r["step"] == 0 for r in self.history):
                self._evaluate(eval_fn)
            t_window = time.perf_counter()
            try:
                while self.step < self.total_steps:
                    self.iterate(step_fn, data_fn)
                    done = self.step == self.total_steps
                    if self.step % self.log_every == 0 or done:
                        row = self._log(time.perf_counter() - t_window)
                        t_window = time.perf_counter()
                        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items()
                                         if k not in ("step", "elapsed") and not k.startswith("lr/")}, refresh=False)
                    if sample_fn is not None and self.sample_every and (self.step % self.sample_every == 0 or done):
                        self._save_samples(sample_fn)
                    if eval_fn is not None and (self.step % eval_every == 0 or done):
                        self._evaluate(eval_fn)
                        t_window = time.perf_counter()
                    if self.step % self.snapshot_every == 0 or done:
                        self.save_snapshot()
                    bar.update(1)
            finally:
                bar.close()
                if self.deterministic and not was_deterministic:
                    torch.use_deterministic_algorithms(False)
        if self.total_steps == 0 or (self.step == self.total_steps and not self.snapshots()):
            self.save_snapshot()
        return self.history

    def export(self) -> dict:
        """The finished run as a dict of state dicts and stats: what :func:`faceedit_nb.cache.load_or_train`
        stores (``{"models": ..., "ema": ..., "stats": [...], "step": n}``)."""
        return {
            "models": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in self.models.items()},
            "ema": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in self.ema.items()},
            "stats": [dict(r) for r in self.history], "step": self.step,
        }


def run_training(models: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                 step_fn: Callable[..., Mapping[str, Any]], data_fn: Callable[[int], Any], *,
                 total_steps: int, run_dir: str | os.PathLike, sample_fn: Callable[[int], Any] | None = None,
                 **trainer_kwargs) -> Trainer:
    """Build a :class:`Trainer`, run it and return it. ``step_fn(trainer, batch, step)`` gets the trainer
    first (for :meth:`Trainer.update` and the models); the other arguments are the Trainer's."""
    trainer = Trainer(models, optimizers, total_steps=total_steps, run_dir=run_dir, **trainer_kwargs)
    trainer.run(lambda batch, step: step_fn(trainer, batch, step), data_fn, sample_fn)
    return trainer
