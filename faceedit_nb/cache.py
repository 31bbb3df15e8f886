"""Train once, reuse afterwards: a small on-disk cache of trained models keyed by their config.

Notebooks train their models through :func:`load_or_train`. The first run trains and stores the
result; every later run with the same config loads it in a second, so a reader re-running a notebook
on a CPU (or the book's second build) does not train again::

    from faceedit_nb.cache import load_or_train

    def train(cfg):               # returns a trained nn.Module (or a dict of tensors/numbers)
        ...

    G = load_or_train("stargan-G", cfg, train, build_fn=lambda cfg: Generator(cfg.conv_dim))

Layout
------
``<root>/models/<name>-<hash>/`` holds ``weights.pt`` (``torch.save`` of a state dict or of the
returned dict), ``config.json`` (the canonical config that was hashed) and ``meta.json`` (training
time, torch version, date). ``<root>`` is ``$FACEEDIT_CACHE`` if set, else ``$XDG_CACHE_HOME/faceedit-nb``
(``~/.cache/faceedit-nb``): one cache per user, shared by every checkout and by notebooks copied anywhere,
so a fresh clone reuses the models an earlier one trained (as torch hub does). ``cache_dir=`` overrides the
models folder directly. ``make test`` points ``FACEEDIT_CACHE`` at ``build/test-cache`` so that tests always
train from scratch.

Rules
-----
* The key is :func:`config_hash`: SHA-256 of the config's canonical JSON (dataclasses and dicts, keys
  sorted, tuples as lists; only JSON-able values), so it is the same on every run and machine. It
  covers the config only, not the training code: put a ``version`` field in the config and bump it
  when the training code changes in a way that matters. A config may leave out fields that have no
  effect in its current state (``unhashed_fields()``: e.g. the learning-curve settings while no curve is
  measured), so that adding such a field later keeps the keys of existing models.
* Files are written to a temporary file and moved into place with ``os.replace``, so a crash never
  leaves a half-written ``weights.pt`` behind; an entry exists when ``weights.pt`` exists.
* Files are read with ``torch.load(..., weights_only=True)``: tensors, numbers, strings, lists and
  dicts only, never arbitrary pickled code. Hence a trained ``nn.Module`` is stored as its state dict
  and rebuilt on load with ``build_fn(config)``.
* A corrupt or unreadable ``weights.pt`` (or a ``config.json`` that does not match the config, which
  would mean a hash collision or a hand-edited entry) is reported with a ``CacheWarning`` and the model
  is trained again, overwriting the entry. ``retrain=True`` forces training.
* No finished training is thrown away: before training, the entry's folder is created and a file written
  in it, so a cache that cannot be written (read-only, ``FACEEDIT_CACHE`` pointing at a file) raises
  :class:`CacheWriteError` at once, having trained nothing. Should storing still fail after training, the
  entry is saved in a new folder under the temporary directory (else the working directory, else home)
  and the :class:`CacheWriteError` names it (``saved_to``): copy its files into the entry's folder and the
  next run loads them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path, PurePath
from typing import Any, Callable

import torch

__all__ = [
    "CacheWarning", "CacheWriteError", "cache_root", "models_dir", "canonical_json", "config_hash",
    "entry_dir", "is_cached", "load_or_train", "atomic_write",
]

HASH_LENGTH = 16  # hex characters of SHA-256 kept in folder names (64 bits)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CacheWarning(UserWarning):
    """A cache entry could not be used and is being rebuilt."""


class CacheWriteError(OSError):
    """The cache cannot be written. Raised before training when that can be seen then; raised after training
    when storing failed, with ``saved_to`` the folder where the trained entry was saved instead (``None``
    when nothing was trained or no folder anywhere could be written)."""

    saved_to: Path | None = None


# --- where ------------------------------------------------------------------------------------------
def _file_in_the_way(path: Path) -> Path | None:
    """The regular file (or other non-folder) that ``path`` is or lies under, if any."""
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def cache_root() -> Path:
    """``$FACEEDIT_CACHE``, else ``$XDG_CACHE_HOME/faceedit-nb``, else ``~/.cache/faceedit-nb``.

    ``$FACEEDIT_CACHE`` naming a file (or a path under one) raises :class:`CacheWriteError` at once."""
    env = os.environ.get("FACEEDIT_CACHE")
    if env:
        root = Path(env).expanduser().resolve()
        blocker = _file_in_the_way(root)
        if blocker is not None:
            where = "is a file" if blocker == root else f"lies under {blocker}, which is a file"
            raise CacheWriteError(
                f"FACEEDIT_CACHE={env} {where}, not a folder, so no model can be cached there. Fix: point "
                "FACEEDIT_CACHE at a folder (export FACEEDIT_CACHE=/path/to/folder), or unset it to use the "
                "default ~/.cache/faceedit-nb")
        return root
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "faceedit-nb").resolve()


def models_dir() -> Path:
    """The folder that holds one sub-folder per cached model."""
    return cache_root() / "models"


# --- the key ----------------------------------------------------------------------------------------
def _plain(obj: Any, where: str = "config") -> Any:
    """Turn a config into plain JSON types, refusing anything whose text form is not stable."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        unhashed = set(obj.unhashed_fields()) if hasattr(obj, "unhashed_fields") else set()
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in unhashed}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return sorted(_plain(v, f"{where}{{}}") for v in obj)
    if isinstance(obj, enum.Enum):
        return _plain(obj.value, where)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: {obj} cannot be hashed stably")
        return obj
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, torch.dtype):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalar
        return _plain(obj.item(), where)
    raise TypeError(f"{where}: cannot hash a value of type {type(obj).__name__} ({obj!r}); "
                    "use numbers, strings, bools, None, lists, dicts or dataclasses of those")


