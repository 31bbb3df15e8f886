"""The three profiles every method's config dataclass offers: ``paper`` (its defaults), ``cpu``, ``smoke``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["Profiles", "EngineSettings"]


class Profiles:
    """``paper()`` (the defaults), ``cpu()``, ``smoke()`` and ``profile(name, **overrides)``."""
    _CPU: dict = {}
    _SMOKE: dict = {}

    @classmethod
    def paper(cls, **overrides):
        return cls(**overrides)

    @classmethod
    def cpu(cls, **overrides):
        return cls(**{**cls._CPU, **overrides})

    @classmethod
    def smoke(cls, **overrides):
        return cls(**{**cls._SMOKE, **overrides})

    @classmethod
    def profile(cls, name: str, **overrides):
        if name not in ("paper", "cpu", "smoke"):
            raise ValueError(f"unknown profile {name!r}; choose paper, cpu or smoke")
        return getattr(cls, name)(**overrides)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass
class EngineSettings(Profiles):
    """The training engine's settings every method's config shares (subclass it with ``@dataclass``;
    a method redefines a field to change its default)."""
    ema_decay: float = 0.0        # 0: no EMA generator (none of the papers keeps one)
    precision: str = "auto"       # bf16 autocast on CPU, fp16 AMP on CUDA; "fp32" to turn it off
    seed: int = 0
    log_every: int = 100          # iterations between log rows (the stats of the run)
    sample_every: int = 1000      # iterations between sample grids
    snapshot_every: int = 1000    # iterations between resumable snapshots
    curve_every: int = 0          # iterations between learning-curve points (0: no curve; see methods.learning_curve)
    curve_faces: int = 200        # held-out SynthFaces test faces behind each curve point
    curve_oracles: str = "paper"  # the oracles' profile that measures the curve (cpu / smoke configs: theirs)
    version: int = 1              # bump when the training code changes in a way that matters

    _UNHASHED_DEFAULTS: ClassVar[dict] = {}  # field -> the value at which a field added later is left out of the key

    def unhashed_fields(self) -> tuple[str, ...]:
        """Fields left out of the cache key (faceedit_nb.cache), so that models cached before these fields
        existed keep their keys: the learning-curve settings while no curve is measured (they change nothing
        then), and each field of ``_UNHASHED_DEFAULTS`` while it holds the value that means "as before"."""
        out = () if self.curve_every else ("curve_every", "curve_faces", "curve_oracles")
        return out + tuple(k for k, v in self._UNHASHED_DEFAULTS.items() if getattr(self, k) == v)

    @property
    def steps_per_epoch(self) -> int:
        """Iterations per pass over the ``n_train`` training samples (epoch-based schedules)."""
        return self.n_train // self.batch_size
