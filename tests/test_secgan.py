"""SeCGAN (faceedit_nb.papers.secgan): the 12 segments, the semantic branch of Tables 2-3 layer by layer, each
loss of Eq. 1-16 on hand-made inputs, one iteration of Algorithm 1 per variant, a run that resumes to the
same weights, the parser and the model through the cache, and the real-data settings."""
import math

import pytest
import torch
from torch import nn

from faceedit_nb import labels as L
from faceedit_nb import losses as base_losses
from faceedit_nb.papers import secgan as S
from faceedit_nb.papers.attgan import AttGANConfig, build_attgan
from faceedit_nb.papers.stargan import StarGANConfig, build_stargan
from faceedit_nb.train import Trainer


def _count(m):
    return sum(p.numel() for p in m.parameters())


# --- the 12 segments ------------------------------------------------------------------------------------
def test_the_twelve_segments_and_others_as_the_paper_lists_them():
    assert len(L.SECGAN_CLASSES) == 12
    assert set(L.SECGAN_CLASSES) == {"skin", "eyebrows", "eyes", "eyeglasses", "ears", "earrings", "nose", "mouth",
                                     "lips", "neck", "hair", "others"}
    others = [c for i, c in enumerate(L.PARSING_CLASSES) if L.SECGAN_CLASSES[int(L.TO_SECGAN[i])] == "others"]
    assert sorted(others) == ["background", "cloth", "hat", "neck_l"]  # background + necklace + hat + cloth
    for a, b in (("l_brow", "r_brow"), ("l_eye", "r_eye"), ("l_ear", "r_ear"), ("u_lip", "l_lip")):
        assert L.TO_SECGAN[L.PARSING_CLASSES.index(a)] == L.TO_SECGAN[L.PARSING_CLASSES.index(b)]


def test_segment_probabilities_sum_the_classes_of_each_segment():
    logits = torch.full((1, 19, 2, 2), -30.0)
    logits[0, L.PARSING_CLASSES.index("u_lip"), 0, 0] = 0.0
    logits[0, L.PARSING_CLASSES.index("l_lip"), 0, 0] = 0.0   # half u_lip, half l_lip: all "lips"
    logits[0, L.PARSING_CLASSES.index("hat"), 0, 1] = 30.0
    logits[0, L.PARSING_CLASSES.index("skin"), 1, :] = 30.0
    p = S.segment_probabilities(logits)
    assert p.shape == (1, 12, 2, 2)
    assert torch.allclose(p.sum(1), torch.ones(1, 2, 2))
    assert p[0, L.SECGAN_CLASSES.index("lips"), 0, 0] == pytest.approx(1.0, abs=1e-6)
    assert p[0, L.SECGAN_CLASSES.index("others"), 0, 1] == pytest.approx(1.0, abs=1e-6)
    onehot = S.one_hot_segments(p)
    assert torch.equal(onehot.argmax(1), L.map_mask(logits.argmax(1), "secgan"))
    assert torch.equal(onehot.sum(1), torch.ones(1, 2, 2))


def test_the_frozen_parser_stays_in_eval_mode_and_needs_no_gradient():
    P = S.FrozenParser(S.build_parser(S.SeCGANStarGANConfig.smoke()))
    P.train()
    assert not P.net.training and not any(p.requires_grad for p in P.parameters())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    P(x).sum().backward()  # but gradients flow through it to its input (Eq. 11 reaches G_rgb)
    assert x.grad is not None and x.grad.abs().sum() > 0


# --- Tables 2 and 3 -------------------------------------------------------------------------------------
def _conv(c_in, c_out, k, bias=False):
    return c_in * c_out * k * k + (c_out if bias else 0)


