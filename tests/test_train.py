"""The training engine: schedules, data order, logging, NaN stops, snapshots, bit-exact resume after SIGKILL,
the baselines' step functions and the model-cache integration."""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from faceedit_nb import methods as M
from faceedit_nb.papers import attgan as AT
from faceedit_nb.papers import ganimation as GA
from faceedit_nb.papers import stargan as SG
from faceedit_nb import labels as L
from faceedit_nb import losses
from faceedit_nb.train import (NonFiniteLossError, ResumeWarning, SnapshotMismatchError, Trainer, epoch_indices,
                               epoch_linear_decay, linear_decay, run_dir_for, run_training, step_decay)

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# --- schedules against the official loops, simulated step by step ----------------------------------------
def official_stargan_lrs(lr, num_iters, num_iters_decay, lr_update_step, paper=True):
    """The learning rate used at each iteration by yunjey/stargan's loop (``paper``: decrement scaled so
    that it reaches 0, as the paper describes; else the code's ``lr / num_iters_decay``)."""
    cur, out = lr, []
    for i in range(num_iters):
        out.append(cur)
        if (i + 1) % lr_update_step == 0 and (i + 1) > (num_iters - num_iters_decay):
            cur -= lr * (lr_update_step if paper else 1) / num_iters_decay
    return out


@pytest.mark.parametrize("paper", [True, False])
def test_linear_decay_matches_stargans_loop(paper):
    want = official_stargan_lrs(1e-4, 2000, 1000, 100, paper)
    f = linear_decay(2000, 1000, 100, official_code=not paper)
    got = [1e-4 * f(i) for i in range(2000)]
    assert np.allclose(got, want, rtol=0, atol=1e-12)
    assert got[0] == 1e-4 and got[1000] == 1e-4
    if paper:
        assert got[-1] == pytest.approx(1e-5)  # the 10th and last update comes after the last iteration
    else:
        assert got[-1] == pytest.approx(1e-4 * (1 - 9 / 1000))  # the code barely decays


def test_epoch_schedules_match_ganimation_and_attgan():
    spe, lr = 7, 1e-4
    cur, want = lr, []  # GANimation: lr -= lr0 / nepochs_decay after each epoch i_epoch > nepochs_no_decay
    for i_epoch in range(1, 20 + 10 + 1):
        want += [cur] * spe
        if i_epoch > 20:
            cur -= lr / 10
    f = epoch_linear_decay(spe, 20, 10)
    assert np.allclose([lr * f(s) for s in range(30 * spe)], want, atol=1e-15)
    g = step_decay(100 * spe)  # AttGAN: lr_base / 10 ** (epoch // 100)
    assert [g(s) for s in (0, 100 * spe - 1, 100 * spe, 200 * spe - 1)] == [1.0, 1.0, 0.1, 0.1]


def test_epoch_indices_are_a_function_of_the_step():
    n, bs = 50, 8
    epoch = torch.cat([epoch_indices(s, bs, n, seed=3) for s in range(6)])  # 6 batches per epoch
    assert len(epoch.unique()) == 48 and epoch.min() >= 0 and epoch.max() < n
    assert torch.equal(epoch_indices(4, bs, n, seed=3), epoch_indices(4, bs, n, seed=3))
    assert not torch.equal(epoch_indices(6, bs, n, seed=3)[:8], epoch_indices(0, bs, n, seed=3))  # new epoch
    with pytest.raises(ValueError, match="larger than the data set"):
        epoch_indices(0, 64, 10)


# --- losses ----------------------------------------------------------------------------------------------
def test_gradient_penalty_of_a_linear_critic_is_exact():
    w = torch.randn(1, 3, 4, 4)
    critic = lambda x: (x * w).flatten(1).sum(1, keepdim=True)  # noqa: E731  gradient w everywhere
    x_hat = losses.interpolate(torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4))
    assert losses.gradient_penalty(critic, x_hat).item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)


def test_classification_and_ganimation_losses():
    logits, t = torch.randn(6, 5), torch.randint(0, 2, (6, 5)).float()
    assert losses.attribute_bce_sum(logits, t) == pytest.approx(5 * losses.attribute_bce_mean(logits, t).item(),
                                                                rel=1e-6)
    assert losses.au_mse(torch.ones(4, 17), torch.zeros(4, 17)).item() == pytest.approx(0.25)  # MSE 1 / batch 4
    m = torch.zeros(1, 1, 4, 4)
    m[..., 1:3, 1:3] = 1  # a 2x2 square: 8 unit edges
    assert losses.total_variation(m).item() == 8
    assert losses.attention_mean(m).item() == 0.25
    assert losses.l1(torch.zeros(3), torch.tensor([1.0, -2.0, 3.0])).item() == 2


