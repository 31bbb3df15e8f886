"""faceedit_nb.prebuild and faceedit_nb.progress: the shared models trained up front, with progress lines."""
import io
import json
import time
from pathlib import Path

import pytest

from faceedit_nb import prebuild as P
from faceedit_nb import progress
from faceedit_nb.papers import attgan, defgan, ganimation, lssl, stargan


def test_shared_jobs_take_each_chapters_parameters_and_profile_overrides():
    jobs = P.shared_jobs("smoke")
    labels = [j.label for j in jobs]
    assert len({j.key for j in jobs}) == len(jobs), "a model listed twice"
    params = P.chapter_parameters("baselines/stargan", "smoke")
    assert params["attr_iters"] != P.chapter_parameters("baselines/stargan", "cpu")["attr_iters"]  # profiles.yml
    want = stargan.chapter_configs("smoke", seed=params["seed"], attr_iters=params["attr_iters"])
    got = {j.label: j.config for j in jobs if j.kind == "stargan"}
    assert got["StarGAN (attributes13)"] == want["attributes13"] and got["StarGAN (expression)"] == want["expression"]
    assert all(c in [j.config for j in jobs if j.kind == "attgan"] for c in attgan.chapter_configs("smoke").values())
    assert ganimation.chapter_configs("smoke")["GANimation"] in [j.config for j in jobs if j.kind == "ganimation"]
    # the five judges and DefGAN's face embedding (Eq. 12), an identity network of another seed
    assert sum(j.kind == "oracle" for j in jobs) == 6 and sum(j.kind == "hierarchical" for j in jobs) == 3
    assert all(j.stage == 1 for j in jobs if j.kind == "hierarchical")
    # the oracles first (every learning curve loads them), the longest to train first
    oracles = [j for j in jobs if j.kind == "oracle"]
    assert jobs[:6] == oracles and {j.stage for j in oracles} == {-1} and min(j.stage for j in jobs[6:]) > -1
    assert [j.config[0] for j in oracles] == ["aus", "parser", "expression", "identity", "attributes", "identity"]
    assert [j.config[3] for j in oracles] == [0, 0, 0, 0, 0, 1]
    assert [j.kind for j in jobs].count("defgan") == len(defgan.SERIES)
    # LSSL: its four expression models, the yaw and lighting models, three refiners; its parser P before them
    got = [j.config for j in jobs if j.kind == "lssl"]
    assert got == [*lssl.series_configs("smoke").values(), *lssl.attribute_configs("smoke").values(),
                   *lssl.pose_configs("smoke").values()]
    parser = labels.index("LSSL's parser P (32 px)")
    assert jobs[parser].stage == 0 and all(j.stage == 1 for j in jobs if j.kind == "lssl")
    assert parser < min(i for i, j in enumerate(jobs) if j.kind == "lssl")
    assert labels.index("hierarchical: ours w/ end-to-end") > labels.index("StarGAN (expression)")


def _finish_after(item: tuple[str, str]) -> str:
    """A pool job: "slow" ends only once "fast" has left its mark (a file), whatever the clock says."""
    name, folder = item
    mark = Path(folder) / "fast.done"
    if name == "fast":
        mark.write_text("done")
        return name
    deadline = time.monotonic() + 120
    while not mark.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the fast job never ran beside the slow one")
        time.sleep(0.05)
    return name


def test_prebuild_hears_of_each_model_when_it_ends_not_when_its_stage_ends(tmp_path):
    """Two workers: the model listed first but ending last no longer holds back the news of the other."""
    from faceedit_nb.methods import results_as_completed, train_in_pool
    items = [("slow", str(tmp_path)), ("fast", str(tmp_path))]
    assert list(results_as_completed(_finish_after, items, workers=2)) == ["fast", "slow"]
    (tmp_path / "fast.done").unlink()
    assert train_in_pool(_finish_after, items, workers=2) == ["slow", "fast"]  # the list keeps the items' order


def _mark_and_wait(item) -> str:
    """A pool job for run_when_ready: writes <label>.start, then ends (the oracle and the critic curve each
    only once the other has started beside it, whatever the clock or the order the workers spawn in says);
    returns the labels that had ended when it started."""
    job, folder = item.job, Path(item.folder)
    ended = sorted(p.stem for p in folder.glob("*.end"))
    (folder / f"{job.kind}.start").write_text("")
    partner = {"oracle": "critic-curve", "critic-curve": "oracle"}.get(job.kind)
    deadline = time.monotonic() + 120
    while partner and not (folder / f"{partner}.start").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{partner} did not start beside {job.kind}")
        time.sleep(0.05)
    (folder / f"{job.kind}.end").write_text("")
    return f"{job.kind} after {ended}"


class _Item:  # a job and the test's folder: what run_when_ready passes to the pool function
    def __init__(self, job, folder):
        self.job, self.folder, self.key, self.kind, self.config = job, folder, job.key, job.kind, job.config
        self.label = job.label


