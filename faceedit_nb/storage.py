"""Where a chapter keeps its training runs and trained models: its ``storage`` parameter.

    from faceedit_nb.storage import use_storage
    use_storage(storage)   # "" (the default cache), or a folder on Google Drive on Colab

Kept apart from :mod:`faceedit_nb.paper_scale` so that the chapters that only need the folder do not depend on
the paper-profile cost records.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["COLAB_STORAGE", "use_storage"]

COLAB_STORAGE = "/content/drive/MyDrive/faceedit-nb"


def use_storage(folder: str | os.PathLike) -> Path | None:
    """Keep this kernel's training runs and trained models in ``folder`` (it becomes ``FACEEDIT_CACHE``, which
    the processes that train inherit); ``""`` leaves the cache where it is. A run interrupted there (a Colab
    session that ended) resumes from its last snapshot the next time the chapter asks for the model."""
    if not str(folder):
        return None
    path = Path(folder).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".faceedit-nb-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OSError(f"storage={str(folder)!r} cannot hold the training runs ({type(exc).__name__}: {exc}). Fix: "
                      f"on Colab mount Google Drive first (from google.colab import drive; "
                      f"drive.mount('/content/drive')) and use a folder under it, e.g. {COLAB_STORAGE!r}; or pass "
                      "storage='' to keep the runs in ~/.cache/faceedit-nb") from exc
    os.environ["FACEEDIT_CACHE"] = str(path.resolve())
    return path.resolve()