# --- the engine on a toy problem ------------------------------------------------------------------------
def toy(tmp_path, **kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.2)
    w_true = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    data = lambda i: {"x": (x := torch.randn(32, 4, generator=torch.Generator().manual_seed(i))),  # noqa: E731
                      "y": x @ w_true.T}
    kw.setdefault("run_dir", tmp_path / "run")
    kw.setdefault("progress", False)
    tr = Trainer({"net": model}, {"opt": opt}, **kw)

    def step(batch, i):
        loss = ((tr.models["net"](batch["x"]) - batch["y"]) ** 2).mean()
        tr.update("opt", loss, {"mse": loss})
        return {"mse": loss}
    return tr, step, data


def test_engine_trains_logs_schedules_and_snapshots(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=60, log_every=10, snapshot_every=20, keep_snapshots=2,
                         lr_schedule=step_decay(40, 0.1), options={"toy": 1}, precision="fp32", ema={"net": 0.5})
    hist = tr.run(step, data, sample_fn=None)
    assert [r["step"] for r in hist] == [10, 20, 30, 40, 50, 60]
    assert hist[-1]["mse"] < hist[0]["mse"] / 10 and all(math.isfinite(r["mse"]) for r in hist)
    assert hist[3]["lr/opt"] == pytest.approx(0.2) and hist[4]["lr/opt"] == pytest.approx(0.02)
    run = tmp_path / "run"
    assert json.loads((run / "options.json").read_text()) == {"toy": 1}
    lines = (run / "stats.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [10, 20, 30, 40, 50, 60]
    assert [p.name for p in tr.snapshots()] == ["snapshot-0000040.pt", "snapshot-0000060.pt"]
    snap = torch.load(run / "snapshot-0000060.pt", weights_only=True)  # no pickled code
    assert snap["step"] == 60 and set(snap["rng"]) == {"python", "numpy", "torch", "cuda", "generators"}
    assert torch.equal(snap["models"]["net"]["weight"], tr.models["net"].weight.detach())
    # EMA: after the last update ema = 0.5 * ema_prev + 0.5 * w, so it lags but tracks the weights
    ema_w, w = snap["ema"]["net"]["weight"], tr.models["net"].weight.detach()
    assert not torch.equal(ema_w, w) and (ema_w - w).abs().max() < 0.05
    # a finished run resumes as finished: nothing more happens
    tr2, step2, data2 = toy(tmp_path, total_steps=60, log_every=10, snapshot_every=20, options={"toy": 1},
                            precision="fp32", ema={"net": 0.5})
    calls = []
    tr2.run(lambda b, i: calls.append(i), data2)
    assert calls == [] and tr2.step == 60 and torch.equal(tr2.models["net"].weight, w)


def test_engine_refuses_other_options_and_starts_over_when_asked(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=4, snapshot_every=2, options={"lr": 1})
    tr.run(step, data)
    tr2, step2, data2 = toy(tmp_path, total_steps=4, snapshot_every=2, options={"lr": 2})
    with pytest.raises(ValueError, match=r"other options \(differing: \['lr'\]\)"):
        tr2.run(step2, data2)
    tr3, step3, data3 = toy(tmp_path, total_steps=4, snapshot_every=2, options={"lr": 2}, resume=False)
    seen = []
    tr3.run(lambda b, i: (seen.append(i), step3(b, i))[1], data3)
    assert seen == [0, 1, 2, 3]


def test_a_model_used_again_after_its_update_sees_the_new_weights(tmp_path):
    """Within one step_fn (one autocast region) a model updated by update() must not be run with the
    low-precision weight copies autocast cached before the update."""
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 8)
    tr = Trainer({"net": net}, {"opt": torch.optim.SGD(net.parameters(), lr=1.0)}, total_steps=1,
                 run_dir=tmp_path / "run", precision="bf16", progress=False)
    x, seen = torch.randn(4, 8), {}

    def step(batch, i):
        tr.update("opt", net(x).float().pow(2).mean())
        seen["after"] = net(x).float()
        return {}
    tr.run(step, lambda i: {})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fresh = net(x).float()
    assert torch.equal(seen["after"], fresh)


def test_threads_are_set_while_running_and_restored(tmp_path):
    torch.set_num_threads(2)
    tr, step, data = toy(tmp_path, total_steps=2, threads=1)
    seen = []
    tr.run(lambda b, i: (seen.append(torch.get_num_threads()), step(b, i))[1], data)
    assert seen == [1, 1] and torch.get_num_threads() == 2


