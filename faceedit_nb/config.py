"""The three profiles every method's config dataclass offers: ``paper`` (its defaults), ``cpu``, ``smoke``."""
from __future__ import annotations

import dataclasses

__all__ = ["Profiles"]


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
