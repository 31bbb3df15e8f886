"""Seconds per training iteration of the baselines on this machine: the engine's path vs the official loops.

    python benchmarks/train_step.py --model stargan --image-size 64 --conv-dim 32 --batch-size 16 \\
        --n-critic 5 --iters 30                        # the engine's default path; last line sec_per_iter=...
    python benchmarks/train_step.py ... --precision fp32     # the engine without bf16 autocast
    python benchmarks/train_step.py ... --mode precision     # fp32 vs bf16: ratio and images per second
    python benchmarks/train_step.py ... --mode official      # the official loop vs the engine: speed-up
    python benchmarks/train_step.py --model attgan --profile cpu --mode precision   # a profile's own settings

One iteration is what the official loops call an iteration: StarGAN one critic step (adversarial +
cross-entropy + gradient penalty) and a generator step every ``n_critic``; GANimation a critic step, a
separate gradient-penalty step and a generator step every ``n_critic``; AttGAN a critic step on ``n_critic``
of every ``n_critic + 1`` batches and a generator step on the others. Data: SynthFaces rendered into
memory once (the same batches for every variant, so data loading is not measured).

``--mode official`` re-enacts the official loops' work as written (fp32; the critic's fakes computed with
the generator's graph; StarGAN and GANimation also compute the critic's weight gradients in generator
steps; the official critic depth, 6 layers for StarGAN / GANimation whatever the image size) and times it
against the engine's path (the device's precision policy: bf16 autocast on a CPU that computes in bf16,
fp32 on one that would emulate it; fakes under no_grad, frozen critic in generator steps,
real and fake images in one critic pass, fused Adam, critic depth log2(size) - 1). ``--same-depth`` gives
the engine the official depth too. The variants run in alternating blocks of ``--block`` iterations and
the script reports the median block time of each, so a load that drifts during the run affects both
alike; it prints the machine's load average before and after. On a shared machine also read the CPU
time per iteration: with ``--threads 1`` it barely depends on what else runs (with 2 threads it includes
OpenMP's spin-waiting).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from faceedit_nb import methods as M
from faceedit_nb.papers import attgan as AT
from faceedit_nb.papers import ganimation as GA
from faceedit_nb.papers import stargan as SG
from faceedit_nb import losses
from faceedit_nb.device import cpu_has_native_bf16
from faceedit_nb.nets import stargan
from faceedit_nb.train import Trainer


# The official StarGAN loop measured on this machine at the benchmark's default settings (shared spec).
OFFICIAL_BAR = {("stargan", 64, 32, 16, 5): 0.5}


# --- configurations --------------------------------------------------------------------------------------
CONFIGS = {"stargan": SG.StarGANConfig, "ganimation": GA.GANimationConfig, "attgan": AT.AttGANConfig}


def profile_config(args):
    """The baseline's config at ``--profile``, with logging, samples and snapshots off."""
    return CONFIGS[args.model].profile(args.profile, log_every=10 ** 9, sample_every=0, snapshot_every=10 ** 9)


def take_profile_settings(args) -> None:
    """``--profile``: the size, width, batch and critic steps of the profile replace the flags (for the
    report, the bar lookup and the timing blocks)."""
    cfg = profile_config(args)
    args.image_size, args.batch_size = cfg.image_size, cfg.batch_size
    width, critic = {"stargan": ("g_conv_dim", "n_critic"), "ganimation": ("g_conv_dim", "train_G_every_n_iterations"),
                     "attgan": ("enc_dim", "n_d")}[args.model]
    args.conv_dim, args.n_critic = getattr(cfg, width), getattr(cfg, critic)


def make_config(args, same_depth: bool):
    if args.profile:
        cfg = profile_config(args)
        if same_depth and args.model != "attgan" and args.image_size >= 64:
            cfg = cfg.replace(d_repeat_num=6)  # the official critic depth (6 whatever the image size)
        return cfg.replace(n_train=max(cfg.batch_size, min(cfg.n_train, 512)))
    common = dict(image_size=args.image_size, batch_size=args.batch_size, n_train=max(512, 4 * args.batch_size),
                  n_identities=32, log_every=10 ** 9, sample_every=0, snapshot_every=10 ** 9)
    depth = 6 if same_depth else stargan.default_d_repeat(args.image_size)
    if args.model == "stargan":
        return SG.StarGANConfig(g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim, d_repeat_num=depth,
                               n_critic=args.n_critic, num_iters=10 ** 9, **common)
    if args.model == "ganimation":
        return GA.GANimationConfig(g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim, d_repeat_num=depth,
                                  train_G_every_n_iterations=args.n_critic, **common)
    return AT.AttGANConfig(enc_dim=args.conv_dim, dec_dim=args.conv_dim, dis_dim=args.conv_dim, n_d=args.n_critic,
                          **common)


