"""Data-parallel training (faceedit_nb.distributed): two CPU processes with gloo, launched as torchrun launches them,
train like one process on the combined batch; a SIGKILLed two-process run resumes, also on one process; the
command stores the model where the chapters find it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from faceedit_nb import distributed as D
from faceedit_nb import losses, parallel

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# One training run, as a script: method, run directory, iterations, delay per batch (to kill it mid-way).
# Plain SGD instead of the methods' Adam: Adam divides each gradient by its own running size, so float noise in a
# gradient that is zero in exact arithmetic (StarGAN's first conv sees the label as constant planes, which
# instance norm removes) becomes a full-size step; with SGD the weights show what the gradients are.
WORKER = textwrap.dedent("""
    import sys, time
    import torch
    from faceedit_nb import distributed as D
    from faceedit_nb.papers import ganimation as GA, stargan as SG

    method, run_dir, iters, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    D.init_from_env()
    torch.set_num_threads(1)
    sgd = lambda cfg, nets: {k: torch.optim.SGD(m.parameters(), lr=1e-3) for k, m in nets.items()}
    SG.stargan_optimizers = GA.ganimation_optimizers = sgd
    common = dict(curve_every=0, precision="fp32", snapshot_every=4, sample_every=4, log_every=1)

    def slowed(batches):  # gives a test time to kill the run mid-way; no effect on the numbers
        class Slow(batches):
            def __call__(self, step):
                time.sleep(delay)
                return super().__call__(step)
        return Slow

    if method == "stargan":
        cfg = SG.StarGANConfig.smoke(num_iters=iters, num_iters_decay=0, n_critic=2, **common)
        SG.SynthFacesBatches = slowed(SG.SynthFacesBatches)  # the name train_stargan builds its batches with
        tr = SG.train_stargan(cfg, run_dir=run_dir, progress=False)
    else:
        cfg = GA.GANimationConfig.smoke(**common)
        GA.GANimationBatches = slowed(GA.GANimationBatches)
        tr = GA.train_ganimation(cfg, run_dir=run_dir, progress=False)
    print("finished", D.rank(), tr.step, flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
""")

BATCH_NORM = textwrap.dedent("""
    import json, sys
    import torch
    from faceedit_nb import distributed as D
    D.init_from_env()
    torch.manual_seed(0)
    x = torch.randn(8, 4, 5, 5) * 3 + 20  # a large mean: E[x^2] - E[x]^2 would lose the variance
    w = torch.randn(8, 4, 5, 5)
    ref = torch.nn.BatchNorm2d(4)
    torch.nn.init.uniform_(ref.weight); torch.nn.init.uniform_(ref.bias)
    mine = torch.nn.BatchNorm2d(4)
    mine.load_state_dict(ref.state_dict())
    assert D.sync_batch_norm(torch.nn.Sequential(mine)) == 1
    r = D.rank()
    xl = x[4 * r:4 * r + 4].clone().requires_grad_(True)
    (mine(xl) * w[4 * r:4 * r + 4]).mean().backward()        # each process: the mean over its half
    D.average_gradients(mine.parameters())
    xr = x.clone().requires_grad_(True)
    (ref(xr) * w).mean().backward()                           # one process: the mean over the whole batch
    # each process's loss is twice its share of the whole batch's mean: its input's gradient is twice the share's
    err = {"input grad": (xl.grad - 2 * xr.grad[4 * r:4 * r + 4]).abs().max().item(),
           "weight grad": (mine.weight.grad - ref.weight.grad).abs().max().item(),
           "bias grad": (mine.bias.grad - ref.bias.grad).abs().max().item(),
           "running mean": (mine.running_mean - ref.running_mean).abs().max().item(),
           "running var": (mine.running_var - ref.running_var).abs().max().item()}
    mine.train(); ref.train()
    y_mine, y_ref = mine(x[4 * r:4 * r + 4]), ref(x)[4 * r:4 * r + 4]
    err["output"] = (y_mine - y_ref).abs().max().item()
    open(f"{sys.argv[1]}/err-{r}.json", "w").write(json.dumps(err))
    torch.distributed.destroy_process_group()
""")


# Process 0 measures a learning-curve point alone while process 1 waits for it; torchmetrics would try to gather
# its states from both (a deadlock) unless the metrics are local.
ALONE = textwrap.dedent("""
    import sys
    import torch
    from faceedit_nb import distributed as D
    from faceedit_nb.metrics.distribution import frechet_distance, kernel_distance
    D.init_from_env()
    if D.rank() == 0:
        with D.alone():
            assert D.world_size() == 1 and D.is_main()
            torch.manual_seed(0)
            real, fake = torch.randn(64, 8), torch.randn(64, 8) + 1
            fid = frechet_distance(real, fake)
            kid = kernel_distance(real, fake, subsets=2, subset_size=16)
        open(f"{sys.argv[1]}/fid.txt", "w").write(repr(fid))
    else:
        assert not D.is_main() and D.world_size() == 2
    D.barrier()
    torch.distributed.destroy_process_group()
""")


def _env(cache: Path) -> dict:
    return {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "FACEEDIT_CACHE": str(cache),
            "FACEEDIT_DEVICE": "cpu"}


def _launch(args: list[str], cache: Path, nproc: int) -> subprocess.Popen:
    """``args`` run in ``nproc`` processes as torchrun runs them (its own session, so that a test can kill the
    launcher and its workers together), or in this interpreter's python when ``nproc`` is 1."""
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
           if nproc > 1 else [sys.executable]) + args
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out[-2000:]}\n{err[-4000:]}"
    return out


