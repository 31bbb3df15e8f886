"""DefGAN: the grid and the warp, G_Def's bound and its identity start, the losses on hand-made inputs, one
iteration of each model of the series, a run that resumes to the same weights, and the evaluation helpers."""
import math

import pytest
import torch
import torch.nn.functional as F

from faceedit_nb import labels as L
from faceedit_nb.papers import defgan as DG
from faceedit_nb.papers.ganimation import GANimationConfig
from faceedit_nb.train import count_parameters

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_identity_grid_warps_an_image_onto_itself_and_a_shift_moves_it():
    x = torch.randn(2, 3, 16, 16)
    ident = DG.identity_grid(2, 16)
    assert torch.allclose(DG.warp(ident, x), x, atol=1e-5)
    shift = torch.zeros(2, 2, 16, 16)
    shift[:, 0] = 2 * 1 / 16  # sample one pixel to the right: the image moves one pixel left
    moved = DG.warp(DG.offset_grid(shift), x)
    assert torch.allclose(moved[..., :-1], x[..., 1:], atol=1e-5)
    assert torch.allclose(DG.grid_to_pixels(DG.offset_grid(shift))[..., 0], torch.ones(2, 16, 16))


def test_deformation_generator_starts_at_the_identity_and_stays_within_the_maximum_offset():
    G = DG.DeformationGenerator(8, 17, 1, image_size=32, max_offset=5.0)
    x, a, b = torch.randn(3, 3, 32, 32), torch.rand(3, 17), torch.rand(3, 17)
    deformed, grid = G.deform(x, a, b)
    assert torch.equal(grid, DG.identity_grid(3, 32)) and torch.allclose(deformed, x, atol=1e-5)
    torch.nn.init.normal_(G.offsets.weight, std=10.0)   # a saturated offset head
    disp = DG.grid_to_pixels(G(x, a, b)).abs()
    assert disp.max() <= 5.0 * 32 / 128 + 1e-4 and disp.max() > 1.0   # 1.25 px at 32 px
    # the source AUs are an input too (Eq. 1: G_Def(I_x, x, y))
    assert not torch.equal(G(x, a, b), G(x, b, b))


def test_parameter_counts_at_the_papers_width():
    nets = DG.build_defgan(DG.config_for("paper"))
    g_tex, g_def = count_parameters(nets["G"].texture), count_parameters(nets["G"].deform)
    assert g_tex == 8_471_296                     # GANimation's generator (faceedit_nb.nets.ganimation)
    assert count_parameters(nets["D"]) == 44_860_352
    # G_Def: GANimation's trunk without its up-sampling path and heads: a 7x7 stem on 3 + 2 x 17 channels
    # (116,032 + 128 norm), the two stride-2 convs (656,128 with norms), six residual blocks (7,084,032), and
    # the 3x3 offset conv 256 -> 2 with bias (4,610)
    assert g_def == 116_032 + 128 + 656_128 + 7_084_032 + 4_610


def test_both_stages_compose_as_eq_6_and_the_ablations_drop_a_stage():
    cfg = DG.config_for("smoke")
    G = DG.build_defgan(cfg)["G"].eval()
    x, a, b = torch.randn(2, 3, 32, 32), torch.rand(2, 17), torch.rand(2, 17)
    with torch.no_grad():
        out = G(x, a, b)
        assert torch.allclose(out["output"], out["mask"] * out["texture"] + (1 - out["mask"]) * out["deformed"])
        no_texture = DG.build_defgan(cfg.replace(**DG.ABLATIONS["w/o texture"]))["G"]
        assert no_texture.texture is None and torch.equal(no_texture(x, a, b)["output"], no_texture(x, a, b)["deformed"])
        no_warp = DG.build_defgan(cfg.replace(**DG.ABLATIONS["w/o deformation"]))["G"]
        assert no_warp.deform is None and torch.equal(no_warp(x, a, b)["deformed"], x)