def test_rng_states_round_trip_through_a_snapshot(tmp_path):
    g = torch.Generator().manual_seed(5)
    tr, step, data = toy(tmp_path, total_steps=0, generators={"sampler": g})
    random.seed(1), np.random.seed(2), torch.manual_seed(3), g.manual_seed(4)
    state = tr.state_dict()
    want = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9), g.manual_seed(9)
    tr.load_state_dict(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item()) == want


# --- resuming says what it does -------------------------------------------------------------------------
def test_a_corrupt_newest_snapshot_is_named_and_the_run_resumes_from_the_previous_one(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=6, snapshot_every=2, precision="fp32")
    tr.run(step, data)
    newest = tmp_path / "run" / "snapshot-0000006.pt"
    newest.write_bytes(b"garbage")  # e.g. a file copied half-way
    tr2, step2, data2 = toy(tmp_path, total_steps=8, snapshot_every=2, precision="fp32")
    seen = []
    with pytest.warns(ResumeWarning) as w:
        tr2.run(lambda b, i: (seen.append(i), step2(b, i))[1], data2)
    [message] = [str(x.message) for x in w if x.category is ResumeWarning]
    assert message.startswith(f"snapshot {newest} cannot be read (UnpicklingError: not a file "
                              "torch.load(weights_only=True) accepts")
    assert "trying the previous snapshot, snapshot-0000004.pt" in message
    assert seen == [4, 5, 6, 7] and tr2.step == 8
    # resumed from step 4, the run ends where one never interrupted ends, bit for bit
    straight, step3, data3 = toy(tmp_path, total_steps=8, snapshot_every=2, precision="fp32",
                                 run_dir=tmp_path / "straight")
    straight.run(step3, data3)
    _assert_same(tr2.state_dict()["models"], straight.state_dict()["models"], "models")
    _assert_same(tr2.state_dict()["optimizers"], straight.state_dict()["optimizers"], "optimizers")


def test_resuming_a_run_already_past_total_steps_says_so(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=6, snapshot_every=2)
    tr.run(step, data)
    tr2, step2, data2 = toy(tmp_path, total_steps=4, snapshot_every=2)
    calls = []
    with pytest.warns(ResumeWarning) as w:
        tr2.run(lambda b, i: calls.append(i), data2)
    [message] = [str(x.message) for x in w if x.category is ResumeWarning]
    assert message == (f"{tmp_path / 'run' / 'snapshot-0000006.pt'} is at step 6, past total_steps=4: nothing is "
                       "trained and the models stay those of step 6. For a 4-step run, use another run directory "
                       "or pass resume=False (this deletes the run's snapshots)")
    assert calls == [] and tr2.step == 6