def test_table2_stargan_semantic_branch_layer_by_layer():
    cfg = S.SeCGANStarGANConfig.paper()              # h = 128, n_a = 13
    n_a, IN = 13, lambda c: 2 * c                    # affine instance norm: weight and bias
    G_rows = [_conv(12 + n_a, 64, 7) + IN(64), _conv(64, 128, 4) + IN(128), _conv(128, 256, 4) + IN(256),
              6 * 2 * (_conv(256, 256, 3) + IN(256)), _conv(256, 128, 4) + IN(128), _conv(128, 64, 4) + IN(64),
              _conv(64, 12, 7)]
    rows = S.table_layers(cfg, "G_seg")
    assert [r[1] for r in rows] == G_rows
    G_seg = S.semantic_generator(cfg)
    assert _count(G_seg) == sum(G_rows) == 8_512_064
    widths = [12, 64, 128, 256, 512, 1024]
    D_rows = [_conv(a, b, 4, bias=True) for a, b in zip(widths, widths[1:] + [2048])] + [_conv(2048, 1, 3),
                                                                                        _conv(2048, n_a, 2)]
    assert [r[1] for r in S.table_layers(cfg, "D_seg")] == D_rows
    assert _count(S.semantic_discriminator(cfg)) == sum(D_rows) == 44_836_800
    # the only differences to the RGB branch: input channels, output channels, final activation (A.2)
    rgb = build_stargan(StarGANConfig.paper(domain="attributes13", condition="difference"))
    assert _count(G_seg) - _count(rgb["G"]) == _conv(12 + n_a, 64, 7) - _conv(3 + n_a, 64, 7) + _conv(64, 12, 7) - _conv(64, 3, 7)
    assert isinstance(G_seg.main[-1], nn.Softmax) and isinstance(rgb["G"].main[-1], nn.Tanh)
    x = torch.zeros(1, 12, 128, 128)
    out_src, out_cls = S.semantic_discriminator(cfg)(x)
    assert out_src.shape == (1, 1, 2, 2) and out_cls.shape == (1, n_a)


def test_table3_attgan_semantic_branch_layer_by_layer():
    cfg = S.SeCGANAttGANConfig.paper()               # h = 128, n_a = 13, shortcut 1, inject 1
    n_a, BN = 13, lambda c: 2 * c
    enc = [(12, 64), (64, 128), (128, 256), (256, 512), (512, 1024)]
    dec = [(1024 + n_a, 1024), (1536 + n_a, 512), (512, 256), (256, 128)]  # Table 3's * and ** channels
    G_rows = [_conv(a, b, 4) + BN(b) for a, b in enc] + [_conv(a, b, 4) + BN(b) for a, b in dec] + [_conv(128, 12, 4, bias=True)]
    rows = S.table_layers(cfg, "G_seg")
    assert [r[1] for r in rows] == G_rows
    assert "(1037, ...)" in rows[5][0] and "(1549, ...)" in rows[6][0]
    assert _count(S.semantic_generator(cfg)) == sum(G_rows) == 43_486_860
    D_rows = [_conv(a, b, 4) + BN(b) for a, b in enc]
    feat = 1024 * 4 * 4
    D_rows += [feat * 1024 + 1024 + 1024 + 1, feat * 1024 + 1024 + 1024 * n_a + n_a]
    assert [r[1] for r in S.table_layers(cfg, "D_seg")] == D_rows
    assert _count(S.semantic_discriminator(cfg)) == sum(D_rows) == 44_728_206
    rgb = build_attgan(AttGANConfig.paper(condition="difference"))
    assert _count(rgb["G"]) == 43_459_203  # "AttGAN's generator has ... 43M" (Sec. 4.2)


@pytest.mark.parametrize("cfg", [S.SeCGANStarGANConfig.smoke(), S.SeCGANAttGANConfig.smoke(),
                                 S.SeCGANStarGANConfig.smoke(domain="expression")])
