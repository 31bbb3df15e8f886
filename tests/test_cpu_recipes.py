"""The cpu-profile levers of the baselines (issue 17): each option does what its comment says, and at its
paper value changes nothing (the paper profile and its cache keys stay the papers')."""
from __future__ import annotations

import pytest
import torch

from faceedit_nb import methods as M
from faceedit_nb.cache import config_hash
from faceedit_nb.nets import ganimation as GN
from faceedit_nb.nets import stargan as SN
from faceedit_nb.papers import attgan as AT
from faceedit_nb.papers import ganimation as GA
from faceedit_nb.papers import stargan as SG
from faceedit_nb.train import run_training


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _run(cfg, build, step, steps, tmp_path, batches=None):
    torch.manual_seed(0)
    nets = build(cfg)
    opts = {k: torch.optim.Adam(m.parameters(), 1e-3) for k, m in nets.items()}
    data = batches or M.SynthFacesBatches(cfg.image_size, cfg.n_train, cfg.batch_size, n_identities=cfg.n_identities)
    logs = []
    run_training(nets, opts, lambda t, b, i: logs.append(step(t, cfg, b, i)) or logs[-1], data,
                 total_steps=steps, run_dir=tmp_path, progress=False, snapshot_every=100, precision="fp32")
    return nets, logs


def test_residual_generator_is_the_identity_at_step_0_and_resize_has_no_transposed_conv():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    c = torch.eye(5)[:2]
    G = SN.Generator(8, 5, 1, residual=True, upsample="resize")
    assert torch.equal(G(x, c), x)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in SN.Generator(8, 5, 1).modules())
    with pytest.raises(ValueError, match="upsample"):
        SN.Generator(8, 5, 1, upsample="bilinear")


def test_projection_critic_starts_as_the_plain_one_needs_labels_and_then_depends_on_them():
    torch.manual_seed(0)
    plain = SN.Discriminator(32, 8, 5, 4)
    torch.manual_seed(0)
    proj = SN.Discriminator(32, 8, 5, 4, projection=True)
    x, c = torch.randn(3, 3, 32, 32), torch.eye(5)[:3]
    assert torch.equal(plain(x)[0], proj(x, c)[0])
    with pytest.raises(ValueError, match="labels"):
        proj(x)
    torch.nn.init.normal_(proj.embed.weight)
    assert not torch.allclose(proj(x, c)[0], proj(x, c.flip(0))[0])
    Dg = GN.Discriminator(32, 8, 17, 4, projection=True)
    with pytest.raises(ValueError, match="AUs"):
        Dg(x)


def test_he_init_keeps_the_critic_signal_where_the_default_init_shrinks_it():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 64, 64)
    default = SN.Discriminator(64, 16, 8, 5)
    he = M.he_init(SN.Discriminator(64, 16, 8, 5))
    assert he.main(x).std() > 3 * default.main(x).std()


def test_ganimation_keep_init_starts_with_the_input_kept():
    G = GA.build_ganimation(GA.GANimationConfig.smoke(keep_init=3.0))["G"]
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 17)
    _, attention = G(x, y)
    assert attention.mean() > 0.9  # sigmoid(3) = 0.95 plus the conv's small start
    assert GA.build_ganimation(GA.GANimationConfig.smoke())["G"](x, y)[1].mean() < 0.9


@pytest.mark.parametrize("method", ["stargan", "ganimation", "attgan"])
def test_critic_warmup_trains_only_the_critic_then_the_gan_starts(method, tmp_path):
    if method == "stargan":
        cfg = SG.StarGANConfig.smoke(d_warmup=2, n_critic=1)
        build, step, batches = SG.build_stargan, SG.stargan_step, None
    elif method == "ganimation":
        cfg = GA.GANimationConfig.smoke(d_warmup=2, train_G_every_n_iterations=1)
        build, step, batches = GA.build_ganimation, GA.ganimation_step, GA.GANimationBatches(cfg)
    else:
        cfg = AT.AttGANConfig.smoke(d_warmup=2, n_d=1)
        build, step, batches = AT.build_attgan, AT.attgan_step, None
    torch.manual_seed(0)
    g0 = {k: v.clone() for k, v in build(cfg)["G"].state_dict().items()}
    nets, logs = _run(cfg, build, step, 2, tmp_path / "a", batches)
    assert all(not any(k.startswith("G/") for k in log) for log in logs)
    assert all(torch.equal(v, nets["G"].state_dict()[k]) for k, v in g0.items())
    nets, logs = _run(cfg, build, step, 4, tmp_path / "b", batches)
    assert any(k.startswith("G/") for k in logs[-1]) or any(k.startswith("G/") for k in logs[-2])
    assert any(not torch.equal(v, nets["G"].state_dict()[k]) for k, v in g0.items())


