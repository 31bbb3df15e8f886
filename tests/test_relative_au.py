"""Ling et al.'s relative-AU editor: v_rel and Eq. 2, the MSF generator per k_MSF, the losses on hand-made
inputs, one iteration of each model of the series, and a run that resumes to the same weights."""
import math

import pytest
import torch

from faceedit_nb import labels as L
from faceedit_nb.papers import relative_au as R
from faceedit_nb.papers.ganimation import GANimationConfig
from faceedit_nb.train import count_parameters


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# parameters of UNet_MSF at the paper's width (ngf 64, 17 AUs) per number of MSF modules; k = 0 is the U-Net
PAPER_G_PARAMS = {0: 19_108_480, 1: 49_738_880, 2: 60_598_144, 3: 63_340_800}


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_parameter_counts_per_k_msf(k):
    G = R.UNetMSF(64, len(L.AUS), k)
    assert count_parameters(G) == PAPER_G_PARAMS[k]
    assert len(G.msf) == k and G.levels == (8, 4, 2)[:k]  # modules replace the skips from the lowest up
    # what one module adds: its convs at the width of its skip
    if k:
        assert count_parameters(G) - count_parameters(R.UNetMSF(64, len(L.AUS), k - 1)) == \
            count_parameters(G.msf[str(G.levels[-1])])


def test_k_msf_zero_is_a_plain_unet_whose_skips_are_the_encoder_features():
    G = R.UNetMSF(8, len(L.AUS), 0).eval()
    s = G.skips(torch.randn(2, 3, 32, 32), torch.zeros(2, len(L.AUS)))
    for d in (8, 4, 2):
        assert s[f"skip{d}"] is s[f"enc{d}"]


@pytest.mark.parametrize("k", [0, 3])
def test_shapes_through_the_generator(k):
    G = R.UNetMSF(8, len(L.AUS), k).eval()
    x, v = torch.randn(2, 3, 64, 64), torch.randn(2, len(L.AUS)) * 0.3
    s = G.skips(x, v)
    assert s["bottleneck"].shape == (2, 64, 4, 4)
    assert s["skip8"].shape == (2, 64, 8, 8) and s["skip4"].shape == (2, 32, 16, 16) and s["skip2"].shape == (2, 16, 32, 32)
    out = G(x, v)
    assert out.shape == x.shape and out.abs().max() <= 1
    with pytest.raises(ValueError, match="batch x 17"):
        G(x, torch.zeros(2, 5))


def test_msf_module_fuses_the_lower_resolution_and_reads_the_condition():
    m = R.MSFModule(16, 32, len(L.AUS)).eval()
    f, low, v = torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4), torch.zeros(2, len(L.AUS))
    out = m(f, low, v)
    assert out.shape == (2, 16, 8, 8)
    assert not torch.allclose(m(f, low + 1, v), out)               # f'_{i+1} reaches the output
    assert not torch.allclose(m(f, low, v + 0.5), out)             # and so does v_rel