def test_shapes_of_both_branches_and_concat(cfg):
    nets = S.build_secgan(cfg.replace(variant="secgan"))
    bb = S.backbone_of(cfg)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    batch = {"image": x, "attributes": torch.randint(0, 2, (3, 13)), "expression": torch.tensor([0, 4, 7])}
    y = bb.labels(batch)
    y_diff = bb.condition(nets["G"], y, y.roll(1, 0))
    assert y_diff.shape == (3, bb.n_labels) and set(y_diff.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(bb.condition(nets["G"], y, y), torch.zeros_like(y_diff))  # G(x, 0)
    s = nets["P"].one_hot(x)
    s_out = nets["G_seg"](s, y_diff)
    assert s_out.shape == (3, 12, 32, 32)
    assert torch.allclose(s_out.sum(1), torch.ones(3, 32, 32), atol=1e-5) and (s_out >= 0).all()
    assert nets["G"](x, y_diff).shape == x.shape
    concat = S.build_secgan(cfg.replace(variant="concat"))
    assert concat["G"](torch.cat([x, s], 1), y_diff).shape == x.shape
    assert set(S.build_secgan(cfg.replace(variant="baseline"))) == {"G", "D"}


def test_the_rgb_branch_is_the_backbones_own_network():
    cfg = S.SeCGANStarGANConfig.smoke()
    parent = build_stargan(StarGANConfig.smoke(domain="attributes13", condition="difference"))
    ours = S.build_secgan(cfg)
    for k in ("G", "D"):
        a, b = parent[k].state_dict(), ours[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a)


# --- losses on hand-made inputs -------------------------------------------------------------------------
def _onehot(labels, n=12):
    return torch.nn.functional.one_hot(labels, n).permute(0, 3, 1, 2).float()


def test_mask_cross_entropy_of_eq10_by_hand():
    s = _onehot(torch.tensor([[[0, 1], [2, 3]]]))
    p = torch.full((1, 12, 2, 2), 0.5 / 11)
    for (i, j), c in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0, 1, 2, 3]):
        p[0, c, i, j] = 0.5
    assert S.reconstruction_loss_seg(s, p).item() == pytest.approx(-math.log(0.5), rel=1e-6)
    assert S.reconstruction_loss_seg(s, s).item() == pytest.approx(0.0, abs=1e-6)


def test_semantic_consistency_losses_of_eq11_and_eq12_by_hand():
    # G_seg says segment 1 everywhere (0.7); the parse of G_rgb's output says segment 2 (0.6)
    s_out = torch.full((1, 12, 2, 2), 0.3 / 11)
    s_out[:, 1] = 0.7
    parsed = torch.full((1, 12, 2, 2), 0.4 / 11)
    parsed[:, 2] = 0.6
    # Eq. 11: target one-hot(s_out) = segment 1, read in P(x_out): -log(0.4 / 11)
    assert S.semantic_consistency_loss_g_rgb(s_out, parsed).item() == pytest.approx(-math.log(0.4 / 11), rel=1e-5)
    # Eq. 12: target one-hot(P(x_out)) = segment 2, read in ŝ_out: -log(0.3 / 11)
    assert S.semantic_consistency_loss_g_seg(s_out, parsed).item() == pytest.approx(-math.log(0.3 / 11), rel=1e-5)
    # each gradient reaches only its own generator's output
    s_out.requires_grad_(True), parsed.requires_grad_(True)
    S.semantic_consistency_loss_g_rgb(s_out, parsed).backward()
    assert s_out.grad is None and parsed.grad.abs().sum() > 0
    parsed.grad = None
    S.semantic_consistency_loss_g_seg(s_out, parsed).backward()
    assert parsed.grad is None and s_out.grad.abs().sum() > 0


class _ConstCritic(nn.Module):
    """D(x) = (mean of x per image as the score map, fixed class logits): gradients are known by hand."""

    def __init__(self, logits):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))
        self.logits = logits

    def forward(self, x):
        score = self.w * x.flatten(1).mean(1, keepdim=True)
        return score, self.logits[:1].expand(len(x), -1) + 0 * score