def test_losses_on_hand_made_inputs():
    ident = DG.identity_grid(2, 8)
    assert float(DG.grid_composition_loss(ident, ident)) == pytest.approx(0.0, abs=1e-10)
    reg, eye, tv = DG.grid_regularisation_loss(ident, lambda_eye=0.1, lambda_tv=1e-5)
    assert float(eye) == 0.0 and float(tv) == pytest.approx(2 * 2 * 8 * 7 * (2 / 8) ** 2)  # steps of 2/8, 2 coords
    m = torch.zeros(1, 1, 4, 4)
    m[..., 1, 1] = 1.0
    reg, eye, tv = DG.mask_regularisation_loss(m, lambda_eye=0.1, lambda_tv=1e-5)
    assert float(eye) == pytest.approx(1 / 16) and float(tv) == pytest.approx(4.0)
    assert float(reg) == pytest.approx(0.1 / 16 + 4e-5)
    # a one-pixel shift and its inverse compose to the identity (Eq. 13) but in the row the border repeats
    s = torch.zeros(2, 2, 8, 8)
    s[:, 1] = 0.25
    fwd, back = DG.offset_grid(s), DG.offset_grid(-s)
    alone, composed = float(DG.grid_composition_loss(ident, fwd)), float(DG.grid_composition_loss(back, fwd))
    assert alone == pytest.approx(0.25 ** 2 / 2) and composed == pytest.approx(alone / 8)  # 1 row of 8
    # Eq. 9: the two AU terms, weighted
    y, pd, pf = torch.zeros(2, 17), torch.full((2, 17), 0.1), torch.full((2, 17), 0.2)
    total, on_def, on_final = DG.expression_loss_g(pd, pf, y, lambda_def=1000.0, lambda_comp=4000.0)
    assert float(on_def) == pytest.approx(0.01 / 2) and float(total) == pytest.approx(1000 * 0.005 + 4000 * 0.02)
    # Eq. 12: an embedding that ignores the edit gives 0; orthogonal embeddings give 1
    x = torch.randn(2, 3, 8, 8)
    assert float(DG.face_identity_loss(lambda z: torch.ones(len(z), 4), x + 1, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(DG.face_identity_loss(lambda z: F.one_hot((z.mean((1, 2, 3)) > 0).long(), 2).float(),
                                       torch.ones(1, 3, 8, 8), -torch.ones(1, 3, 8, 8))) == pytest.approx(1.0)


def test_paper_profile_holds_the_papers_settings():
    cfg = DG.config_for("paper")
    assert isinstance(cfg, GANimationConfig)  # an extension of GANimation's config
    assert (cfg.lambda_D_cond, cfg.lambda_exp_def, cfg.lambda_cyc, cfg.lambda_comp) == (4000, 1000, 100, 10)
    assert (cfg.lambda_grid_eye, cfg.lambda_grid_tv, cfg.lambda_mask, cfg.lambda_mask_smooth) == (0.1, 1e-5, 0.1, 1e-5)
    assert (cfg.batch_size, cfg.train_G_every_n_iterations, cfg.lr_G, cfg.beta1, cfg.beta2) == (25, 10, 1e-4, 0.5, 0.999)
    assert (cfg.nepochs_no_decay, cfg.nepochs_decay, cfg.image_size, cfg.offset_pixels) == (20, 20, 128, 5.0)
    assert cfg.convention == "paper"


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="at least one stage"):
        DG.config_for("smoke", deformation=False, texture=False)
    with pytest.raises(ValueError, match="convention='paper'"):
        DG.config_for("smoke", convention="code")
    with pytest.raises(ValueError, match="data_root"):
        DG.config_for("smoke", dataset="openface")
    with pytest.raises(ValueError, match="max_offset"):
        DG.config_for("smoke", max_offset=0.0)
    with pytest.raises(ValueError, match="not supported in this chapter"):
        DG.check_evaluation_data("affectnet", "/data/AffectNet")


def _run(cfg, tmp_path, name):
    return DG.train_defgan(cfg, run_dir=tmp_path / name, progress=False, threads=1)


@pytest.mark.parametrize("name", ["DefGAN", "w/o deformation", "w/o texture"])
def test_one_run_of_each_model_logs_every_term(tmp_path, monkeypatch, name):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "cache"))
    cfg = DG.series_configs("smoke")[name].replace(curve_every=0, n_train=16)
    tr = _run(cfg, tmp_path, "run")
    logged = set().union(*[r.keys() for r in tr.history])
    assert {"D/real", "D/fake", "D/exp", "D/gp", "G/critic", "G/exp", "G/cyc", "G/comp", "G/mask_eye"} <= logged
    assert all(math.isfinite(v) for r in tr.history for v in r.values() if isinstance(v, float))
    if cfg.deformation:   # the grid has left the identity: G_Def learns
        G = tr.models["G"].eval()
        b = DG.defgan_batches(cfg)(0)
        with torch.no_grad():
            assert DG.grid_to_pixels(G(b["image"], b["aus"], b["aus_trg"])["grid"]).abs().max() > 0


