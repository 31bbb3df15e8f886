"""Train one model of the book data-parallel, one process per GPU (gloo processes on a CPU), and store it in the
model cache, where the chapters find it:

    torchrun --nproc_per_node 4 -m faceedit_nb.parallel --model "SeCGAN: attributes13 / AttGAN / secgan"
    torchrun --nproc_per_node 4 -m faceedit_nb.parallel --method stargan --profile paper --set batch_size=32

``--model`` takes a model's label as the chapters train it (``python -m faceedit_nb.prebuild --profile paper
--list`` lists them): the same config, so the same cache entry, as the chapter asks for. ``--method`` builds a
config from a method's profile and ``--set`` changes.

How the processes share the work (the batch split, gradients averaged, one writer, resuming on any number of
processes) is :mod:`faceedit_nb.distributed`. Kept apart from it so that the engine, which every chapter
imports, does not import every method.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import torch.distributed as dist

from .distributed import init_from_env, is_main
from .storage import use_storage

__all__ = ["METHODS", "config_from_args", "job_config", "train", "main"]


def _methods() -> dict[str, tuple]:
    """method -> (config class, load function); the load function trains through the model cache."""
    from .papers import attgan, defgan, ganimation, lssl, relative_au, secgan, stargan
    from .papers import seg_hierarchical as S
    return {
        "stargan": (stargan.StarGANConfig, stargan.load_stargan),
        "ganimation": (ganimation.GANimationConfig, ganimation.load_ganimation),
        "attgan": (attgan.AttGANConfig, attgan.load_attgan),
        "hierarchical": (S.HierarchicalConfig, S.load_hierarchical),
        "secgan-stargan": (secgan.SeCGANStarGANConfig, secgan.load_secgan),
        "secgan-attgan": (secgan.SeCGANAttGANConfig, secgan.load_secgan),
        "relative_au": (relative_au.RelativeAUConfig, relative_au.load_relative_au),
        "defgan": (defgan.DefGANConfig, defgan.load_defgan),
        "lssl": (lssl.LSSLConfig, lssl.load_lssl),
    }


METHODS = ("stargan", "ganimation", "attgan", "hierarchical", "secgan-stargan", "secgan-attgan", "relative_au",
           "defgan", "lssl")


def _parse_value(text: str, current: Any) -> Any:
    """A ``--set`` value in the type of the field's current value."""
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, tuple):
        return tuple(type(current[0])(v) if current else v for v in text.split(","))
    return text


def config_from_args(method: str, profile: str, settings: Sequence[str]):
    """The config of ``method`` at ``profile`` with ``key=value`` settings (each in its field's type)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    cls = _methods()[method][0]
    cfg = cls.profile(profile)
    changes = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or key not in cfg.__dataclass_fields__:
            fields = ", ".join(cfg.__dataclass_fields__)
            raise ValueError(f"--set {item!r}: expected key=value with a field of {cls.__name__} ({fields})")
        try:
            changes[key] = _parse_value(text, getattr(cfg, key))
        except ValueError as exc:
            raise ValueError(f"--set {item!r}: {exc}") from None
    return cls.profile(profile, **changes)


# prebuild's job kinds that train through the engine: each is also the --method that trains it
_ENGINE_KINDS = ("stargan", "ganimation", "attgan", "hierarchical", "relative_au", "defgan", "lssl")


def job_config(label: str, profile: str) -> tuple[str, Any]:
    """``(method, config)`` of the model the chapters train under ``label`` at ``profile``."""
    from .prebuild import shared_jobs
    jobs = shared_jobs(profile)
    job = next((j for j in jobs if j.label == label), None)
    if job is None:
        close = [j.label for j in jobs if label.lower() in j.label.lower()]
        raise ValueError(f"no {profile}-profile model is labelled {label!r}" + (
            f"; did you mean {' or '.join(map(repr, close))}?" if close else
            f"; python -m faceedit_nb.prebuild --profile {profile} --list lists them"))
    if job.kind == "secgan":
        return ("secgan-attgan" if hasattr(job.config, "n_d") else "secgan-stargan"), job.config
    if job.kind not in _ENGINE_KINDS:
        raise ValueError(f"{label!r} ({job.kind}) trains with its own loop, not the engine: train it in one process "
                         f"(python -m faceedit_nb.prebuild --profile {profile})")
    return job.kind, job.config


def train(method: str, cfg, *, outdir=None, cache_dir=None, threads: int | None = None):
    """Train (or load) ``cfg`` with every process of the group: what each chapter's ``load_<method>`` does, the
    model cache included, so that the chapters find the result. The oracles a learning curve needs are loaded
    first, by every process together (process 0 measures the curve's points alone)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    load = _methods()[method][1]
    if getattr(cfg, "curve_every", 0):
        from .oracles import load_oracles
        load_oracles(size=cfg.image_size, profile=cfg.curve_oracles, verbose=is_main())
    return load(cfg, outdir=outdir, progress=is_main(), cache_dir=cache_dir, threads=threads)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node N -m faceedit_nb.parallel",
        description="Train one model of the book data-parallel (one process per GPU; gloo on the CPU) and store it "
                    "in the model cache, where the chapters find it.")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a model's label as the chapters train it (prebuild --list)")
    which.add_argument("--method", choices=METHODS, help="a method, at --profile with --set changes")
    ap.add_argument("--profile", default="paper", choices=("smoke", "cpu", "paper"))
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                    help="change a config field (repeatable), e.g. --set batch_size=32")
    ap.add_argument("--storage", default="", help="folder of the runs and trained models, as the chapters' "
                    "storage parameter (default: $FACEEDIT_CACHE or ~/.cache/faceedit-nb); on Colab one on Google "
                    "Drive, so that a new session resumes the run")
    ap.add_argument("--outdir", default=None, help="only the run directories elsewhere (default: storage's runs/)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    args = ap.parse_args(argv)
    try:
        if args.model:
            if args.settings:
                ap.error("--set changes a --method's config; a --model is trained as its chapter trains it")
            args.method, cfg = job_config(args.model, args.profile)
        else:
            cfg = config_from_args(args.method, args.profile, args.settings)
    except ValueError as exc:
        ap.error(str(exc))
    size = init_from_env()
    batch = getattr(cfg, "batch_size", 0)
    if size > 1 and batch % size:
        ap.error(f"the global batch of {batch} does not split over {size} processes: --set batch_size=<a multiple of "
                 f"{size}>, or --nproc_per_node a divisor of {batch}")
    use_storage(args.storage)
    if is_main():
        print(f"faceedit_nb.parallel: {args.method} ({args.profile}) on {size} process(es), global batch "
              f"{getattr(cfg, 'batch_size', '?')}", flush=True)
    try:
        trained = train(args.method, cfg, outdir=args.outdir, threads=args.threads)
        if is_main():
            print(f"trained {args.method}: {len(trained.stats)} stats rows, {trained.train_seconds:.1f} s of training",
                  flush=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