def test_shared_fakes_give_the_same_numbers_with_one_generator_pass_fewer(tmp_path):
    base = SG.StarGANConfig.smoke(n_critic=1, precision="fp32")
    a, _ = _run(base, SG.build_stargan, SG.stargan_step, 3, tmp_path / "a")
    b, _ = _run(base.replace(share_fakes=True), SG.build_stargan, SG.stargan_step, 3, tmp_path / "b")
    for name in ("G", "D"):  # the weights (the running statistics of G's instance norms, which its forward
        #                        never reads, see one forward fewer)
        for (k, v), w in zip(a[name].named_parameters(), b[name].parameters()):
            assert torch.allclose(v, w, atol=1e-6), (name, k)


@pytest.mark.parametrize("method", ["stargan", "ganimation"])
def test_projection_recipe_trains(method, tmp_path):
    if method == "stargan":
        cfg = SG.StarGANConfig.smoke(d_projection=True, g_residual=True, g_upsample="resize", d_init="he",
                                     d_cls_fake=1.0)
        _, logs = _run(cfg, SG.build_stargan, SG.stargan_step, 2, tmp_path)
        assert "D/loss_cls_fake" in logs[0]
    else:
        cfg = GA.GANimationConfig.smoke(d_projection=True, keep_init=3.0, g_upsample="resize", d_init="he",
                                        d_cond_fake=1.0)
        _, logs = _run(cfg, GA.build_ganimation, GA.ganimation_step, 2, tmp_path, GA.GANimationBatches(cfg))
        assert "D/cond_fake" in logs[0]
    assert all(torch.isfinite(torch.as_tensor(float(v))) for log in logs for v in log.values())


def test_paper_values_of_the_new_fields_keep_the_old_cache_keys():
    for cls in (SG.StarGANConfig, GA.GANimationConfig, AT.AttGANConfig):
        cfg = cls.paper()
        assert set(cls._UNHASHED_DEFAULTS) <= set(cfg.unhashed_fields())
        changed = {k: (not v if isinstance(v, bool) else ("he" if k == "d_init" else
                       "resize" if k == "g_upsample" else v + 1)) for k, v in cls._UNHASHED_DEFAULTS.items()
                   if k != "condition"}
        for k, v in changed.items():
            assert config_hash(cfg.replace(**{k: v})) != config_hash(cfg), (cls.__name__, k)


def test_the_paper_profile_measures_a_learning_curve_where_the_chapters_plot_one():
    # the baselines chapters plot a learning curve at every profile: paper() measures ~20 points with the paper's
    # oracles (a measurement, not a training setting: departures() leaves it out); methods that measure none, none
    from faceedit_nb.config import departures
    from faceedit_nb.papers import lssl as LS
    from faceedit_nb.papers import secgan as SC
    for cls in (SG.StarGANConfig, GA.GANimationConfig, AT.AttGANConfig):
        cfg = cls.paper()
        assert cfg.curve_every == cfg.total_steps // 20 and cfg.curve_oracles == "paper", cls.__name__
        assert cls.paper(curve_every=7).curve_every == 7 and departures(cfg) == []
    assert SG.chapter_configs("paper")["expression"].curve_every == 10_000
    for cls in (SC.SeCGANStarGANConfig, SC.SeCGANAttGANConfig, LS.LSSLConfig):
        assert cls.paper().curve_every == 0, cls.__name__


def test_departures_list_each_field_the_profile_changes_with_its_comment():
    from faceedit_nb.config import departures, field_comments
    assert departures(SG.StarGANConfig.paper()) == []
    rows = {r["field"]: r for r in departures(SG.StarGANConfig.paper(d_warmup=7, log_every=1))}
    assert set(rows) == {"d_warmup"}  # log_every is bookkeeping
    assert rows["d_warmup"]["paper"] == 0 and rows["d_warmup"]["value"] == 7
    assert "critic's domain head" in rows["d_warmup"]["meaning"]
    assert "on real" in field_comments(SG.StarGANConfig)["d_warmup"]  # continuation lines joined


def test_critic_as_classifier_measures_the_head_of_a_projection_critic():
    """The cpu recipe's critic projects labels into D_src; the head-alone experiment has no labels to give it and
    measures the domain head, which the projection does not touch."""
    cfg = SG.StarGANConfig.profile("smoke", d_projection=True)
    out = SG.critic_as_classifier(cfg, 3, 3, n_test=16, test_identities=2, threads=1)
    assert out["steps"] == [3] and 0.0 <= out["accuracy"][0] <= 1.0