def make_data(cfg, model: str):
    if model == "ganimation":
        return GA.GANimationBatches(cfg)
    return M.SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities,
                               flip=getattr(cfg, "flip", False))


BUILD = {"stargan": SG.build_stargan, "ganimation": GA.build_ganimation, "attgan": AT.build_attgan}
STEP = {"stargan": SG.stargan_step, "ganimation": GA.ganimation_step, "attgan": AT.attgan_step}
OPTIMIZERS = {"stargan": SG.stargan_optimizers, "ganimation": GA.ganimation_optimizers, "attgan": AT.attgan_optimizers}


def official_adam(cfg, nets):
    """torch.optim.Adam with its defaults, as the official repositories create it."""
    lr = getattr(cfg, "g_lr", getattr(cfg, "lr_G", getattr(cfg, "lr", 1e-4)))
    return {k: torch.optim.Adam(m.parameters(), lr=lr, betas=(cfg.beta1, cfg.beta2)) for k, m in nets.items()}


# --- the engine's path ------------------------------------------------------------------------------------
class Engine:
    """The engine's iteration (``Trainer.iterate`` with the baseline's step function), ``n`` at a time."""

    def __init__(self, args, precision: str, same_depth: bool = False):
        self.cfg = make_config(args, same_depth)
        self.data = make_data(self.cfg, args.model)
        nets = BUILD[args.model](self.cfg)
        self.tr = Trainer(nets, OPTIMIZERS[args.model](self.cfg, nets), total_steps=0, precision=precision,
                          run_dir=tempfile.mkdtemp(prefix="bench-"), progress=False)
        for m in nets.values():
            m.train()
        self.step_fn = STEP[args.model]

    def run(self, n: int) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            self.tr.iterate(lambda batch, i: self.step_fn(self.tr, self.cfg, batch, i), self.data)
        return time.perf_counter() - t, time.process_time() - c