class Reshaped(torch.nn.Module):
    """The toy's Linear(4, 1) after a code change: a wider weight, no bias, a new scale."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2, 4))
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return (x @ self.weight.T)[:, :1] * self.scale


def test_a_snapshot_that_does_not_fit_names_the_file_and_the_keys(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=2, snapshot_every=2)
    tr.run(step, data)
    model = Reshaped()
    tr2 = Trainer({"net": model}, {"opt": torch.optim.Adam(model.parameters())}, total_steps=4,
                  run_dir=tmp_path / "run", progress=False)
    calls = []
    with pytest.raises(SnapshotMismatchError) as e:
        tr2.run(lambda b, i: calls.append(i), data)
    snap = tmp_path / "run" / "snapshot-0000002.pt"
    assert str(e.value).startswith(
        f"snapshot {snap} does not fit this trainer: model 'net': missing keys scale; model 'net': unexpected keys "
        "bias; model 'net': wrong shape weight (snapshot [1, 4], model [2, 4])")
    assert "use another run directory, or pass resume=False" in str(e.value)
    assert calls == [] and torch.equal(model.weight, torch.zeros(2, 4))  # nothing was loaded half-way


def test_a_corrupt_options_json_names_the_file_and_the_fix(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=2, snapshot_every=2, options={"lr": 1})
    tr.run(step, data)
    opts = tmp_path / "run" / "options.json"
    opts.write_text('{"lr": 1')  # cut short
    tr2, step2, data2 = toy(tmp_path, total_steps=4, snapshot_every=2, options={"lr": 1})
    calls = []
    with pytest.raises(ValueError) as e:
        tr2.run(lambda b, i: calls.append(i), data2)
    assert str(e.value).startswith(f"{opts} cannot be read (JSONDecodeError: ")
    assert (f"Fix: if the run was started with these same options, delete {opts} (it is written again) and "
            "rerun; otherwise use another run directory, or pass resume=False") in str(e.value)
    assert calls == [] and opts.read_text() == '{"lr": 1'
    opts.unlink()  # the fix works
    tr3, step3, data3 = toy(tmp_path, total_steps=4, snapshot_every=2, options={"lr": 1})
    tr3.run(lambda b, i: (calls.append(i), step3(b, i))[1], data3)
    assert calls == [2, 3] and json.loads(opts.read_text()) == {"lr": 1}


def test_snapshots_without_options_json_resume_with_a_warning(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=2, snapshot_every=2, options={"lr": 1})
    tr.run(step, data)
    (tmp_path / "run" / "options.json").unlink()
    tr2, step2, data2 = toy(tmp_path, total_steps=4, snapshot_every=2, options={"lr": 1})
    seen = []
    with pytest.warns(ResumeWarning, match="has snapshots but no options.json"):
        tr2.run(lambda b, i: (seen.append(i), step2(b, i))[1], data2)
    assert seen == [2, 3]


def test_a_run_directory_that_cannot_be_created_is_named_before_training(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    tr, step, data = toy(blocker, total_steps=2, snapshot_every=2)
    calls = []
    with pytest.raises(OSError, match=r"cannot create the run directory .*afile/run.*nothing was trained"):
        tr.run(lambda b, i: calls.append(i), data)
    assert calls == []


# --- NaN stops ------------------------------------------------------------------------------------------
def test_nan_in_an_update_stops_with_the_loss_and_step_and_keeps_the_snapshot(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=20, snapshot_every=3, precision="fp32")

    def poisoned(batch, i):
        if i == 7:
            batch = {"x": batch["x"], "y": batch["y"] * float("nan")}
        return step(batch, i)
    with pytest.raises(NonFiniteLossError, match=r"opt loss is nan at step 7 \(non-finite terms: mse=nan\)") as e:
        tr.run(poisoned, data)
    assert "snapshot-0000006.pt" in str(e.value) and "intact" in str(e.value)
    assert [p.name for p in tr.snapshots()] == ["snapshot-0000003.pt", "snapshot-0000006.pt"]
    snap = torch.load(tmp_path / "run" / "snapshot-0000006.pt", weights_only=True)
    assert snap["step"] == 6 and all(torch.isfinite(t).all() for t in snap["models"]["net"].values())
    # rerunning without the poison resumes from step 6
    tr2, step2, data2 = toy(tmp_path, total_steps=8, snapshot_every=3, precision="fp32")
    seen = []
    tr2.run(lambda b, i: (seen.append(i), step2(b, i))[1], data2)
    assert seen == [6, 7]


def test_a_non_finite_logged_value_is_named(tmp_path):
    tr, step, data = toy(tmp_path, total_steps=5, snapshot_every=10)
    with pytest.raises(NonFiniteLossError, match=r"loss 'ratio' is inf at step 2; .* no snapshot was written"):
        tr.run(lambda b, i: {**step(b, i), "ratio": float("inf") if i == 2 else 1.0}, data)
    assert tr.snapshots() == []


# --- resume after SIGKILL -------------------------------------------------------------------------------
RESUME_SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    from faceedit_nb import methods as M
    from faceedit_nb.papers import stargan as SG
    from faceedit_nb.train import Trainer, linear_decay

    run_dir, delay = sys.argv[1], float(sys.argv[2])
    cfg = SG.StarGANConfig.smoke(num_iters=24, num_iters_decay=12, lr_update_step=3, n_critic=2)
    data = M.SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                               flip=True, seed=cfg.seed)
    nets = SG.build_stargan(cfg)
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.999)) for k, m in nets.items()}
    tr = Trainer(nets, opts, total_steps=cfg.num_iters, run_dir=run_dir, options=cfg, ema={"G": 0.9},
                 lr_schedule=linear_decay(24, 12, 3), snapshot_every=4, log_every=2, seed=7,
                 deterministic=True, progress=False)

    def slow_data(i):
        time.sleep(delay)  # gives the test time to kill the run mid-way; no effect on the numbers
        return data(i)
    tr.run(lambda batch, i: SG.stargan_step(tr, cfg, batch, i), slow_data)
    print("finished", tr.step)
""")