def test_the_face_identity_network_is_frozen_and_not_the_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "cache"))
    cfg = DG.config_for("smoke")
    net = DG.identity_network(cfg)
    assert not any(p.requires_grad for p in net.parameters())
    from faceedit_nb.oracles import load_oracles
    judge = load_oracles(size=32, profile="smoke", seed=0, which=("identity",), verbose=False).nets["identity"]
    assert any(not torch.equal(a, b) for a, b in zip(net.state_dict().values(), judge.state_dict().values()))
    assert DG.identity_network(cfg.replace(lambda_face_id=0.0)) is None


def test_a_crashed_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "cache"))
    cfg = DG.config_for("smoke", curve_every=0, snapshot_every=4)  # 16 iterations
    straight = _run(cfg, tmp_path, "straight")
    real_step = DG.train.defgan_step

    def crash(tr, c, batch, i, **kw):
        if i == 10:
            raise RuntimeError("killed")
        return real_step(tr, c, batch, i, **kw)
    monkeypatch.setattr(DG.train, "defgan_step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        _run(cfg, tmp_path, "resumed")
    monkeypatch.setattr(DG.train, "defgan_step", real_step)
    resumed = _run(cfg, tmp_path, "resumed")  # from the snapshot of step 8
    assert resumed.step == straight.step == cfg.total_steps
    for k in ("G", "D"):
        a, b = straight.models[k].state_dict(), resumed.models[k].state_dict()
        assert all(torch.equal(a[n], b[n]) for n in a), k


def test_training_reads_a_folder_of_faces_with_openface_au_files(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_CACHE", str(tmp_path / "cache"))
    from faceedit_nb.data import export_synthfaces
    root = export_synthfaces(tmp_path / "openface", "openface", n=16, size=32, split=("train", "test"))
    cfg = DG.config_for("smoke", curve_every=0, dataset="openface", data_root=str(root), n_train=16,
                        lambda_face_id=0.0)
    b = DG.defgan_batches(cfg)(0)
    assert b["image"].shape == (cfg.batch_size, 3, 32, 32) and b["aus_trg"].shape == (cfg.batch_size, 17)
    assert _run(cfg, tmp_path, "real").step == cfg.total_steps


def test_evaluation_helpers_on_a_hand_made_editor():
    from faceedit_nb.data import SynthFaces
    ds = SynthFaces("test", size=32, n=4, n_identities=2, au_mode="mixed")
    idx = torch.arange(4)
    target = DG.expression_targets(ds, idx, "happy")
    assert torch.allclose(target, ds.render_targets(idx, expression=L.EXPRESSIONS.index("happy"))["aus"])

    class Judge:  # an identity embedding that reads the mean brightness
        def identity_embedding(self, x):
            return F.normalize(torch.stack([x.mean((1, 2, 3)), torch.ones(len(x))], 1), dim=1)

        def aus(self, x):
            return torch.zeros(len(x), 17)
    keep = DG.identity_distance_per_expression(lambda x, s, t: x, ds, Judge(), 4, expressions=("happy", "sad"))
    assert set(keep) == {"happy", "sad"} and all(float(v.abs().max()) < 1e-6 for v in keep.values())
    brighter = DG.identity_distance_per_expression(lambda x, s, t: (x + 0.5).clamp(-1, 1), ds, Judge(), 4,
                                                   expressions=("happy",))
    assert float(brighter["happy"].min()) > 0
    G = DG.build_defgan(DG.config_for("smoke"))["G"].eval()
    stages = DG.single_au_stages(G, ds.batch(idx)["image"], ds.batch(idx)["aus"], "AU12", values=(0.0, 1.0))
    assert stages["deformed"].shape == (2, 4, 3, 32, 32) and float(stages["displacement"].max()) == 0.0  # step 0
    progress = DG.stage_progress(G, ds, Judge(), 4, expressions=("happy",))
    assert set(progress) == {"ed_input", "ed_deformed", "ed_final"} and len(progress["ed_input"]) == 4
    x = torch.zeros(1, 3, 4, 4)
    assert torch.allclose(DG.difference_map(x, x + 1), torch.full((1, 4, 4), 0.5))