# --- the official loops, re-enacted -------------------------------------------------------------------
class Official:
    """The work of the official training iteration, fp32, as the repositories write it."""

    def __init__(self, args):
        self.args = args
        self.cfg = make_config(args, same_depth=args.model != "attgan")
        self.data = make_data(self.cfg, args.model)
        self.nets = BUILD[args.model](self.cfg)
        self.opts = official_adam(self.cfg, self.nets)
        self.i = 0

    def run(self, n: int) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            getattr(self, self.args.model)(self.data(self.i), self.i)
            self.i += 1
        return time.perf_counter() - t, time.process_time() - c

    def reset_grad(self):
        for o in self.opts.values():
            o.zero_grad()

    def stargan(self, batch, i):  # yunjey/stargan solver.py, RaFD (cross-entropy)
        G, D, cfg = self.nets["G"], self.nets["D"], self.cfg
        x_real, label_org = batch["image"], batch["expression"]
        label_trg = label_org[torch.randperm(label_org.size(0))]
        c_org, c_trg = F.one_hot(label_org, 8).float(), F.one_hot(label_trg, 8).float()
        out_src, out_cls = D(x_real)
        d_loss_real = -torch.mean(out_src)
        d_loss_cls = F.cross_entropy(out_cls, label_org)
        x_fake = G(x_real, c_trg)  # with the generator's graph
        out_src, out_cls = D(x_fake.detach())
        d_loss_fake = torch.mean(out_src)
        alpha = torch.rand(x_real.size(0), 1, 1, 1)
        x_hat = (alpha * x_real.data + (1 - alpha) * x_fake.data).requires_grad_(True)
        out_src, _ = D(x_hat)
        dydx = torch.autograd.grad(out_src, x_hat, torch.ones_like(out_src), retain_graph=True, create_graph=True)[0]
        d_loss_gp = torch.mean((torch.sqrt(torch.sum(dydx.view(dydx.size(0), -1) ** 2, dim=1)) - 1) ** 2)
        d_loss = d_loss_real + d_loss_fake + cfg.lambda_cls * d_loss_cls + cfg.lambda_gp * d_loss_gp
        self.reset_grad()
        d_loss.backward()
        self.opts["D"].step()
        if (i + 1) % cfg.n_critic == 0:
            x_fake = G(x_real, c_trg)
            out_src, out_cls = D(x_fake)  # the critic's weight gradients are computed, then discarded
            g_loss_fake = -torch.mean(out_src)
            g_loss_cls = F.cross_entropy(out_cls, label_trg)
            x_reconst = G(x_fake, c_org)
            g_loss_rec = torch.mean(torch.abs(x_real - x_reconst))
            g_loss = g_loss_fake + cfg.lambda_rec * g_loss_rec + cfg.lambda_cls * g_loss_cls
            self.reset_grad()
            g_loss.backward()
            self.opts["G"].step()

    def ganimation(self, batch, i):  # albertpumarola/GANimation models/ganimation.py
        G, D, cfg = self.nets["G"], self.nets["D"], self.cfg
        real, real_cond, desired = batch["image"], batch["aus"], batch["aus_trg"]
        bsz = real.size(0)
        color, mask = G(real, desired)
        fake = mask * real + (1 - mask) * color
        d_real, d_cond = D(real)
        loss = -d_real.mean() + F.mse_loss(d_cond, real_cond) / bsz * cfg.lambda_D_cond
        d_fake, _ = D(fake.detach())
        loss = loss + d_fake.mean()
        self.opts["D"].zero_grad()
        loss.backward()
        self.opts["D"].step()
        alpha = torch.rand(bsz, 1, 1, 1).expand_as(real)
        inter = (alpha * real.data + (1 - alpha) * fake.data).requires_grad_(True)
        prob, _ = D(inter)
        grad = torch.autograd.grad(prob, inter, torch.ones_like(prob), retain_graph=True, create_graph=True)[0]
        gp = torch.mean((torch.sqrt(torch.sum(grad.view(bsz, -1) ** 2, dim=1)) - 1) ** 2) * cfg.lambda_D_gp
        self.opts["D"].zero_grad()
        gp.backward()
        self.opts["D"].step()
        if (i + 1) % cfg.train_G_every_n_iterations == 0:
            color, mask = G(real, desired)
            fake = mask * real + (1 - mask) * color
            d_fake, d_cond = D(fake)
            rec_color, rec_mask = G(fake, real_cond)
            rec = rec_mask * fake + (1 - rec_mask) * rec_color
            loss = (-d_fake.mean() + F.mse_loss(d_cond, desired) / bsz * cfg.lambda_D_cond
                    + F.l1_loss(rec, real) * cfg.lambda_cyc + (mask.mean() + rec_mask.mean()) * cfg.lambda_mask
                    + cfg.lambda_mask_smooth * (losses.total_variation(mask) + losses.total_variation(rec_mask)))
            self.opts["G"].zero_grad()
            loss.backward()
            self.opts["G"].step()

    def attgan(self, batch, i):  # elvisyjlin/AttGAN-PyTorch train.py + attgan.py (wgan mode)
        G, D, cfg = self.nets["G"], self.nets["D"], self.cfg
        img_a, att_a = batch["image"], batch["attributes"].float()
        att_b = att_a[torch.randperm(len(att_a))]
        att_a_, att_b_ = (att_a * 2 - 1) * cfg.thres_int, (att_b * 2 - 1) * cfg.thres_int
        if (i + 1) % (cfg.n_d + 1) != 0:
            for p in D.parameters():
                p.requires_grad = True
            img_fake = G(img_a, att_b_).detach()
            d_real, dc_real = D(img_a)
            d_fake, _ = D(img_fake)
            alpha = torch.rand(img_a.size(0), 1, 1, 1)
            x = (img_a + alpha * (img_fake - img_a)).requires_grad_(True)
            pred = D(x)[0]
            grad = torch.autograd.grad(pred, x, torch.ones_like(pred), create_graph=True, retain_graph=True)[0]
            gp = ((grad.view(grad.size(0), -1).norm(2, dim=1) - 1) ** 2).mean()
            d_loss = -(d_real.mean() - d_fake.mean()) + 10 * gp + cfg.lambda_3 * F.binary_cross_entropy_with_logits(
                dc_real, att_a)
            self.opts["D"].zero_grad()
            d_loss.backward()
            self.opts["D"].step()
        else:
            for p in D.parameters():
                p.requires_grad = False
            zs = G.encode(img_a)
            img_fake, img_recon = G.decode(zs, att_b_), G.decode(zs, att_a_)
            d_fake, dc_fake = D(img_fake)
            g_loss = (-d_fake.mean() + cfg.lambda_2 * F.binary_cross_entropy_with_logits(dc_fake, att_b)
                      + cfg.lambda_1 * F.l1_loss(img_recon, img_a))
            self.opts["G"].zero_grad()
            g_loss.backward()
            self.opts["G"].step()