def _train_subprocess(script: Path, run_dir: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(run_dir), str(delay)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _final_state(run_dir: Path) -> dict:
    snaps = sorted(run_dir.glob("snapshot-*.pt"))
    return torch.load(snaps[-1], weights_only=True)


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys differ"
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path):
    script = tmp_path / "train_stargan.py"
    script.write_text(RESUME_SCRIPT)
    straight = _train_subprocess(script, tmp_path / "straight", 0.0)

    killed_dir = tmp_path / "killed"
    proc = _train_subprocess(script, killed_dir, 0.15)
    deadline = time.time() + 120
    while not (killed_dir / "snapshot-0000008.pt").exists():
        assert proc.poll() is None, f"training exited early: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, "no snapshot after 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _final_state(killed_dir)["step"] < 24, "the run finished before it was killed"

    resumed = _train_subprocess(script, killed_dir, 0.0)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    out2, err2 = straight.communicate(timeout=300)
    assert straight.returncode == 0, err2[-3000:]
    assert "finished 24" in out and "finished 24" in out2

    a, b = _final_state(killed_dir), _final_state(tmp_path / "straight")
    assert a["step"] == b["step"] == 24
    for part in ("models", "optimizers", "ema", "rng"):
        _assert_same(a[part], b[part], part)
    steps = [json.loads(line)["step"] for line in (killed_dir / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(2, 25, 2))  # no step logged twice after the resume


# --- the baselines through the engine -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["stargan", "ganimation", "attgan"])
def test_baseline_smoke_runs_give_finite_losses_samples_and_snapshots(tmp_path, name):
    cfg = {"stargan": SG.StarGANConfig, "ganimation": GA.GANimationConfig, "attgan": AT.AttGANConfig}[name].smoke()
    train = {"stargan": SG.train_stargan, "ganimation": GA.train_ganimation, "attgan": AT.train_attgan}[name]
    tr = train(cfg, run_dir=tmp_path / name, progress=False)
    keys = set().union(*(r.keys() for r in tr.history))
    assert any(k.startswith("D/") for k in keys) and any(k.startswith("G/") for k in keys)
    assert all(math.isfinite(v) for r in tr.history for v in r.values())
    assert list((tmp_path / name).glob("samples-*.png")) and tr.snapshots()


def test_an_ema_copy_only_watches_the_trained_weights_stay_bit_identical(tmp_path):
    # the EMA generator is an observer: it draws no random numbers and feeds nothing back, so a run with
    # one trains exactly the weights of the same run without it
    runs = {d: SG.train_stargan(SG.StarGANConfig.smoke(ema_decay=d, num_iters=4), run_dir=tmp_path / str(d),
                               progress=False) for d in (0.0, 0.9)}
    assert not runs[0.0].ema and set(runs[0.9].ema) == {"G"}
    for k in ("G", "D"):
        a, b = runs[0.0].models[k].state_dict(), runs[0.9].models[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a), k
    g, e = runs[0.9].models["G"].state_dict(), runs[0.9].ema["G"].state_dict()
    assert any(not torch.equal(g[n], e[n]) for n in g)  # the copy did move on its own


def test_stargan_difference_condition_and_attribute_domain_train(tmp_path):
    cfg = SG.StarGANConfig.smoke(domain="attributes", condition="difference", num_iters=4)
    tr = SG.train_stargan(cfg, run_dir=tmp_path / "run", progress=False)
    assert tr.models["G"].condition == "difference" and tr.models["D"].conv2.out_channels == 5
    assert all(math.isfinite(v) for r in tr.history for v in r.values())


def test_stargan_13_attribute_domain_edits_with_the_attgan_protocol(tmp_path):
    cfg = SG.StarGANConfig.smoke(domain="attributes13", num_iters=2)
    assert cfg.c_dim == 13 and cfg.protocol == "attributes"
    tr = SG.train_stargan(cfg, run_dir=tmp_path / "run", progress=False)
    assert tr.models["D"].conv2.out_channels == 13
    c_org = torch.zeros(1, 13)
    c_org[0, L.ATTRIBUTES.index("Black_Hair")] = 1
    blond = SG._stargan_targets(c_org, cfg)[L.ATTRIBUTES.index("Blond_Hair")]
    assert blond[0, L.ATTRIBUTES.index("Blond_Hair")] == 1 and blond[0, L.ATTRIBUTES.index("Black_Hair")] == 0
    edit = SG.stargan_editor(tr.models["G"].eval(), cfg)
    x = torch.zeros(2, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        assert edit(x, c_org.expand(2, -1), blond.expand(2, -1)).shape == x.shape


def test_stargan_step_updates_d_every_step_and_g_every_n_critic(tmp_path):
    cfg = SG.StarGANConfig.smoke()
    nets = SG.build_stargan(cfg)
    opts = {k: torch.optim.Adam(m.parameters(), 1e-3) for k, m in nets.items()}
    data = M.SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities)
    g0 = {k: v.clone() for k, v in nets["G"].state_dict().items()}
    logs = []
    tr = run_training(nets, opts, lambda t, b, i: logs.append(SG.stargan_step(t, cfg, b, i)) or logs[-1], data,
                      total_steps=3, run_dir=tmp_path / "r", progress=False, snapshot_every=10)
    assert [("G/loss_rec" in log) for log in logs] == [False, True, False]  # n_critic = 2 in smoke
    assert opts["D"].state[next(iter(nets["D"].parameters()))]["step"].item() == 3
    assert opts["G"].state[next(iter(nets["G"].parameters()))]["step"].item() == 1
    assert any(not torch.equal(v, tr.models["G"].state_dict()[k]) for k, v in g0.items())
    # the critic was frozen during the generator step: no stale gradients were written into it
    assert all(p.requires_grad for p in nets["D"].parameters())


def test_load_baseline_trains_once_then_comes_from_the_cache(tmp_path, capsys):
    cfg = AT.AttGANConfig.smoke(epochs=1)
    first = AT.load_attgan(cfg, outdir=tmp_path / "runs", progress=False, cache_dir=tmp_path / "cache")
    assert (run_dir_for("attgan", cfg, tmp_path / "runs") / "options.json").is_file()
    second = AT.load_attgan(cfg, outdir=tmp_path / "runs", progress=False, cache_dir=tmp_path / "cache")
    assert "[cache] loaded attgan" in capsys.readouterr().out
    for k, v in first.nets["G"].state_dict().items():
        assert torch.equal(v, second.nets["G"].state_dict()[k])
    assert second.stats and second.stats[-1]["step"] == cfg.total_steps
    x = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1
    a = torch.randint(0, 2, (2, 13)).float()
    with torch.no_grad():
        assert second.editor(x, a, 1 - a).shape == x.shape


def test_profiles_and_config_errors():
    assert SG.StarGANConfig.paper().image_size == 128 and SG.StarGANConfig.cpu().d_repeat_num == 5
    assert GA.GANimationConfig.profile("cpu", batch_size=10).batch_size == 10
    with pytest.raises(ValueError, match="unknown profile"):
        AT.AttGANConfig.profile("gpu")
    with pytest.raises(ValueError, match="domain must be"):
        SG.StarGANConfig(domain="hair")
    with pytest.raises(ValueError, match="batch_size 99 exceeds"):
        M.SynthFacesBatches(32, 16, 99)


def test_training_runs_with_gradients_turned_off_by_the_caller(tmp_path):
    """Notebooks call torch.set_grad_enabled(False) for their figures; training must still work."""
    from faceedit_nb.nets import parsing
    from faceedit_nb.data import SynthFaces
    torch.set_grad_enabled(False)
    try:
        model = parsing.UNet(base=4, depth=2)
        history = parsing.train_parser(model, SynthFaces("train", size=32, n=16), steps=2, batch_size=4)
        assert len(history) == 2 and all(h == h for h in history)
    finally:
        torch.set_grad_enabled(True)


def test_torch_threads_sets_and_restores_the_thread_count():
    from faceedit_nb.device import torch_threads
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        with torch_threads(-1):
            pass


def test_critic_as_classifier_is_deterministic_and_reports_each_evaluation():
    cfg = SG.StarGANConfig.smoke()
    a = SG.critic_as_classifier(cfg, 5, 2, n_test=16, test_identities=2, threads=1)
    b = SG.critic_as_classifier(cfg, 5, 2, n_test=16, test_identities=2, threads=1)
    assert a["steps"] == [2, 4, 5] and len(a["accuracy"]) == 3
    assert all(0 <= x <= 1 for x in a["accuracy"]) and a["accuracy"] == b["accuracy"]
    with pytest.raises(ValueError, match="expression head"):
        SG.critic_as_classifier(SG.StarGANConfig.smoke(domain="attributes13"), 2, 1)


def test_cpu_autocast_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    from faceedit_nb import device as dv
    monkeypatch.delenv("FACEEDIT_AUTOCAST", raising=False)
    monkeypatch.setattr(dv, "cpu_has_native_bf16", lambda: True)
    assert dv.autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(dv, "cpu_has_native_bf16", lambda: False)  # AVX2 only: emulated bf16, 31x slower
    assert dv.autocast_dtype("cpu") is None
    assert dv.autocast_dtype("cuda") == torch.float16
    monkeypatch.setenv("FACEEDIT_AUTOCAST", "bf16")
    assert dv.autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv("FACEEDIT_AUTOCAST", "0")
    assert dv.autocast_dtype("cpu") is None and dv.autocast_dtype("cuda") is None


def test_gpu_autocast_is_bf16_where_the_gpu_has_it_else_fp16_with_a_scaler(monkeypatch, tmp_path):
    from faceedit_nb import device as dv
    monkeypatch.delenv("FACEEDIT_AUTOCAST", raising=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)   # A100, L4
    assert dv.autocast_dtype("cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # T4, V100
    assert dv.autocast_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setenv("FACEEDIT_AUTOCAST", "fp16")
    assert dv.autocast_dtype("cuda") == torch.float16
    # the engine scales fp16 losses only: one scaler per optimiser, enabled for fp16 alone
    net = torch.nn.Linear(2, 1)
    opts = {"G": torch.optim.SGD(net.parameters(), lr=0.1)}
    for precision, scaled in (("fp16", True), ("bf16", False), ("fp32", False)):
        tr = Trainer({"G": net}, opts, total_steps=1, run_dir=tmp_path / precision, precision=precision,
                     progress=False)
        assert tr.scalers["G"].is_enabled() == scaled


def test_channels_last_and_compile_are_switches_that_leave_the_cpu_as_it_was(monkeypatch, tmp_path):
    from faceedit_nb import device as dv
    monkeypatch.delenv("FACEEDIT_CHANNELS_LAST", raising=False)
    monkeypatch.delenv("FACEEDIT_COMPILE", raising=False)
    assert dv.channels_last_default("cpu") is False and dv.channels_last_default("cuda") is True
    assert dv.compiled_models() == ()
    monkeypatch.setenv("FACEEDIT_COMPILE", "1")
    assert dv.compiled_models() == ("G",)
    monkeypatch.setenv("FACEEDIT_COMPILE", "G, D_seg")
    assert dv.compiled_models() == ("G", "D_seg")
    monkeypatch.setenv("FACEEDIT_CHANNELS_LAST", "maybe")
    with pytest.raises(ValueError, match="FACEEDIT_CHANNELS_LAST='maybe': use 1 .on. or 0 .off."):
        dv.channels_last_default("cpu")
    monkeypatch.delenv("FACEEDIT_CHANNELS_LAST")
    monkeypatch.delenv("FACEEDIT_COMPILE")

    cfg = SG.StarGANConfig.smoke(curve_every=0, precision="fp32", num_iters=4, sample_every=0)
    runs = {}
    for name, kwargs in (("default", {}), ("channels_last", {"channels_last": True}),
                         ("compiled", {"compile": ("G",), "compile_backend": "eager"})):
        nets = SG.build_stargan(cfg)
        tr = Trainer(nets, SG.stargan_optimizers(cfg, nets), total_steps=cfg.num_iters, run_dir=tmp_path / name,
                     options=cfg, precision="fp32", progress=False, **kwargs)
        data = M.SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities)
        tr.run(lambda batch, i: SG.stargan_step(tr, cfg, batch, i), data)
        runs[name] = tr
    assert not runs["default"].channels_last and runs["default"].compiled == ()
    conv = runs["channels_last"].models["G"].main[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    base = runs["default"].export()["models"]
    for name in ("channels_last", "compiled"):
        other = runs[name].export()["models"]
        assert set(other["G"]) == set(base["G"])  # the same state-dict keys: the cache and snapshots are unchanged
        worst = max((other[k][n] - t).abs().max().item() for k in base for n, t in base[k].items()
                    if t.is_floating_point() and "running" not in n)
        assert worst < 1e-3, (name, worst)  # the same training, up to the convolutions' rounding
    with pytest.raises(KeyError, match="compile names unknown model"):
        Trainer({"G": torch.nn.Linear(2, 1)}, {}, total_steps=1, run_dir=tmp_path / "x", compile=("D",))


def test_a_learning_curve_is_measured_without_changing_the_training(tmp_path):
    # the curve's measurement draws random numbers and runs the generator: the weights must still be those
    # of the same run without it, and the curve rows carry the step and the training clock
    def curve(nets, step):
        noise = torch.randn(2, 3, 32, 32)
        return {"mean_out": float(nets["G"](noise, torch.zeros(2, 8)).mean()), "draw": float(torch.rand(()))}

    cfg = SG.StarGANConfig.smoke(num_iters=6, curve_every=0)  # no curve of its own
    plain = SG.train_stargan(cfg, run_dir=tmp_path / "plain", progress=False)
    measured = SG.train_stargan(cfg, run_dir=tmp_path / "curve", progress=False, curve=curve, curve_every=4)
    for k in ("G", "D"):
        a, b = plain.models[k].state_dict(), measured.models[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a), k
    rows = [r for r in measured.history if "eval/mean_out" in r]
    assert [r["step"] for r in rows] == [0, 4, 6] and rows[0]["elapsed"] == 0.0
    assert rows[1]["elapsed"] <= rows[2]["elapsed"]
    assert not any("eval/mean_out" in r for r in plain.history)
    with pytest.raises(ValueError, match="eval_every"):
        SG.train_stargan(cfg, run_dir=tmp_path / "bad", progress=False, curve=curve, curve_every=0)


def test_a_loaded_method_is_on_the_device_it_trained_on(tmp_path, monkeypatch):
    # the cache holds CPU tensors; on a GPU the loaded networks (and their EMA copies) must move there, or the
    # chapters would edit and evaluate on the CPU. "meta" stands in for the device here.
    from faceedit_nb import methods
    cfg = SG.StarGANConfig.smoke(num_iters=2, ema_decay=0.9, curve_every=0)
    SG.load_stargan(cfg, cache_dir=tmp_path, progress=False)            # trained and cached on the CPU
    monkeypatch.setattr(methods, "DEVICE", torch.device("meta"))
    loaded = SG.load_stargan(cfg, cache_dir=tmp_path, progress=False)
    nets = [*loaded.nets.values(), *loaded.ema.values()]
    assert loaded.ema and all(p.is_meta for m in nets for p in m.parameters())
    assert not any(m.training for m in nets)


def test_load_all_trains_the_missing_models_in_workers_then_loads_each(tmp_path):
    from faceedit_nb import cache, methods
    configs = {f"seed {s}": SG.StarGANConfig.smoke(num_iters=2, seed=s, curve_every=0) for s in (0, 1)}
    loaded = methods.load_all(SG.load_stargan, configs, workers=2, cache_dir=tmp_path)
    assert list(loaded) == ["seed 0", "seed 1"]
    assert all(cache.is_cached("stargan", c, tmp_path) for c in configs.values())
    a, b = (loaded[k].nets["G"].state_dict() for k in configs)
    assert any(not torch.equal(a[n], b[n]) for n in a)  # two seeds, two models
    alone = SG.load_stargan(configs["seed 1"], cache_dir=tmp_path / "alone", progress=False).nets["G"].state_dict()
    assert all(torch.equal(alone[n], b[n]) for n in b)  # trained in a worker = trained here


def test_curve_references_are_measured_once_and_read_back(tmp_path, monkeypatch):
    # the ground-truth and doing-nothing lines of a learning curve: measured on the curve's faces, then read from
    # the cache (a second chapter on the same faces and oracles measures nothing); other protocols, other entry
    from faceedit_nb import methods
    cfg = SG.StarGANConfig.smoke(curve_faces=16, curve_oracles="smoke")
    calls = []
    measure = methods._measure_references
    monkeypatch.setattr(methods, "_measure_references", lambda *a: calls.append(a[1]) or measure(*a))
    first = methods.curve_references(cfg, ["expression"], cache_dir=tmp_path)
    again = methods.curve_references(cfg, ["expression"], cache_dir=tmp_path)
    assert again == first and calls == [["expression"]]
    assert first["doing nothing"]["expression/id_distance"] == pytest.approx(0.0, abs=1e-6)
    assert {k: sorted(v) for k, v in first.items()} == {
        line: ["expression/eea", "expression/id_distance"] for line in ("ground truth", "doing nothing")}
    methods.curve_references(cfg, ["expression", "attributes"], cache_dir=tmp_path)
    assert calls == [["expression"], ["expression", "attributes"]]


def test_ganimation_with_relative_aus_through_its_config(tmp_path):
    # Ling et al.'s "GANimation w/ v_rel" is GANimation with condition="relative": the same step, the
    # generator fed y_trg - y_org, the editor fed target - source; the absolute config keeps its old key
    from faceedit_nb.cache import canonical_json
    rel = GA.GANimationConfig.smoke(condition="relative", curve_every=0)
    assert "condition" not in json.loads(canonical_json(GA.GANimationConfig.paper()))
    assert json.loads(canonical_json(rel))["condition"] == "relative"
    tr = GA.train_ganimation(rel, run_dir=tmp_path / "rel", progress=False)
    G = tr.models["G"].eval()
    seen = []
    G.register_forward_pre_hook(lambda m, args: seen.append(args[1].clone()))
    x, src, trg = torch.randn(2, 3, 32, 32), torch.rand(2, 17), torch.rand(2, 17)
    with torch.no_grad():
        GA.ganimation_editor(G, rel)(x, src, trg)
        GA.ganimation_editor(G, GA.GANimationConfig.smoke())(x, src, trg)
    assert torch.allclose(seen[0], trg - src) and torch.equal(seen[1], trg)
    with pytest.raises(ValueError, match="condition"):
        GA.GANimationConfig.smoke(condition="both")