def test_wgan_terms_of_eq1_2_and_totals_13_14_by_hand():
    x_in, x_out = torch.full((2, 3, 4, 4), 0.5), torch.full((2, 3, 4, 4), -0.25)
    logits = torch.zeros(2, 13)
    y = torch.ones(2, 13)
    D = _ConstCritic(logits)
    d_fake, d_real, gp, cls_real = S.adversarial_loss_d_rgb(D, x_in, x_out)
    assert d_fake.item() == pytest.approx(-0.25) and d_real.item() == pytest.approx(-0.5)
    # ∇_x mean(x) has norm sqrt(n) / n = 1 / sqrt(48) for every x̃: GP = (1/sqrt(48) - 1)^2
    assert gp.item() == pytest.approx((1 / math.sqrt(48) - 1) ** 2, rel=1e-5)
    total = S.discriminator_loss_rgb(D, x_in, x_out, y, cls_loss=base_losses.attribute_bce_mean, lambda_cls=2.0,
                                     lambda_gp=10.0)
    assert total["loss"].item() == pytest.approx(-0.5 - 0.25 + 10 * gp.item() + 2 * math.log(2), rel=1e-5)
    assert S.adversarial_loss_g_rgb(torch.tensor([[0.3], [0.1]])).item() == pytest.approx(-0.2)
    g = S.generator_loss_rgb(D, x_in, x_out, x_in + 0.1, y, cls_loss=base_losses.attribute_bce_mean, lambda_cls=1.0,
                             lambda_rec=10.0)
    assert g["G/loss_rec"].item() == pytest.approx(0.1, rel=1e-5)                      # Eq. 5
    assert g["loss"].item() == pytest.approx(0.25 + math.log(2) + 10 * 0.1, rel=1e-5)  # Eq. 14 with λ_sc = 0
    assert "G/loss_sc" not in g


def test_classification_losses_of_eq3_4_8_9_are_binary_cross_entropy():
    logits, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
    expect = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1)))) / 2
    for f in (S.classification_loss_d_rgb, S.classification_loss_g_rgb, S.classification_loss_d_seg,
              S.classification_loss_g_seg):
        assert f(logits, y, base_losses.attribute_bce_mean).item() == pytest.approx(expect, rel=1e-6)


def test_generator_loss_seg_eq16_adds_its_weighted_terms():
    s_in = _onehot(torch.zeros(1, 4, 4, dtype=torch.long))
    s_out = torch.full((1, 12, 4, 4), 1 / 12)
    D = _ConstCritic(torch.zeros(1, 13))
    g = S.generator_loss_seg(D, s_in, s_out, s_out, torch.ones(1, 13), s_out, cls_loss=base_losses.attribute_bce_mean,
                             lambda_cls=1.0, lambda_rec=10.0, lambda_sc=0.5)
    assert g["G_seg/loss_rec"].item() == pytest.approx(math.log(12), rel=1e-5)
    assert g["G_seg/loss_sc"].item() == pytest.approx(math.log(12), rel=1e-5)
    assert g["loss"].item() == pytest.approx(-1 / 12 + math.log(2) + 10 * math.log(12) + 0.5 * math.log(12), rel=1e-5)


# --- Algorithm 1 --------------------------------------------------------------------------------------------
def _trainer(cfg, tmp_path, name="run"):
    nets = S.build_secgan(cfg)
    return Trainer(nets, S.secgan_optimizers(cfg, nets), total_steps=cfg.total_steps, run_dir=tmp_path / name,
                   options=cfg, precision="fp32", progress=False)


@pytest.mark.parametrize("make", [S.SeCGANStarGANConfig.smoke, S.SeCGANAttGANConfig.smoke])
def test_algorithm1_critics_every_step_generators_every_nth(make, tmp_path):
    cfg = make()
    tr = _trainer(cfg, tmp_path)
    batch = S.SeCGANBatches(cfg)(0)
    before = {k: [p.detach().clone() for p in tr.models[k].parameters()] for k in ("G", "G_seg", "D", "D_seg")}
    moved = lambda k: any(not torch.equal(a, b) for a, b in zip(before[k], tr.models[k].parameters()))  # noqa: E731
    log = S.secgan_step(tr, cfg, batch, 0)
    n = S.backbone_of(cfg).n_critic
    assert n > 1 and moved("D") and moved("D_seg") and not moved("G") and not moved("G_seg")
    assert "G/loss_sc" not in log and "D_seg/loss_gp" in log
    log = S.secgan_step(tr, cfg, batch, n - 1)
    assert moved("G") and moved("G_seg")
    assert {"G/loss_sc", "G_seg/loss_sc", "G_seg/loss_rec", "G/loss_rec"} <= set(log)


