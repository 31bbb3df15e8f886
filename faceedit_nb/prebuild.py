"""Train the models that the book's chapters need, up front, ``workers`` at a time, saying what it does.

``make book`` runs this before the notebooks execute, so that the models several chapters share (the
oracles, the baselines, the first series' models) are trained once, two at a time on the book's two cores,
with a progress line per running model at most every 30 seconds; the chapters then load them from the
model cache. Each model's settings come from the chapter that uses it: the notebook's declared parameters
with the profile's overrides (``notebooks/profiles.yml``), passed to the same package functions the
chapter calls (``chapter_configs``, ``series_configs``), so both ask the cache for the same entry.

    python -m faceedit_nb.prebuild --profile cpu --workers 2        # what make book runs first
    python -m faceedit_nb.prebuild --profile cpu --list             # the models, cached or not

Models only one chapter trains (the ablations of ``seg_hierarchical/03_ablations``) stay in that chapter.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

from .cache import config_hash, is_cached

__all__ = ["Job", "chapter_parameters", "shared_jobs", "needs", "run_when_ready", "prebuild", "main"]


@dataclass(frozen=True)
class Job:
    """One model to have in the cache: ``kind`` says how to train it, ``config`` what."""
    kind: str             # "oracle", "stargan", "critic-curve", "ganimation", "attgan", "hier-parser", "hierarchical",
    #                       "relative_au", "secgan", "defgan", "lssl-parser", "lssl"
    label: str            # what the progress lines call it
    config: Any           # the config (oracles: (name, size, profile, seed))
    stage: int = 0        # the order jobs start in (-1: the oracles; 1: after the baselines); what a job waits
    #                       for is :func:`needs`

    @property
    def key(self) -> tuple:
        return self.kind, config_hash(self._cache_config())

    def _cache_config(self):
        if self.kind == "oracle":
            from .oracles import oracle_configs
            name, size, profile, seed = self.config
            return oracle_configs(profile, size, seed)[name]
        if self.kind == "hier-parser":
            from .papers.seg_hierarchical import parser_config
            return parser_config(self.config)
        if self.kind == "hierarchical":
            return self.config.cache_key()
        if self.kind == "critic-curve":
            from .papers.stargan import critic_curve_config
            return critic_curve_config(*self.config)
        if self.kind == "lssl-parser":
            from .papers.lssl import parser_config
            return parser_config(self.config)
        return self.config

    @property
    def cache_name(self) -> str:
        if self.kind == "secgan":
            from .papers.secgan import method_name
            return method_name(self.config)
        if self.kind == "critic-curve":
            from .papers.stargan import CRITIC_CURVE_NAME
            return CRITIC_CURVE_NAME
        return f"oracle-{self.config[0]}" if self.kind == "oracle" else self.kind

    def cached(self) -> bool:
        return is_cached(self.cache_name, self._cache_config())


def chapter_names() -> list[str]:
    """The chapters of the book (names under ``notebooks/``)."""
    from . import book
    return list(book.find_notebooks(book.Layout().notebooks_dir))


def chapter_parameters(name: str, profile: str) -> dict[str, Any]:
    """A chapter's parameters at ``profile``: its declared defaults with the profile's overrides."""
    from . import book
    layout = book.Layout()
    notebooks = book.find_notebooks(layout.notebooks_dir)
    if name not in notebooks:
        raise KeyError(f"no chapter {name!r}; chapters: {', '.join(notebooks)}")
    nb = book.read_notebook(notebooks[name])
    declared = book.declared_parameters(nb, name)
    profiles = book.load_profiles(layout.profiles_file or layout.notebooks_dir / "profiles.yml", notebooks)
    return {**declared, **book.profile_overrides(name, declared, profiles, profile)}


# The oracles from the longest to train to the shortest (cpu profile, 1 thread, idle machine: the AU regressor
# 25.9 min, the parser 9.7, the expression classifier 5.1, identity 2.0, attributes 1.9), so that the two
# workers finish the stage as close together as they can.
ORACLE_COST = ("aus", "parser", "expression", "identity", "attributes")


def shared_jobs(profile: str) -> list[Job]:
    """Every model the chapters of ``profile`` share, deduplicated, longest kinds first within a stage."""
    from .oracles import ORACLES
    from .papers import attgan, ganimation, stargan
    from .papers import seg_hierarchical as S

    jobs: list[Job] = []
    oracle_sets: set[tuple[int, str, int]] = set()

    seen: set[tuple] = set()  # the cache keys listed so far (each hashed once)

    def add(kind: str, label: str, config, stage: int = 0) -> None:
        job = Job(kind, label, config, stage)
        if job.key not in seen:
            seen.add(job.key)
            jobs.append(job)

    p = chapter_parameters("baselines/stargan", profile)
    configs = stargan.chapter_configs(p["profile"], seed=p["seed"], attr_iters=p["attr_iters"])
    for domain, cfg in configs.items():
        add("stargan", f"StarGAN ({domain})", cfg)
    oracle_sets.add((cfg.image_size, p["oracle_profile"], p["seed"]))
    # the chapter's critic-as-classifier curve (a fresh critic trained on real faces), with the models
    add("critic-curve", "StarGAN's critic as a classifier",
        (configs["expression"], p["critic_steps"], p["critic_eval_every"]))
    p = chapter_parameters("baselines/ganimation", profile)
    for name, cfg in ganimation.chapter_configs(p["profile"], seed=p["seed"]).items():
        add("ganimation", name, cfg)
    oracle_sets.add((cfg.image_size, p["oracle_profile"], p["seed"]))
    p = chapter_parameters("baselines/attgan", profile)
    for name, cfg in attgan.chapter_configs(p["profile"], seed=p["seed"]).items():
        add("attgan", name, cfg)
    oracle_sets.add((cfg.image_size, p["oracle_profile"], p["seed"]))
    p = chapter_parameters("evaluation", profile)
    oracle_sets.add((p["size"], p["oracle_profile"], p["seed"]))

    p = chapter_parameters("seg_hierarchical/04_results", profile)
    if p["dataset"] == "synthfaces":
        data = dict(dataset=p["dataset"], data_root=p["data_root"], parser_data_root=p["parser_data_root"])
        series = S.series_configs(p["profile"], seed=p["seed"], **data)
        size = next(iter(series.values())).image_size
        oracle_sets.add((size, p["oracle_profile"], p["seed"]))
        add("stargan", "StarGAN (the series' global generator)",
            stargan.StarGANConfig.profile(p["profile"], image_size=size))
        add("ganimation", "GANimation (the series' Table 1)",
            ganimation.GANimationConfig.profile(p["profile"], image_size=size))
        for name, cfg in series.items():
            if cfg.parts == "semantic":
                add("hier-parser", f"parser of '{name}'", cfg)
            add("hierarchical", f"hierarchical: {name}", cfg, stage=1)

    names = chapter_names()
    if "relative_au/04_results" in names:  # Ling et al.: the six models its 02, 03 and 04 load
        from .papers import relative_au as R
        p = chapter_parameters("relative_au/04_results", profile)
        series = R.series_configs(p["profile"], seed=p["seed"])
        for name, cfg in series.items():
            add("relative_au", f"relative AUs: {name}", cfg)
        oracle_sets.add((cfg.image_size, p["oracle_profile"], p["seed"]))

    if "defgan/04_results" in names:  # DefGAN: the model and its ablations (02, 03 and 04 load them)
        from .papers import defgan
        p = chapter_parameters("defgan/04_results", profile)
        series = defgan.series_configs(p["profile"], seed=p["seed"])
        for name, cfg in series.items():
            add("defgan", f"DefGAN: {name}", cfg)
        oracle_sets.add((cfg.image_size, p["oracle_profile"], p["seed"]))
        # Eq. 12's face embedding: an identity network of another seed than the judge's (after the judges, below)
        face_id = (f"oracle identity ({cfg.image_size} px, {cfg.curve_oracles}, seed {cfg.identity_seed}, "
                   "DefGAN's Eq. 12)", ("identity", cfg.image_size, cfg.curve_oracles, cfg.identity_seed))

    if "secgan/04_results" in names:  # SeCGAN: the eight models its 02, 03 and 04 load (P first, stage 0)
        from .papers import secgan
        p = chapter_parameters("secgan/02_training", profile)
        if p["dataset"] == "synthfaces":
            series = secgan.series_configs(p["profile"], seed=p["seed"], dataset=p["dataset"],
                                           data_root=p["data_root"], parser_data_root=p["parser_data_root"])
            for key, cfg in series.items():
                add("secgan", "SeCGAN: " + " / ".join(key), cfg, stage=1)
            q = chapter_parameters("secgan/04_results", profile)
            oracle_sets.add((cfg.image_size, q["oracle_profile"], q["seed"]))

    if "lssl/04_results" in names:  # LSSL: the nine models its 02, 03 and 04 load (the parser P first, stage 0)
        from .papers import lssl
        p = chapter_parameters("lssl/04_results", profile)
        models = {**lssl.series_configs(p["profile"], seed=p["seed"]),
                  **{f"{a} model": c for a, c in lssl.attribute_configs(p["profile"], seed=p["seed"]).items()},
                  **{f"pose normalisation: {n}": c for n, c in lssl.pose_configs(p["profile"], seed=p["seed"]).items()}}
        for name, cfg in models.items():
            if cfg.lambda_p:
                add("lssl-parser", f"LSSL's parser P ({cfg.image_size} px)", cfg)
            add("lssl", f"LSSL: {name}", cfg, stage=1)
        oracle_sets.add((cfg.image_size, p["oracle_profile"], p["seed"]))

    # The oracles form the first stage, the longest first: every learning curve loads them at its first point,
    # so GAN jobs started before them would train them inside their own processes, one at a time behind the
    # cache's locks, while the other worker waited.
    for size, oracle_profile, seed in sorted(oracle_sets):
        for name in sorted(ORACLES, key=ORACLE_COST.index):
            add("oracle", f"oracle {name} ({size} px, {oracle_profile})", (name, size, oracle_profile, seed),
                stage=-1)
    if "defgan/04_results" in names:
        add("oracle", *face_id, stage=-1)
    order = {"oracle": 1, "stargan": 0, "ganimation": 2, "attgan": 3, "hier-parser": 4, "relative_au": 5,
             "critic-curve": 6, "hierarchical": 7, "secgan": 8, "defgan": 9, "lssl-parser": 10, "lssl": 11}
    return sorted(jobs, key=lambda j: (j.stage, order[j.kind]))


def needs(job: Job, jobs: list[Job]) -> list[Job]:
    """The jobs of ``jobs`` that must be in the cache before ``job`` starts: the oracles for a model whose
    training measures a learning curve (it loads them at its first point) and for DefGAN (Eq. 12's face
    embedding is an identity network); a hierarchical model's StarGAN and parser; an LSSL model's parser P.
    A job started earlier would still be right (the cache's locks make it wait), but it would hold a worker."""
    wants = set()
    if getattr(job.config, "curve_every", 0) or job.kind == "defgan":
        wants.add("oracle")
    wants |= {"hierarchical": {"stargan", "hier-parser"}, "lssl": {"lssl-parser"}}.get(job.kind, set())
    return [j for j in jobs if j.kind in wants and j is not job]


def run_when_ready(fn: Callable, jobs: list[Job], *, workers: int):
    """``fn(job)`` for every job, ``workers`` processes at a time, yielding each result as its call ends. Jobs
    start in the order of ``jobs``, each as soon as a worker is free and every job it :func:`needs` has ended:
    no stage waits for the longest job of the one before it."""
    if workers <= 1 or len(jobs) <= 1:
        yield from (fn(job) for job in jobs)  # in order: a job's needs come before it in shared_jobs
        return
    waiting = {job.key: [n.key for n in needs(job, jobs)] for job in jobs}
    pending, finished, running = list(jobs), set(), {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        while pending or running:
            for job in [j for j in pending if all(k in finished for k in waiting[j.key])]:
                if len(running) == workers:
                    break
                pending.remove(job)
                running[ex.submit(fn, job)] = job
            if not running:
                raise RuntimeError(f"prebuild: {', '.join(j.label for j in pending)} wait for jobs that never end")
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in ended:
                finished.add(running.pop(future).key)
                yield future.result()


def _run(job: Job) -> tuple[str, float]:
    """Train (or load) one job's model in this process, with one torch thread; returns its label and seconds."""
    import torch
    torch.set_num_threads(1)
    start = time.perf_counter()
    kind, cfg = job.kind, job.config
    if kind == "oracle":
        from .oracles import load_oracles
        name, size, profile, seed = cfg
        load_oracles(size=size, profile=profile, seed=seed, which=(name,), verbose=False)
    elif kind in ("stargan", "ganimation", "attgan"):
        from .papers import attgan, ganimation, stargan
        load = {"stargan": stargan.load_stargan, "ganimation": ganimation.load_ganimation,
                "attgan": attgan.load_attgan}[kind]
        load(cfg, progress=False, threads=1)
    elif kind == "critic-curve":
        from .papers.stargan import load_critic_curve
        load_critic_curve(*cfg, threads=1)
    elif kind == "secgan":  # its parser P is pre-trained (and cached) by the first model that needs it
        from .papers.secgan import load_secgan
        load_secgan(cfg, progress=False, threads=1)
    elif kind == "relative_au":
        from .papers.relative_au import load_relative_au
        load_relative_au(cfg, progress=False, threads=1)
    elif kind == "defgan":
        from .papers.defgan import load_defgan
        load_defgan(cfg, progress=False, threads=1)
    elif kind == "lssl-parser":
        from .papers.lssl import load_parser as load_lssl_parser
        load_lssl_parser(cfg, threads=1)
    elif kind == "lssl":
        from .papers.lssl import load_lssl
        load_lssl(cfg, progress=False, threads=1)
    elif kind == "hier-parser":
        from .papers.seg_hierarchical import load_parser
        load_parser(cfg, threads=1)
    elif kind == "hierarchical":
        from .papers.seg_hierarchical import load_hierarchical
        load_hierarchical(cfg, progress=False, threads=1)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    return job.label, time.perf_counter() - start


def prebuild(profile: str, *, workers: int = 2, every: float = 30.0, stream=None) -> dict[str, float]:
    """Train every missing shared model of ``profile``, ``workers`` processes at a time (each as soon as what
    it :func:`needs` is trained), printing progress at most every ``every`` seconds; returns
    ``{label: seconds}`` of what it trained."""
    from .progress import Monitor
    stream = stream or sys.stdout
    jobs = shared_jobs(profile)
    missing = [j for j in jobs if not j.cached()]
    print(f"prebuild ({profile}): {len(jobs)} shared models, {len(jobs) - len(missing)} cached, "
          f"{len(missing)} to train, {workers} at a time", file=stream, flush=True)
    done: dict[str, float] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="faceedit-progress-") as tmp, Monitor(tmp, every=every, stream=stream):
        for label, seconds in run_when_ready(_run, missing, workers=workers):  # each as it ends
            done[label] = seconds
            print(f"  trained {label} in {seconds / 60:.1f} min", file=stream, flush=True)
    if missing:
        print(f"prebuild ({profile}): {len(missing)} models in {(time.perf_counter() - start) / 60:.1f} min",
              file=stream, flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m faceedit_nb.prebuild", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True, choices=("smoke", "cpu", "paper"))
    ap.add_argument("--workers", type=int, default=2, help="models trained at once (default 2: the book's cores)")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between progress lines (default 30)")
    ap.add_argument("--list", action="store_true", help="list the shared models and whether they are cached")
    args = ap.parse_args(argv)
    if args.workers < 1:
        ap.error(f"--workers must be at least 1; got {args.workers}")
    if args.list:
        for j in shared_jobs(args.profile):
            print(f"{'cached ' if j.cached() else 'missing'}  stage {j.stage}  {j.label}")
        return 0
    prebuild(args.profile, workers=args.workers, every=args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