def _last_snapshot(run_dir: Path) -> dict:
    return torch.load(sorted(run_dir.glob("snapshot-*.pt"))[-1], weights_only=True)


def _max_weight_difference(a: dict, b: dict) -> float:
    return max((t - b["models"][k][n]).abs().max().item() for k in a["models"] for n, t in a["models"][k].items()
               if t.is_floating_point())


def test_global_batch_norm_equals_batch_norm_on_the_whole_batch(tmp_path):
    script = tmp_path / "bn.py"
    script.write_text(BATCH_NORM)
    _finish(_launch([str(script), str(tmp_path)], tmp_path / "cache", 2))
    for r in (0, 1):
        errors = json.loads((tmp_path / f"err-{r}.json").read_text())
        assert set(errors) == {"input grad", "weight grad", "bias grad", "running mean", "running var", "output"}
        assert max(errors.values()) < 1e-5, errors


def test_process_zero_measures_alone_while_the_others_wait(tmp_path):
    script = tmp_path / "alone.py"
    script.write_text(ALONE)
    _finish(_launch([str(script), str(tmp_path)], tmp_path / "cache", 2), timeout=120)
    assert float((tmp_path / "fid.txt").read_text()) > 0


@pytest.mark.parametrize("method, iters", [("stargan", 4), ("ganimation", 0)])
def test_two_processes_train_like_one_on_the_combined_batch(tmp_path, method, iters):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    one = _launch([str(script), method, str(tmp_path / "one"), str(iters), "0"], tmp_path / "cache", 1)
    two = _launch([str(script), method, str(tmp_path / "two"), str(iters), "0"], tmp_path / "cache", 2)
    _finish(one), _finish(two)
    a, b = _last_snapshot(tmp_path / "one"), _last_snapshot(tmp_path / "two")
    assert a["step"] == b["step"] > 0
    # the gradient penalty's points, the shuffled targets and the flips: the same draws, the same random state after
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert _max_weight_difference(a, b) < 1e-5
    # one writer: every step logged once, with the whole batch's losses
    rows = [[json.loads(line) for line in (tmp_path / d / "stats.jsonl").read_text().splitlines()]
            for d in ("one", "two")]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == list(range(1, a["step"] + 1))
    for r1, r2 in zip(*rows):
        for k, v in r1.items():
            if "/" in k and not k.startswith("lr/"):
                assert v == pytest.approx(r2[k], rel=1e-4, abs=1e-5), (r1["step"], k)
    assert sorted(p.name for p in (tmp_path / "two").glob("samples-*.png")) == \
        sorted(p.name for p in (tmp_path / "one").glob("samples-*.png"))