@pytest.mark.parametrize("make", [S.SeCGANStarGANConfig.smoke, S.SeCGANAttGANConfig.smoke])
def test_the_parent_recipes_critic_warmup_trains_only_the_critics_domain_heads(make, tmp_path):
    cfg = make(d_warmup=1, variant="secgan")
    tr = _trainer(cfg, tmp_path)
    batch = S.SeCGANBatches(cfg)(0)
    before = {k: [p.detach().clone() for p in tr.models[k].parameters()] for k in ("G", "G_seg", "D", "D_seg")}
    moved = lambda k: any(not torch.equal(a, b) for a, b in zip(before[k], tr.models[k].parameters()))  # noqa: E731
    log = S.secgan_step(tr, cfg, batch, 0)
    assert set(log) == {"D/loss_cls", "D_seg/loss_cls"} and moved("D") and moved("D_seg")
    assert not moved("G") and not moved("G_seg")


@pytest.mark.parametrize("make, variant", [(S.SeCGANStarGANConfig.smoke, "secgan"),
                                           (S.SeCGANStarGANConfig.smoke, "concat"),
                                           (S.SeCGANAttGANConfig.smoke, "secgan")])
def test_sharing_the_critics_fakes_with_the_generator_step_gives_the_same_weights(make, variant, tmp_path):
    # with the generator stepping every iteration, the critics' fakes are rendered once and shared: the
    # generators are unchanged by the critics' step, so every weight is the one of rendering them twice
    n = {"n_critic": 1} if hasattr(make(), "n_critic") else {"n_d": 1}
    runs = {}
    for share in (True, False):
        cfg = make(variant=variant, **n)
        if hasattr(cfg, "share_fakes"):
            cfg = cfg.replace(share_fakes=share)
        elif not share:  # AttGAN's configs have no flag: they share whenever the generators step
            continue
        tr = _trainer(cfg, tmp_path, f"share{share}")
        batches = S.SeCGANBatches(cfg)
        calls = []
        tr.models["G"].register_forward_hook(lambda m, a, out: calls.append(1))
        torch.manual_seed(0)  # the targets' permutations and the gradient penalty's draws
        for i in range(3):
            S.secgan_step(tr, cfg, batches(i), i)
        runs[share] = ({k: [p.detach().clone() for p in tr.models[k].parameters()] for k in tr.models}, len(calls))
    if False in runs:
        (shared, n_shared), (twice, n_twice) = runs[True], runs[False]
        for k in shared:
            assert all(torch.equal(a, b) for a, b in zip(shared[k], twice[k])), k
        assert n_twice - n_shared == 3  # one G_rgb forward fewer per iteration
    else:
        assert runs[True][1] == 2 * 3  # the critics' fakes (shared) and G(x, 0): two forwards per iteration


def test_eq14_adds_lambda_sc_times_eq11_to_the_baseline_loss():
    x_in, x_out = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    s_out, parsed = torch.softmax(torch.randn(2, 12, 4, 4), 1), torch.softmax(torch.randn(2, 12, 4, 4), 1)
    D, y = _ConstCritic(torch.zeros(1, 13)), torch.ones(2, 13)
    kw = dict(cls_loss=base_losses.attribute_bce_mean, lambda_cls=1.0, lambda_rec=10.0)
    base = S.generator_loss_rgb(D, x_in, x_out, x_in, y, **kw)
    ours = S.generator_loss_rgb(D, x_in, x_out, x_in, y, lambda_sc=0.25, s_out=s_out, parsed_out=parsed, **kw)
    sc = S.semantic_consistency_loss_g_rgb(s_out, parsed)
    assert ours["loss"].item() == pytest.approx(base["loss"].item() + 0.25 * sc.item(), rel=1e-6)
    zero = S.generator_loss_rgb(D, x_in, x_out, x_in, y, lambda_sc=0.0, s_out=s_out, parsed_out=parsed, **kw)
    assert zero["loss"].item() == pytest.approx(base["loss"].item(), rel=1e-7)


