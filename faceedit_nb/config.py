"""The three profiles every method's config dataclass offers: ``paper`` (its defaults), ``cpu``, ``smoke``."""
from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Profiles", "EngineSettings", "field_comments", "departures"]


class Profiles:
    """``paper()`` (the defaults), ``cpu()``, ``smoke()`` and ``profile(name, **overrides)``."""
    _CPU: dict = {}
    _SMOKE: dict = {}
    # points of the learning curve that paper() measures (0: none): the chapters plot one at every profile.
    # A measurement, not a training setting: ``curve_every`` = total_steps // points, at the paper's oracles.
    _PAPER_CURVE_POINTS: int = 0

    @classmethod
    def paper(cls, **overrides):
        cfg = cls(**overrides)
        if cls._PAPER_CURVE_POINTS and "curve_every" not in overrides and not cfg.curve_every:
            cfg = cfg.replace(curve_every=max(1, cfg.total_steps // cls._PAPER_CURVE_POINTS))
        return cfg

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
    _WHY: ClassVar[dict] = {}  # field -> why the cpu profile departs from the paper there (see departures())

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


_FIELD = re.compile(r"^\s+(\w+): [^=#]+= [^#]*?(?:#\s?(.*))?$")
_MORE = re.compile(r"^\s+#\s{2,}(.*)$")


def field_comments(cls: type) -> dict[str, str]:
    """Each dataclass field's comment in the source of ``cls`` and its bases (a field's own class wins):
    the text after ``#`` on the field's line and on the indented comment lines that continue it."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass.__module__ == "builtins":
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        name = None
        for line in lines:
            m = _FIELD.match(line)
            if m and m.group(1) in klass.__dataclass_fields__:
                name = m.group(1)
                out[name] = (m.group(2) or "").strip()
                continue
            more = _MORE.match(line)
            if more and name:
                out[name] = (out[name] + " " + more.group(1).strip()).strip()
            else:
                name = None
    return out


def departures(cfg, *, include_engine: bool = False) -> list[dict[str, Any]]:
    """The fields where ``cfg`` differs from its method's paper profile, in field order: ``{"field", "paper",
    "value", "meaning", "why"}``. ``meaning`` is the field's comment in the source, ``why`` the reason the
    config class gives in ``_WHY`` for its cpu profile's value (the measurements behind the choice; "" where
    it gives none, or where ``cfg`` holds another value). The
    engine's bookkeeping fields (log / sample / snapshot intervals, learning-curve settings) are left out
    unless ``include_engine``: they change no result."""
    paper, cpu = type(cfg).paper(), type(cfg).cpu()
    engine = {f.name for f in dataclasses.fields(EngineSettings)} - {"ema_decay", "precision", "seed"}
    comments = field_comments(type(cfg))
    why = getattr(cfg, "_WHY", {})  # reasons for the cpu profile's values: shown where cfg has that value
    return [{"field": f.name, "paper": getattr(paper, f.name), "value": getattr(cfg, f.name),
             "meaning": comments.get(f.name, ""),
             "why": why.get(f.name, "") if getattr(cfg, f.name) == getattr(cpu, f.name) else ""}
            for f in dataclasses.fields(cfg)
            if getattr(cfg, f.name) != getattr(paper, f.name) and (include_engine or f.name not in engine)]