# --- timing -------------------------------------------------------------------------------------------
def timed(variants: dict, args) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds per iteration of each variant, run in alternating blocks after a warm-up."""
    period = args.n_critic + (1 if args.model == "attgan" else 0)
    block = max(period, args.block - args.block % period)
    warm = 2 * period
    for v in variants.values():
        v.run(warm)
    blocks = {k: [] for k in variants}
    done = 0
    while done < args.iters:
        for k, v in variants.items():
            wall, cpu = v.run(block)
            blocks[k].append((wall / block, cpu / block))
        done += block
    return {k: (statistics.median(w for w, _ in b), statistics.median(c for _, c in b)) for k, b in blocks.items()}


def report(result: dict[str, tuple[float, float]], batch_size: int) -> None:
    for k, (wall, cpu) in result.items():
        print(f"{k}: {wall:.3f} s/iter ({batch_size / wall:.1f} images/s), CPU time {cpu:.3f} s/iter")


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["stargan", "ganimation", "attgan"], default="stargan")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--conv-dim", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n-critic", type=int, default=5, help="critic steps per generator step")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per variant")
    ap.add_argument("--block", type=int, default=10, help="iterations per timing block (rounded to a period)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="the engine's precision (auto: bf16 autocast where the CPU computes in bf16)")
    ap.add_argument("--mode", choices=["single", "precision", "official"], default="single")
    ap.add_argument("--same-depth", action="store_true", help="engine critic as deep as the official one")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--profile", choices=["smoke", "cpu", "paper"], default=None,
                    help="take every setting (size, widths, depths, batch, critic steps) from the baseline's "
                         "profile instead of the flags above")
    args = ap.parse_args(argv)
    if args.profile:
        take_profile_settings(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"model={args.model} profile={args.profile or '(flags)'} image_size={args.image_size} conv_dim={args.conv_dim} batch={args.batch_size} "
          f"n_critic={args.n_critic} threads={torch.get_num_threads()} cores={os.cpu_count()} "
          f"native_bf16={cpu_has_native_bf16()} (auto precision: {'bf16' if cpu_has_native_bf16() else 'fp32'})")
    print("before:", load())
    if args.mode == "single":
        result = timed({"engine": Engine(args, args.precision, args.same_depth)}, args)
        report(result, args.batch_size)
        sec, cpu = result["engine"]
    elif args.mode == "precision":
        result = timed({"fp32": Engine(args, "fp32", args.same_depth), "bf16": Engine(args, "bf16", args.same_depth)},
                       args)
        report(result, args.batch_size)
        print(f"fp32/bf16 = {result['fp32'][0] / result['bf16'][0]:.2f} (wall), "
              f"{result['fp32'][1] / result['bf16'][1]:.2f} (CPU time)")
        sec, cpu = result["bf16" if cpu_has_native_bf16() else "fp32"]  # what precision="auto" runs
    else:
        result = timed({"official": Official(args), "engine": Engine(args, args.precision, args.same_depth)}, args)
        report(result, args.batch_size)
        print(f"official/engine = {result['official'][0] / result['engine'][0]:.2f}x (wall), "
              f"{result['official'][1] / result['engine'][1]:.2f}x (CPU time)")
        sec, cpu = result["engine"]
    bar = OFFICIAL_BAR.get((args.model, args.image_size, args.conv_dim, args.batch_size, args.n_critic))
    if bar:
        print(f"ratio to the official loop's {bar} s/iter bar: {bar / sec:.2f}x (goal: >= 2)")
    print("after: ", load())
    print(f"sec_per_iter={sec:.4f}")


if __name__ == "__main__":
    main()