def _run(cfg, tmp_path, name):
    return S.train_secgan(cfg, run_dir=tmp_path / name, progress=False, threads=1, cache_dir=tmp_path / "cache")


def test_a_crashed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cfg = S.SeCGANStarGANConfig.smoke(num_iters=8, num_iters_decay=4, snapshot_every=4)
    straight = _run(cfg, tmp_path, "straight")
    real_step = S.train.secgan_step

    def crash(tr, c, batch, i):
        if i == 6:
            raise RuntimeError("killed")
        return real_step(tr, c, batch, i)
    monkeypatch.setattr(S.train, "secgan_step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        _run(cfg, tmp_path, "resumed")
    monkeypatch.setattr(S.train, "secgan_step", real_step)
    resumed = _run(cfg, tmp_path, "resumed")  # from the snapshot of step 4
    assert resumed.step == straight.step == cfg.total_steps
    for k in ("G", "D", "G_seg", "D_seg", "P"):
        a, b = straight.models[k].state_dict(), resumed.models[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a), k


def test_schedules_of_the_paper():
    sg = S.secgan_schedule(S.SeCGANStarGANConfig.paper())
    assert sg(0) == 1.0 and sg(99_999) == 1.0 and sg(199_999) == pytest.approx(0.01, abs=0.011)
    at = S.SeCGANAttGANConfig.paper(n_train=3200)
    f = S.secgan_schedule(at)
    half = at.decay_epoch * at.steps_per_epoch
    assert f(half - 1) == 1.0
    assert f(at.total_steps) * at.lr == pytest.approx(2e-6, rel=1e-6)
    assert f((half + at.total_steps) // 2) == pytest.approx(0.1, rel=1e-2)  # halfway (in log) down to 1 %
    paper = S.SeCGANStarGANConfig.paper()
    assert (paper.num_iters, paper.g_lr, paper.batch_size, paper.n_critic) == (200_000, 1e-4, 16, 5)
    assert (at.lr, at.batch_size, at.n_d) == (2e-4, 32, 5)


# --- parser and cache ------------------------------------------------------------------------------------
def test_parser_fractions_are_nested_and_the_parser_is_shared(tmp_path):
    cfg = S.SeCGANStarGANConfig.smoke(parser_masks=40)
    full, half = S.parser_training_set(cfg), S.parser_training_set(cfg.replace(parser_fraction=0.5))
    assert len(half["image"]) == 20 and len(full["image"]) == 40
    assert S.parser_config(cfg) == S.parser_config(cfg.replace(variant="concat", lambda_sc=0.1))
    assert S.parser_config(cfg) != S.parser_config(cfg.replace(parser_fraction=0.5))


def test_parser_miou_is_one_for_the_ground_truth():
    class Truth(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))
            from faceedit_nb.data import SynthFaces
            self.faces = SynthFaces("test", size=32, n=16, seed=0, n_identities=2)

        def forward(self, x):  # the true masks of the first 16 test faces, as logits
            m = self.faces.batch(torch.arange(len(x)))["mask"]
            return torch.nn.functional.one_hot(m, 19).permute(0, 3, 1, 2).float() * 50
    report = S.parser_miou(Truth(), 32, n=16, batch_size=16)
    assert report["miou"] == pytest.approx(1.0)


def test_load_secgan_trains_once_then_loads_with_the_parser(tmp_path):
    cfg = S.SeCGANAttGANConfig.smoke(variant="concat")
    kw = dict(outdir=tmp_path / "runs", cache_dir=tmp_path / "cache", progress=False, threads=1)
    first = S.load_secgan(cfg, **kw)
    again = S.load_secgan(cfg, **kw)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    a = torch.tensor([[0] * 13, [1] * 13]).float()
    assert torch.equal(first.editor(x, a, 1 - a), again.editor(x, a, 1 - a))
    parser, report = S.load_parser(cfg, cache_dir=tmp_path / "cache")
    assert all(torch.equal(v, again.nets["P"].net.state_dict()[k]) for k, v in parser.state_dict().items())
    assert 0 < report["miou"] <= 1


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="variant"):
        S.SeCGANStarGANConfig.smoke(variant="both")
    with pytest.raises(ValueError, match="data_root"):
        S.SeCGANStarGANConfig.smoke(dataset="celeba")
    with pytest.raises(ValueError, match="y_diff"):
        S.SeCGANAttGANConfig.smoke(condition="target")
    with pytest.raises(ValueError, match="expression"):
        S.SeCGANStarGANConfig.smoke(dataset="rafd", data_root="/x")
    with pytest.raises(ValueError, match="AttGAN on CelebA only"):
        S.SeCGANAttGANConfig.smoke(dataset="rafd", data_root="/x")
    with pytest.raises(ValueError, match="rafd.*not supported"):
        S.check_evaluation_data("rafd", "/data/RaFD")
    S.check_evaluation_data("synthfaces")