def test_relative_aus_and_the_interpolation_of_eq_2():
    v_src, v_1, v_2 = torch.tensor([[0.2, 0.5]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    assert torch.equal(R.relative_aus(v_src, v_src), torch.zeros(1, 2))
    assert torch.allclose(R.relative_aus(v_2, v_src), torch.tensor([[0.8, -0.5]]))
    assert torch.allclose(R.interpolated_aus(v_1, v_2, v_src, 0.0), v_1 - v_src)   # α = 0: expression 1
    assert torch.allclose(R.interpolated_aus(v_1, v_2, v_src, 1.0), v_2 - v_src)   # α = 1: expression 2
    assert torch.allclose(R.interpolated_aus(v_1, v_2, v_src, 0.25), torch.tensor([[0.05, 0.25]]))
    alphas = torch.tensor([0.0, 0.5, 1.0])  # one α per image: linear in α
    v = R.interpolated_aus(v_1.expand(3, -1), v_2.expand(3, -1), v_src.expand(3, -1), alphas)
    assert torch.allclose(v[1], (v[0] + v[2]) / 2)
    # the condition of an edit: v_rel, or the target itself without v_rel; an edit to the source is v_rel = 0
    assert torch.equal(R.generator_condition(v_src, v_src, "relative"), torch.zeros(1, 2))
    assert torch.equal(R.generator_condition(v_src, v_2, "absolute"), v_2)


def test_losses_on_hand_made_inputs():
    real, fake = torch.full((2, 1, 2, 2), 3.0), torch.full((2, 1, 2, 2), -1.0)
    d_real, d_fake = R.adversarial_loss_d(real, fake)
    assert float(d_real) == -3.0 and float(d_fake) == -1.0                     # Eq. 3: -D(x), D(x')
    assert float(R.adversarial_loss_g(fake)) == 1.0                           # Eq. 4: -D(x')
    pred, v = torch.zeros(2, 17), torch.zeros(2, 17)
    v[:, 0] = 1.0
    assert float(R.condition_loss_d(pred, v)) == pytest.approx(1 / 17 / 2, abs=1e-7)      # Eq. 5: MSE / batch (the code)
    assert float(R.condition_loss_g(v, v)) == pytest.approx(0.0, abs=1e-7)                 # Eq. 6
    x, y = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert float(R.self_reconstruction_loss(y, x)) == pytest.approx(0.5, abs=1e-7)         # Eq. 7, first term
    assert float(R.cycle_reconstruction_loss(x, x)) == pytest.approx(0.0, abs=1e-7)        # Eq. 7, second term
    assert float(R.reconstruction_loss(x, y, y)) == pytest.approx(1.0, abs=1e-7)
    step = torch.zeros(1, 3, 4, 4)
    step[..., 2:] = 1.0                                                        # one vertical edge per row
    assert float(R.total_variation_loss(step)) == 3 * 4                       # summed: 3 channels x 4 rows
    assert float(R.discriminator_loss(d_real, d_fake, torch.tensor(0.01), lambda_D_cond=150.0)) == \
        pytest.approx(-4.0 + 1.5)                                               # Eq. 8
    total = R.generator_loss(torch.tensor(1.0), torch.tensor(0.1), torch.tensor(0.2), torch.tensor(0.3),
                             torch.tensor(100.0), lambda_G_cond=150.0, lambda_rec=30.0, lambda_cyc=30.0,
                             lambda_tv=5e-6)
    assert float(total) == pytest.approx(1 + 15 + 6 + 9 + 5e-4)               # Eq. 9


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    class Slope(torch.nn.Module):  # D(x) = sum(x) / sqrt(numel): gradient norm 1 everywhere
        def forward(self, x):
            return (x.flatten(1).sum(1) / math.sqrt(x[0].numel()))[:, None], None
    x = torch.randn(3, 3, 4, 4)
    assert float(R.gradient_penalty_loss(Slope(), x, x.flip(0))) == pytest.approx(0.0, abs=1e-6)


def test_paper_profile_holds_the_papers_settings():
    cfg = R.config_for("paper")
    assert (cfg.lambda_D_cond, cfg.lambda_G_cond, cfg.lambda_rec, cfg.lambda_cyc, cfg.lambda_tv) == (150, 150, 30, 30, 5e-6)
    assert (cfg.train_G_every_n_iterations, cfg.lr_G, cfg.beta1, cfg.beta2) == (4, 1e-4, 0.5, 0.999)
    assert (cfg.image_size, cfg.k_msf, cfg.condition, cfg.nepochs_no_decay, cfg.lr_final) == (128, 3, "relative", 30, 1e-5)
    sched = R.relative_au_schedule(cfg)
    assert sched(0) == 1.0 and sched(cfg.total_steps - 1) == pytest.approx(0.1)  # decays to 1e-5, not 0
    assert isinstance(cfg, GANimationConfig)  # an extension of GANimation's config


def test_series_configs_and_ganimation_with_relative_aus_through_config():
    s = R.series_configs("smoke")
    assert list(s) == list(R.SERIES)
    assert [s[n].k_msf for n in R.MSF_ROWS] == [0, 1, 2, 3]
    assert s["ours w/o v_rel"].condition == "absolute"
    ga_rel, ga = s["GANimation w/ v_rel"], R.ganimation_config("smoke")
    assert ga_rel.generator == "ganimation" and ga_rel.condition == "relative"
    for f in ("g_conv_dim", "lambda_D_cond", "lambda_cyc", "lambda_mask", "batch_size", "total_steps"):
        assert getattr(ga_rel, f) == getattr(ga, f), f  # GANimation's settings kept


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="k_msf must lie in 0..3"):
        R.config_for("smoke", k_msf=4)
    with pytest.raises(ValueError, match="baseline itself"):
        R.config_for("smoke", generator="ganimation", condition="absolute")
    with pytest.raises(ValueError, match="data_root"):
        R.config_for("smoke", dataset="openface")
    with pytest.raises(ValueError, match="dataset must be one of"):
        R.config_for("smoke", dataset="rafd", data_root="x")
    R.check_evaluation_data("synthfaces")
    with pytest.raises(ValueError, match="not supported in this chapter"):
        R.check_evaluation_data("affectnet", "/data/AffectNet")


def _run(cfg, tmp_path, name):
    return R.train_relative_au(cfg, run_dir=tmp_path / name, progress=False, threads=1)


@pytest.mark.parametrize("name", ["ours", "ours w/o v_rel", "k_MSF = 0", "GANimation w/ v_rel"])
def test_one_iteration_of_each_model_logs_every_term(tmp_path, name):
    cfg = R.series_configs("smoke")[name].replace(curve_every=0, nepochs_no_decay=1, nepochs_decay=1, n_train=16)
    tr = _run(cfg, tmp_path, "run")
    logged = set().union(*[r.keys() for r in tr.history])
    d_terms = {"D/real", "D/fake", "D/cond", "D/gp"}
    g_terms = {"G/fake", "G/cond", "G/cyc"} | ({"G/mask"} if cfg.generator == "ganimation" else {"G/rec", "G/tv"})
    assert d_terms | g_terms <= logged
    assert all(math.isfinite(v) for r in tr.history for v in r.values() if isinstance(v, float))


def test_ganimation_with_relative_aus_feeds_the_difference():
    cfg = R.series_configs("smoke")["GANimation w/ v_rel"]
    G = R.build_relative_au(cfg)["G"].eval()
    seen = []
    G.register_forward_pre_hook(lambda m, args: seen.append(args[1].clone()))
    y_org, y_trg = torch.rand(2, 17), torch.rand(2, 17)
    x = torch.randn(2, 3, 32, 32)
    from faceedit_nb.papers.ganimation import generator_condition  # what ganimation_step feeds G
    assert cfg.condition == "relative" and isinstance(cfg, GANimationConfig)
    G.animate(x, generator_condition(y_org, y_trg, cfg))
    G.animate(x, generator_condition(y_trg, y_org, cfg))
    assert torch.allclose(seen[0], y_trg - y_org) and torch.allclose(seen[1], y_org - y_trg)
    assert torch.equal(generator_condition(y_org, y_trg, GANimationConfig.smoke()), y_trg)  # GANimation's own
    # the editor: v_rel = target - source, so an edit to the source AUs is v_rel = 0 for every model
    edit = R.relative_au_editor(G, cfg)
    assert torch.allclose(edit(x, y_org, y_org), R.edit_relative(G, cfg, x, torch.zeros(1, 17)))


def test_v_rel_zero_path_and_the_editors(tmp_path):
    ours = R.config_for("smoke")
    G = R.build_relative_au(ours)["G"].eval()
    x, v_src, v_tgt = torch.randn(2, 3, 32, 32), torch.rand(2, 17), torch.rand(2, 17)
    with torch.no_grad():
        same = R.relative_au_editor(G, ours)(x, v_src, v_src)
        assert torch.equal(same, G(x, torch.zeros(2, 17)))        # an edit to the source is G(x, 0) (Eq. 7)
        assert torch.equal(R.relative_au_editor(G, ours)(x, v_src, v_tgt), G(x, v_tgt - v_src))
        absolute = ours.replace(condition="absolute")
        assert torch.equal(R.relative_au_editor(G, absolute)(x, v_src, v_tgt), G(x, v_tgt))
    with pytest.raises(ValueError, match="absolute AUs"):
        R.edit_relative(G, absolute, x, torch.zeros(1, 17))


def test_batches_are_functions_of_the_step_with_noisy_real_aus():
    cfg = R.config_for("smoke")
    data = R.RelativeAUBatches(cfg)
    a, b = data(3), data(3)
    assert all(torch.equal(a[k], b[k]) for k in ("image", "aus", "aus_trg"))
    noise = a["aus"] - a["aus_clean"]
    assert 0 < noise.abs().max() <= cfg.real_noise
    assert not torch.equal(data(4)["aus"], a["aus"])


def test_a_crashed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cfg = R.config_for("smoke", curve_every=0, snapshot_every=4)  # 16 iterations
    straight = _run(cfg, tmp_path, "straight")
    real_step = R.train.relative_au_step

    def crash(tr, c, batch, i):
        if i == 10:
            raise RuntimeError("killed")
        return real_step(tr, c, batch, i)
    monkeypatch.setattr(R.train, "relative_au_step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        _run(cfg, tmp_path, "resumed")
    monkeypatch.setattr(R.train, "relative_au_step", real_step)
    resumed = _run(cfg, tmp_path, "resumed")  # from the snapshot of step 8
    assert resumed.step == straight.step == cfg.total_steps
    for k in ("G", "D"):
        a, b = straight.models[k].state_dict(), resumed.models[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a), k


def test_load_trains_once_then_loads_from_the_cache(tmp_path):
    cfg = R.config_for("smoke", curve_every=0, k_msf=1)
    first = R.load_relative_au(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path, progress=False, threads=1)
    again = R.load_relative_au(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path, progress=False, threads=1)
    assert first.stats[-1]["step"] == cfg.total_steps
    a, b = first.nets["G"].state_dict(), again.nets["G"].state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)
    x, v = torch.randn(2, 3, 32, 32), torch.rand(2, 17)
    assert again.editor(x, v, v).shape == x.shape


def test_training_reads_a_folder_of_faces_with_openface_au_files(tmp_path):
    from faceedit_nb.data import export_synthfaces
    root = export_synthfaces(tmp_path / "openface", "openface", n=16, size=32, split=("train", "test"))
    cfg = R.config_for("smoke", curve_every=0, dataset="openface", data_root=str(root), n_train=16,
                       nepochs_no_decay=1, nepochs_decay=1)
    data = R.RelativeAUBatches(cfg)
    b = data(0)
    assert data.n == 16 and b["image"].shape == (cfg.batch_size, 3, 32, 32) and b["aus_trg"].shape == (cfg.batch_size, 17)
    tr = _run(cfg, tmp_path, "real")
    assert tr.step == 4
    with pytest.raises(FileNotFoundError):
        R.RelativeAUBatches(cfg.replace(data_root=str(tmp_path / "missing")))


def test_locality_share_and_true_region_on_hand_made_images():
    x = torch.zeros(2, 3, 4, 4)
    truth = x.clone()
    truth[:, :, :2] = 1.0                                     # the AU truly moves the top half
    region = R.true_region(x, truth)
    assert region[:, :2].all() and not region[:, 2:].any()
    edit = x.clone()
    edit[0, :, :2] = 0.5                                      # face 0: change only inside the region
    edit[1] = 0.5                                             # face 1: an even change everywhere
    share = R.locality_share(x, edit, region)
    assert share[0] == 1.0 and share[1] == pytest.approx(0.5)
    assert R.locality_share(x, x, region).isnan().all()       # no change at all: undefined


def test_reconstruction_and_relative_edit_errors_of_the_calibration_editors():
    from faceedit_nb.data import SynthFaces
    from faceedit_nb.metrics import ground_truth_editor, identity_editor
    test = SynthFaces("test", size=32, n=8, n_identities=2, au_mode="mixed")
    rec = R.reconstruction_errors(identity_editor, test, 8, batch_size=4)
    assert (rec["l1"] == 0).all() and torch.isinf(rec["psnr"]).all() and rec["ssim"].min() > 0.999

    class ReadsTheTarget:  # an AU oracle stand-in
        def __init__(self):
            self.target = None

        def aus(self, images):
            return torch.zeros(len(images), 17)

    truth = R.relative_edit_errors(ground_truth_editor(test), test, ReadsTheTarget(), 8, aus=("AU12", "AU26"), batch_size=4)
    nothing = R.relative_edit_errors(identity_editor, test, ReadsTheTarget(), 8, aus=("AU12", "AU26"), batch_size=4)
    assert len(truth["gt_l1"]) == 16 and torch.equal(truth["face"], nothing["face"])  # paired, same order
    assert (truth["gt_l1"] == 0).all() and (nothing["gt_l1"] > 0).all()
    assert truth["locality"].nanmean() > 0.95 > 0.5 > truth["region_area"].mean()


def test_inception_score_difference_from_the_splits():
    class Table:
        def __init__(self, value, std):
            self.rows = [{"class": "overall", "metric": "is_own", "value": value, "std": std, "n": 100}]
    d = R.inception_score_difference(Table(2.9, 0.04), Table(2.8, 0.03), splits=10)
    assert d.estimate == pytest.approx(0.1) and d.se == pytest.approx(0.05 / math.sqrt(10))
    assert d.low > 0


def test_slider_editor_and_its_static_figure():
    import matplotlib
    matplotlib.use("Agg")
    cfg = R.config_for("smoke")
    G = R.build_relative_au(cfg)["G"].eval()
    face = torch.zeros(1, 3, 32, 32)
    widget = R.au_slider_editor(lambda v: R.edit_relative(G, cfg, face, v), face[0])
    sliders = widget.children[0].children[0].children
    assert [s.description for s in sliders] == list(L.AUS)
    fig = R.slider_figure(lambda v: R.edit_relative(G, cfg, face, v), face[0], [{"AU12": 0.5}, {"AU01": 0.3, "AU26": 0.6}])
    assert len(fig.axes) == 6
    assert torch.equal(R.v_rel_from({"AU12": 0.5})[0], torch.eye(17)[L.AUS.index("AU12")] * 0.5)
    with pytest.raises(KeyError, match="AU99"):
        R.v_rel_from({"AU99": 1.0})


def test_hard_cases_are_faces_of_the_requested_size():
    cases = R.hard_cases(32, n=16, n_identities=2)
    assert {"occluded", "flat style"} <= set(cases) and all(c.shape == (1, 3, 32, 32) for c in cases.values())
    assert not torch.equal(cases["occluded"], cases["flat style"])
