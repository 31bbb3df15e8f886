"""The paper-profile dry run (faceedit_nb.dryrun) and what the chapters show of it (faceedit_nb.paper_scale)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from faceedit_nb import dryrun, paper_scale, prebuild, storage
from faceedit_nb.papers import attgan, ganimation, stargan

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_flops_are_counted_through_the_gradient_penalty():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    with dryrun._measured() as forward_only:
        conv(x)
    assert forward_only["flops"] == 2 * 4 * 8 * 16 * 16 * 3 * 3 * 3  # 2 x MACs of the convolution
    with dryrun._measured() as penalty:  # FlopCounterMode's module hooks refuse autograd.grad; this count does not
        out = conv(x)
        grad, = torch.autograd.grad(out.sum(), x, create_graph=True)
        grad.square().sum().backward()
    assert penalty["flops"] > 2 * forward_only["flops"] and penalty["seconds"] >= 0 and penalty["peak_mib"] >= 0


def test_an_iteration_is_averaged_over_one_critic_and_generator_cycle():
    assert dryrun._period(stargan.StarGANConfig.paper().__dict__) == 5
    assert dryrun._period(ganimation.GANimationConfig.paper().__dict__) == 5
    assert dryrun._period(attgan.AttGANConfig.paper().__dict__) == attgan.AttGANConfig.paper().n_d + 1


def test_the_smallest_paper_model_dry_runs_end_to_end():
    costs = paper_scale.load_costs()
    measured = [r for r in costs["rows"] if r["measured_iterations"]]  # rows written by --update (not edited)
    smallest = min(measured, key=lambda r: r["cpu_seconds_per_iteration"] * r["measured_iterations"])
    printed = io.StringIO()
    rows = dryrun.dry_run("paper", only=[smallest["label"]], threads=1, stream=printed)
    row = next(r for r in rows if r.label == smallest["label"])
    job = next(j for j in dryrun.model_jobs("paper") if j.label == row.label)
    assert row.key == dryrun.job_key(job) and row.series == dryrun.series_of(job)
    net, batch, size, steps = dryrun._network_of(job) if job.kind in dryrun.NETWORK_KINDS else (None, 0, 0, 0)
    if net is not None:
        assert row.params == sum(p.numel() for p in net.parameters()) and row.iterations == steps
        assert (row.image_size, row.batch_size) == (size, batch)
    assert row.flops_per_iteration > 0 and row.eval_flops > 0 and row.peak_mib >= 0
    # the same model measured twice: the FLOP count is exact, not a timing
    assert row.flops_per_iteration == pytest.approx(smallest["flops_per_iteration"], rel=1e-9)
    hours = row.iterations * row.flops_per_iteration / (dryrun.GPUS["T4"] * dryrun.EFFICIENCY["T4"]) / 3600
    assert row.gpu_hours("T4") == pytest.approx(hours)
    assert row.label in printed.getvalue() and "(estimates)" in printed.getvalue()
    table = dryrun.format_table(rows)
    assert table.count("\n") == len(rows) + 1 and f"| {row.label} | {row.image_size} |" in table


def test_a_gan_dry_runs_through_the_engine_with_its_dependencies_built_untrained(tmp_path, monkeypatch):
    """A smoke-size hierarchical model: its parser and global StarGAN are stand-ins, nothing is trained or cached."""
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path))
    job = next(j for j in prebuild.shared_jobs("smoke") if j.kind == "hierarchical" and "end-to-end" in j.label
               and "w/o" not in j.label)
    row = dryrun.measure(job, iterations=1)
    cfg = job.config
    assert row.measured_iterations == cfg.n_critic  # one whole critic / generator cycle
    assert row.iterations == cfg.steps and row.series == "seg_hierarchical"
    assert row.flops_per_iteration > 0 and row.eval_flops > 0
    assert not list(tmp_path.rglob("weights.pt"))  # nothing stored in the cache


def test_the_chapters_estimates_are_of_the_models_they_train():
    """A paper config changed since its row was measured: the page would show another model's cost."""
    costs = paper_scale.load_costs()
    rows = {r["label"]: r for r in costs["rows"]}
    stale = []
    for job in dryrun.model_jobs("paper"):
        row = rows.get(job.label)
        if row is None or row["key"] != dryrun.job_key(job) or row["series"] != dryrun.series_of(job):
            stale.append(job.label)
    fix = " ".join(f'--only "{label}"' for label in stale)
    assert not stale, f"re-measure them: python -m faceedit_nb.dryrun --update --threads 1 {fix}"
    # every series has a chapter that shows it
    shown = set()
    for nb in (ROOT / "notebooks").rglob("*.ipynb"):
        text = nb.read_text()
        shown |= {s for s in {r["series"] for r in costs["rows"]} if f'paper_scale.note(\\"{s}\\"' in text}
    assert shown == {r["series"] for r in costs["rows"]}
    assert {"efficiency", "gpus", "measured", "calibration"} <= set(costs)


def test_the_note_shows_the_estimates_and_how_to_resume_on_colab():
    md = paper_scale.note("baselines/attgan", "", chapter="baselines/attgan").data
    for label in ("AttGAN", "STGAN-diff"):
        assert f"| {label} |" in md
    assert "**all 2**" in md and 'storage = "/content/drive/MyDrive/faceedit-nb"' in md
    assert "resumes from its last snapshot" in md and "torchrun --nproc_per_node" in md
    with pytest.raises(KeyError, match="holds no model of 'nope'"):
        paper_scale.series_costs("nope")


def test_storage_moves_the_cache_or_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "before"))
    assert storage.use_storage("") is None and os.environ["FACEEDIT_CACHE"] == str(tmp_path / "before")
    assert storage.use_storage(tmp_path / "drive") == (tmp_path / "drive").resolve()
    from faceedit_nb.cache import cache_root
    assert cache_root() == (tmp_path / "drive").resolve()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="mount Google Drive first"):
        storage.use_storage(blocker / "runs")


def test_the_books_runner_hands_a_dry_run_to_the_dry_run(monkeypatch):
    from faceedit_nb import book
    seen = []
    monkeypatch.setattr(dryrun, "main", lambda argv: seen.append(argv) or 0)
    assert book.main(["--profile", "paper", "--dry-run", "--only", "GANimation", "--only", "AttGAN"]) == 0
    assert seen == [["--profile", "paper", "--only", "GANimation", "--only", "AttGAN"]]