def canonical_json(config: Any) -> str:
    """The config as compact JSON with sorted keys: the text that :func:`config_hash` hashes."""
    return json.dumps(_plain(config), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def config_hash(config: Any) -> str:
    """A short, stable hex digest of a config (dict or dataclass); equal configs give equal hashes."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:HASH_LENGTH]


def entry_dir(name: str, config: Any, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder ``<models dir>/<name>-<hash>`` of one cached model."""
    if not _NAME_RE.match(name):
        raise ValueError(f"cache name {name!r}: use letters, digits, '_', '.' and '-' only")
    root = Path(cache_dir) if cache_dir is not None else models_dir()
    return root / f"{name}-{config_hash(config)}"


def is_cached(name: str, config: Any, cache_dir: str | os.PathLike | None = None) -> bool:
    """True when a finished entry exists (it may still turn out to be unreadable)."""
    return (entry_dir(name, config, cache_dir) / "weights.pt").is_file()


# --- atomic writes ----------------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(f)`` into a temporary file, fsync it and move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


# --- the cache --------------------------------------------------------------------------------------
_MISSING = object()


def _load_entry(name: str, config: Any, path: Path, build_fn, verbose: bool, warn: bool = True) -> Any:
    """The cached result in ``path``, or ``_MISSING`` when there is none or it is unusable (warned once)."""
    weights, config_file, meta_file = path / "weights.pt", path / "config.json", path / "meta.json"
    if not weights.is_file():
        return _MISSING
    kind = "dict"
    if meta_file.is_file():
        try:
            kind = json.loads(meta_file.read_text()).get("kind", "dict")
        except (OSError, ValueError, AttributeError):
            kind = "unknown"
    if kind == "module" and build_fn is None:
        raise TypeError(f"cached entry {path.name} holds a module's weights: "
                        "pass build_fn=... to rebuild the module")
    try:
        saved_config = json.loads(config_file.read_text())
        if saved_config != json.loads(canonical_json(config)):
            raise ValueError(f"{config_file} holds a different config (hash collision or edited file)")
        if kind not in ("module", "dict"):
            raise ValueError(f"{meta_file} is unreadable")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if kind == "module":
            model = build_fn(config)
            model.load_state_dict(state)
            result = model
        else:
            result = state
    except Exception as exc:  # corrupt, truncated, unsafe or mismatched entry: train again
        if warn:
            warnings.warn(f"cache entry {path} is unusable ({type(exc).__name__}: {exc}); training again",
                          CacheWarning, stacklevel=3)
    else:
        if verbose:
            print(f"[cache] loaded {name} ({path.name})")
        return result

    return _MISSING


@contextlib.contextmanager
def _training_lock(path: Path, name: str, verbose: bool):
    """An exclusive lock on training ``path`` across processes (``fcntl.flock`` on ``.training.lock`` in the
    entry's folder): two chapters or workers that need the same model train it once; the second waits, then
    loads. The lock is released by the kernel when a process dies, so a killed run never blocks the next."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".training.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if verbose:
                print(f"[cache] waiting for another process that is training {name} ({path.name}) ...", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _where_to_fix(cache_dir: str | os.PathLike | None) -> str:
    """The advice on an unwritable cache: the setting that chose its folder."""
    if cache_dir is not None:
        return f"pass load_or_train a writable cache_dir= (it is {cache_dir})"
    if os.environ.get("FACEEDIT_CACHE"):
        return f"set FACEEDIT_CACHE to a writable folder (it is {os.environ['FACEEDIT_CACHE']})"
    return "set FACEEDIT_CACHE to a writable folder"


def _ensure_writable(name: str, path: Path, cache_dir: str | os.PathLike | None) -> None:
    """Before training: create the entry folder and a file in it, so that a cache that cannot be written fails
    now, with nothing trained, rather than after the training."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            why, fix = f"{blocker} is a file, not a folder", f"move {blocker} out of the way"
        else:
            folder = next(p for p in (path, *path.parents) if p.exists())  # the one that refuses the write
            why, fix = f"it is not writable: {type(exc).__name__}: {exc}", f"make {folder} writable"
        raise CacheWriteError(
            f"cannot cache {name}: the cache folder {path} cannot be written ({why}); nothing was trained. "
            f"Fix: {fix}, or {_where_to_fix(cache_dir)}") from exc


def _store(path: Path, files: dict[str, Any], state: Any) -> None:
    """Write an entry: the JSON files, then ``weights.pt`` (whose presence marks the entry as finished)."""
    for fname, data in files.items():
        _write_json(path / fname, data)
    atomic_write(path / "weights.pt", lambda f: torch.save(state, f))


def _rescue(path: Path, files: dict[str, Any], state: Any) -> tuple[Path | None, list[str]]:
    """Save an entry that could not be stored in ``path`` into a new folder under the temporary directory,
    else the working directory, else the home folder; returns that folder (None if none) and the failures."""
    failures = []
    for base in (tempfile.gettempdir(), Path.cwd(), Path.home()):
        try:
            folder = Path(tempfile.mkdtemp(prefix="faceedit-nb-unsaved-", dir=base)) / path.name
            _store(folder, files, state)
        except OSError as exc:
            failures.append(f"{base}: {type(exc).__name__}: {exc}")
        else:
            return folder, failures
    return None, failures


def _train_and_store(name: str, config: Any, train_fn, path: Path, build_fn, verbose: bool, *,
                     cache_dir: str | os.PathLike | None = None) -> Any:
    """Train with ``train_fn(config)`` and store the result atomically in ``path``; should storing fail, save
    it elsewhere and raise :class:`CacheWriteError` saying where."""
    plain_config = _plain(config)
    if verbose:
        print(f"[cache] training {name} (config hash {path.name.rsplit('-', 1)[1]}) ...")
    start = time.perf_counter()
    result = train_fn(config)
    seconds = time.perf_counter() - start
    if isinstance(result, torch.nn.Module):
        if build_fn is None:
            raise TypeError(f"train_fn of {name!r} returned a module: pass build_fn=... so that the "
                            "cached weights can be loaded into a fresh module next time")
        state, kind = result.state_dict(), "module"
    elif isinstance(result, dict):
        state, kind = result, "dict"
    else:
        raise TypeError(f"train_fn of {name!r} returned {type(result).__name__}: "
                        "return an nn.Module or a dict of tensors and plain values")

    files = {"config.json": plain_config, "meta.json": {
        "name": name, "kind": kind, "train_seconds": round(seconds, 3), "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }}
    try:
        _store(path, files, state)
    except OSError as exc:
        saved, failures = _rescue(path, files, state)
        where = (f"The trained weights are saved in {saved} (weights.pt, config.json, meta.json): once the cache "
                 f"is writable, copy those files into {path} (cp {saved}/* {path}/) and the next run loads "
                 "them instead of training" if saved is not None else
                 f"The trained weights could not be saved anywhere else either ({'; '.join(failures)})")
        err = CacheWriteError(
            f"trained {name} in {seconds:.1f} s but could not store it in the cache folder {path} "
            f"({type(exc).__name__}: {exc}). {where}. Fix: make {path} writable, or "
            f"{_where_to_fix(cache_dir)}")
        err.saved_to = saved
        raise err from exc
    if verbose:
        print(f"[cache] trained {name} in {seconds:.1f} s, stored as {path.name}")
    return result


def load_or_train(
    name: str,
    config: Any,
    train_fn: Callable[[Any], Any],
    *,
    build_fn: Callable[[Any], torch.nn.Module] | None = None,
    cache_dir: str | os.PathLike | None = None,
    retrain: bool = False,
    verbose: bool = True,
) -> Any:
    """Return the model trained with ``config``, training it with ``train_fn(config)`` only when needed.

    ``train_fn(config)`` returns either a trained ``torch.nn.Module`` (stored as its state dict; then
    ``build_fn(config)`` must build an untrained module of the same architecture, into which a later
    call loads the weights) or a dict of tensors, numbers, strings, lists and dicts (for example
    ``{"G": G.state_dict(), "D": D.state_dict(), "history": [...]}``), returned as loaded.
    Loaded tensors are on the CPU. See the module docstring for the layout and the rules.

    Raises :class:`CacheWriteError` before training when the cache folder cannot be written, and after
    training when storing failed (the trained entry is then saved elsewhere: see its message and ``saved_to``).
    """
    path = entry_dir(name, config, cache_dir)
    from . import distributed
    if distributed.world_size() > 1:
        return _load_or_train_together(name, config, train_fn, path, build_fn, verbose, cache_dir=cache_dir,
                                       retrain=retrain)
    if not retrain:
        found = _load_entry(name, config, path, build_fn, verbose)
        if found is not _MISSING:
            return found
    _ensure_writable(name, path, cache_dir)  # fail now, not after the training
    with _training_lock(path, name, verbose):
        if not retrain:  # another process may have trained it while this one waited for the lock
            found = _load_entry(name, config, path, build_fn, verbose, warn=False)
            if found is not _MISSING:
                return found
        return _train_and_store(name, config, train_fn, path, build_fn, verbose, cache_dir=cache_dir)




def _load_or_train_together(name: str, config: Any, train_fn, path: Path, build_fn, verbose: bool, *,
                            cache_dir, retrain: bool) -> Any:
    """:func:`load_or_train` in data-parallel training (:mod:`faceedit_nb.distributed`): every process trains
    (the engine splits the batch between them), process 0 alone holds the training lock and stores the entry."""
    from . import distributed
    main = distributed.is_main()
    if not retrain:
        found = _load_entry(name, config, path, build_fn, verbose and main)
        if distributed.agree(found is not _MISSING):
            return found
    if main:
        _ensure_writable(name, path, cache_dir)
    error, result = None, None
    with _training_lock(path, name, verbose) if main else contextlib.nullcontext():
        try:
            if main:
                result = _train_and_store(name, config, train_fn, path, build_fn, verbose, cache_dir=cache_dir)
            else:
                result = train_fn(config)
        except Exception as exc:  # the other processes must not wait for this one
            error = exc
    if not distributed.agree(error is None):
        raise error if error is not None else RuntimeError(
            f"another process failed to train or store {name} (its error is in its output)")
    return result