def test_a_job_starts_when_what_it_needs_has_ended_not_when_its_stage_has(tmp_path):
    jobs = P.shared_jobs("smoke")
    oracle = next(j for j in jobs if j.kind == "oracle")
    defgan_job = next(j for j in jobs if j.kind == "defgan")
    critic = next(j for j in jobs if j.kind == "critic-curve")
    lssl_job, lssl_parser = (next(j for j in jobs if j.kind == k) for k in ("lssl", "lssl-parser"))
    hier = next(j for j in jobs if j.kind == "hierarchical")
    assert P.needs(defgan_job, [oracle, critic]) == [oracle] and P.needs(critic, [oracle, defgan_job]) == []
    assert P.needs(lssl_job, [lssl_parser, critic]) == [lssl_parser]
    assert {j.kind for j in P.needs(hier, jobs)} >= {"stargan", "hier-parser"}
    curved = next(j for j in jobs if j.kind == "stargan" and j.config.curve_every)
    assert oracle in P.needs(curved, jobs)
    # two workers: the oracle and the DefGAN model listed first, but DefGAN waits for the oracle, so the critic
    # curve (which needs nothing) runs beside the oracle, and DefGAN starts once the oracle has ended
    items = [_Item(j, str(tmp_path)) for j in (oracle, defgan_job, critic)]
    got = list(P.run_when_ready(_mark_and_wait, items, workers=2))
    assert len(got) == 3 and "oracle after []" in got and "critic-curve after []" in got
    assert "'oracle'" in next(g for g in got if g.startswith("defgan"))


def test_prebuild_trains_the_missing_models_two_at_a_time_then_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "cache"))
    jobs = [j for j in P.shared_jobs("smoke") if j.label in ("StarGAN (expression)", "oracle parser (32 px, smoke)")]
    assert len(jobs) == 2
    monkeypatch.setattr(P, "shared_jobs", lambda profile: jobs)
    out = io.StringIO()
    trained = P.prebuild("smoke", workers=2, every=1.0, stream=out)
    assert set(trained) == {j.label for j in jobs} and all(j.cached() for j in jobs)
    text = out.getvalue()
    assert "2 to train, 2 at a time" in text and "done" in text
    again = io.StringIO()
    assert P.prebuild("smoke", workers=2, stream=again) == {}
    assert "2 cached, 0 to train" in again.getvalue()


def test_the_critic_curve_is_measured_up_front_and_read_back_by_the_chapter(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "cache"))
    jobs = [j for j in P.shared_jobs("smoke") if j.kind == "critic-curve"]
    params = P.chapter_parameters("baselines/stargan", "smoke")
    cfg = stargan.chapter_configs("smoke", seed=params["seed"], attr_iters=params["attr_iters"])["expression"]
    assert [j.config for j in jobs] == [(cfg, params["critic_steps"], params["critic_eval_every"])]
    assert not jobs[0].cached()
    monkeypatch.setattr(P, "shared_jobs", lambda profile: jobs)
    assert set(P.prebuild("smoke", workers=1, stream=io.StringIO())) == {jobs[0].label} and jobs[0].cached()

    def trained_again(*args, **kwargs):
        raise AssertionError("the chapter trained the critic again instead of reading the cached curve")
    monkeypatch.setattr(stargan, "critic_as_classifier", trained_again)
    curve = stargan.load_critic_curve(cfg, params["critic_steps"], params["critic_eval_every"])
    assert curve["steps"][-1] == params["critic_steps"] and len(curve["accuracy"]) == len(curve["steps"])
    assert all(0.0 <= a <= 1.0 for a in curve["accuracy"]) and curve["seconds"] > 0
    with pytest.raises(AssertionError, match="trained the critic again"):  # another config is measured anew
        stargan.load_critic_curve(cfg, params["critic_steps"] + 1, params["critic_eval_every"])


def test_progress_lines_give_steps_elapsed_and_time_left(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    progress.report("quiet", 1, 10)  # no directory: nothing written, nothing raised
    mon = progress.Monitor(tmp_path, every=60)
    (tmp_path / "run.json").write_text(json.dumps({"task": "run", "step": 10, "total": 100, "time": time.time()}))
    assert mon.lines() == ["run: 10/100 (10%), 0:00 elapsed, time left: measuring"]
    mon._first["run"] = (time.time() - 60, 0)  # 10 steps a minute so far: 90 steps, 9 minutes left
    line = mon.lines()[0]
    assert line.startswith("run: 10/100 (10%), 1:00 elapsed, ~9:0") and line.endswith("left")
    (tmp_path / "run.json").write_text(json.dumps({"task": "run", "step": 100, "total": 100, "time": time.time()}))
    assert mon.lines()[0].startswith("run: done, 100 steps") and mon.lines() == []


def test_monitor_sets_the_directory_for_the_workers_and_restores_it(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    out = io.StringIO()
    with progress.Monitor(tmp_path / "p", every=0.2, stream=out):
        progress.report("task-a", 3, 3)
        time.sleep(0.5)
    assert progress.ENV not in __import__("os").environ
    assert "task-a: done, 3 steps" in out.getvalue()
    with pytest.raises(KeyError, match="no chapter"):
        P.chapter_parameters("no/such", "smoke")


def test_a_chapter_without_training_still_says_it_is_running(tmp_path):
    out = io.StringIO()
    with progress.Monitor(tmp_path / "p", every=0.2, stream=out, label="  ", heartbeat="baselines/stargan"):
        time.sleep(0.5)
    lines = out.getvalue().splitlines()
    assert lines and all(l.startswith("[0:00]   baselines/stargan: running") for l in lines)