@pytest.mark.parametrize("fmt,make", [("celeba", S.SeCGANAttGANConfig.smoke),
                                      ("rafd", lambda **kw: S.SeCGANStarGANConfig.smoke(domain="expression", **kw))])
def test_training_reads_the_papers_data_sets_and_a_celebamask_parser(tmp_path, fmt, make):
    from faceedit_nb.data import export_synthfaces
    root = export_synthfaces(tmp_path / fmt, fmt, n=16, size=64, split="train", n_identities=2)
    masks = export_synthfaces(tmp_path / "celebamask-hq", "celebamask-hq", n=8, size=64, split=("train", "test"))
    cfg = make(dataset=fmt, data_root=str(root), parser_data_root=str(masks), parser_masks=8)
    b = S.SeCGANBatches(cfg)(0)
    assert b["image"].shape == (cfg.batch_size, 3, 32, 32)
    assert ("expression" if fmt == "rafd" else "attributes") in b
    trained = S.load_secgan(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path / "cache", progress=False, threads=1)
    assert trained.stats[-1]["step"] == cfg.total_steps
    assert len(S.parser_training_set(cfg)["image"]) == 8  # CelebAMask-HQ's export, not SynthFaces
    _, report = S.load_parser(cfg, cache_dir=tmp_path / "cache")
    assert report["data"].startswith("celebamaskhq:")
    assert set(S.series_configs("smoke", dataset=fmt, data_root=str(root))) == (
        {("expression", "StarGAN", v) for v in ("baseline", "secgan")} if fmt == "rafd"
        else {("attributes13", b, v) for b in ("StarGAN", "AttGAN") for v in S.VARIANTS})


def test_per_class_and_group_differences_read_the_harness_order():
    class Table:  # per-edit records as the harness stores them: batch by batch, target by target, face by face
        def __init__(self, hits):
            self.edits = {"face": faces, "attribute_accuracy_hit": hits}
    n_faces, batch_size, n_classes = 5, 3, 4
    faces = torch.cat([torch.arange(lo, min(n_faces, lo + batch_size)).repeat(n_classes)
                       for lo in range(0, n_faces, batch_size)])
    cls = S.edit_classes(Table(torch.zeros(len(faces))), n_faces, batch_size, n_classes)
    assert torch.equal(cls[:6], torch.tensor([0, 0, 0, 1, 1, 1]))
    # a is right on every edit to class 1, b on none; elsewhere both are right
    a, b = Table((cls != 9).float()), Table((cls != 1).float())
    d = S.class_difference(a, b, 1, metric="attribute_accuracy", n_faces=n_faces, batch_size=batch_size,
                           n_classes=n_classes)
    assert d.estimate == pytest.approx(1.0)
    assert S.class_difference(a, b, 0, metric="attribute_accuracy", n_faces=n_faces, batch_size=batch_size,
                              n_classes=n_classes).estimate == pytest.approx(0.0)
    g = S.group_gain_difference(a, b, [1], metric="attribute_accuracy", n_faces=n_faces, batch_size=batch_size,
                                n_classes=n_classes)
    assert g.estimate == pytest.approx(1.0) and g.low == pytest.approx(1.0)  # every face: +1 on class 1, 0 elsewhere
    with pytest.raises(ValueError, match="order"):
        S.edit_classes(Table(torch.zeros(len(faces))), n_faces, 2, n_classes)