def _processes_of(run_dir: Path) -> list[int]:
    """Processes whose command line names ``run_dir``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(run_dir).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_killed_two_process_run_resumes_on_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    # GANimation: its smoke run's float rounding stays at 1e-8 over its 16 iterations (StarGAN's generator, through
    # near-constant instance-norm channels, turns rounding into 1e-3 by then, between one and two threads alike)
    straight = _launch([str(script), "ganimation", str(tmp_path / "straight"), "0", "0"], tmp_path / "cache", 1)
    killed_dir = tmp_path / "killed"
    proc = _launch([str(script), "ganimation", str(killed_dir), "0", "0.3"], tmp_path / "cache", 2)
    deadline = time.time() + 180
    while not (killed_dir / "snapshot-0000008.pt").exists():
        assert proc.poll() is None, f"training exited early: {proc.communicate()[1][-3000:]}"
        assert time.time() < deadline, "no snapshot after 180 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher (each worker has a session of its own) ...
    proc.wait()
    deadline = time.time() + 30
    while _processes_of(killed_dir):  # ... and its workers, which get SIGKILL when it dies
        assert time.time() < deadline, f"the workers outlived their launcher: {_processes_of(killed_dir)}"
        time.sleep(0.05)
    assert _last_snapshot(killed_dir)["step"] < 16, "the run finished before it was killed"
    out = _finish(_launch([str(script), "ganimation", str(killed_dir), "0", "0"], tmp_path / "cache", 1))
    assert "finished 0 16" in out
    _finish(straight)
    a, b = _last_snapshot(killed_dir), _last_snapshot(tmp_path / "straight")
    assert a["step"] == b["step"] == 16
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert _max_weight_difference(a, b) < 1e-5
    steps = [json.loads(line)["step"] for line in (killed_dir / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17))  # no step logged twice after the resume


def test_the_command_trains_into_the_model_cache(tmp_path):
    cache = tmp_path / "cache"
    out = _finish(_launch(["-m", "faceedit_nb.parallel", "--method", "stargan", "--profile", "smoke",
                           "--set", "curve_every=0", "--set", "precision=fp32"], cache, 2))
    assert "on 2 process(es), global batch 8" in out and "trained stargan" in out
    from faceedit_nb.cache import is_cached
    from faceedit_nb.papers import stargan as SG
    cfg = SG.StarGANConfig.smoke(curve_every=0, precision="fp32")
    assert is_cached("stargan", cfg, cache_dir=cache / "models")  # where load_stargan (and the chapter) looks


def test_the_command_names_a_wrong_setting():
    with pytest.raises(ValueError, match="batch_sz.*field of StarGANConfig"):
        parallel.config_from_args("stargan", "smoke", ["batch_sz=4"])
    with pytest.raises(ValueError, match="n_critic=two"):
        parallel.config_from_args("stargan", "smoke", ["n_critic=two"])
    assert parallel.config_from_args("stargan", "paper", ["batch_size=32", "g_residual=true"]).batch_size == 32


def test_a_model_is_named_as_the_chapters_train_it():
    from faceedit_nb.papers import attgan, secgan
    method, cfg = parallel.job_config("STGAN-diff", "smoke")
    assert (method, cfg) == ("attgan", attgan.chapter_configs("smoke")["STGAN-diff"])  # the chapter's cache entry
    method, cfg = parallel.job_config("SeCGAN: attributes13 / AttGAN / secgan", "smoke")
    assert method == "secgan-attgan" and isinstance(cfg, secgan.SeCGANAttGANConfig) and cfg.variant == "secgan"
    with pytest.raises(ValueError, match="did you mean 'STGAN-diff'"):
        parallel.job_config("stgan", "smoke")
    with pytest.raises(ValueError, match="trains with its own loop"):
        parallel.job_config("oracle aus (32 px, smoke)", "smoke")


def test_a_batch_that_does_not_split_is_refused_with_the_fix():
    batch = {"image": torch.zeros(6, 3, 4, 4), "expression": torch.arange(6), "name": "x"}
    part = D.shard(batch, 3, 1)
    assert part["image"].shape[0] == 2 and part["expression"].tolist() == [2, 3] and part["name"] == "x"
    with pytest.raises(ValueError, match="does not split over 4 processes: set batch_size to a multiple of 4"):
        D.shard(batch, 4, 0)


def test_on_one_process_the_helpers_draw_what_the_code_drew_before():
    x = torch.arange(10)
    torch.manual_seed(3)
    mine = (D.shuffled(x), D.uniform(4, 1, 1, 1))
    torch.manual_seed(3)
    before = (x[torch.randperm(10)], torch.rand(4, 1, 1, 1))
    assert torch.equal(mine[0], before[0]) and torch.equal(mine[1], before[1])
    m = torch.rand(2, 1, 8, 8)
    assert losses.total_variation(m) == D.batch_sum(losses.total_variation(m))
    assert D.global_batch(5) == 5 and D.world_size() == 1 and D.is_main()