def test_change_focus_is_one_for_the_true_edit_and_lower_for_a_global_change():
    from faceedit_nb.data import SynthFaces
    from faceedit_nb.metrics import ground_truth_editor
    test = SynthFaces("test", size=32, n=8, n_identities=2, seed=0, background="identity")
    k = L.ATTRIBUTES.index("Bangs")
    regions = S.true_regions(test, k)
    truth = S.change_focus(ground_truth_editor(test), test, k, regions=regions, threshold=0.05)
    ok = torch.isfinite(truth)
    assert ok.any() and (truth[ok] > 0.9).all()  # the re-render changes (almost) only its own region
    brighter = S.change_focus(lambda x, s, t: (x + 0.2).clamp(-1, 1), test, k, regions=regions)
    assert (brighter[ok] < truth[ok]).all()
    assert S.focus_difference(truth, brighter).estimate > 0


def test_is_difference_from_the_spread_over_splits():
    from faceedit_nb.metrics.table import EvalTable
    a, b = EvalTable(), EvalTable()
    a.add("overall", "is_own", 3.0, 100, std=0.2)
    b.add("overall", "is_own", 2.5, 100, std=0.4)
    d = S.is_difference(a, b)
    se = math.sqrt(0.2 ** 2 + 0.4 ** 2) / math.sqrt(10)
    assert d.estimate == pytest.approx(0.5) and d.se == pytest.approx(se)
    assert d.low == pytest.approx(0.5 - 1.959964 * se)


@pytest.mark.parametrize("make", [S.SeCGANStarGANConfig.smoke, S.SeCGANAttGANConfig.smoke])
def test_the_consistency_losses_reach_both_generators_and_nothing_else(make, tmp_path):
    batch = S.SeCGANBatches(make())(0)
    after = {}
    for lam in (0.0, 1.0):
        cfg = make(lambda_sc=lam)
        tr = _trainer(cfg, tmp_path, f"sc{lam}")
        n = S.backbone_of(cfg).n_critic
        torch.manual_seed(0)
        S.secgan_step(tr, cfg, batch, n - 1)  # critics, then both generators
        after[lam] = {k: [p.detach().clone() for p in tr.models[k].parameters()] for k in ("G", "G_seg", "D", "D_seg")}
    differ = {k: any(not torch.equal(a, b) for a, b in zip(after[0.0][k], after[1.0][k])) for k in after[0.0]}
    assert differ == {"G": True, "G_seg": True, "D": False, "D_seg": False}


def test_celebahq_trains_stargan_and_needs_its_attribute_file(tmp_path):
    from faceedit_nb.data import export_synthfaces
    root = export_synthfaces(tmp_path / "hq", "celebamask-hq", n=16, size=64, split="train", n_identities=2)
    cfg = S.SeCGANStarGANConfig.smoke(dataset="celebahq", data_root=str(root), variant="concat")
    assert S.SeCGANBatches(cfg)(0)["attributes"].shape == (cfg.batch_size, 13)
    trained = S.load_secgan(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path / "cache", progress=False, threads=1)
    assert trained.stats[-1]["step"] == cfg.total_steps
    (root / "CelebAMask-HQ-attribute-anno.txt").unlink()
    with pytest.raises(ValueError, match="no attributes labels"):
        S.SeCGANBatches(cfg)
