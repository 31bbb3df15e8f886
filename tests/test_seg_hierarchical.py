"""The hierarchical GAN of Bodur et al.: forward pass, losses, and where the gradients go (Eq. 9)."""
import pytest
import torch
import torch.nn.functional as F

from faceedit_nb import claims as C
from faceedit_nb.papers import seg_hierarchical as S
from faceedit_nb.papers import stargan as SG
from faceedit_nb.data import SynthFaces


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _batch(cfg, n=4):
    b = SynthFaces("train", size=cfg.image_size, n=16).batch(torch.arange(n))
    lab = b["expression"]
    return b, lab, F.one_hot(lab, 8).float(), F.one_hot((lab + 3) % 8, 8).float(), (lab + 3) % 8


# the paper's recipe: every network from scratch, the global generator trained with the others
SCRATCH = dict(global_from="", train_global=True, fusion_residual=False)


def _grad_norm(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("end_to_end", [True, False])
def test_end_to_end_decides_whether_the_parser_learns(end_to_end):
    torch.manual_seed(0)
    cfg = S.config_for("smoke", end_to_end=end_to_end, **SCRATCH)
    m = S.HierarchicalGAN(cfg)
    b, lab, c_src, c_trg, trg = _batch(cfg)
    fake = m.translate(b["image"], c_trg)
    assert fake["out"].shape == b["image"].shape and fake["parts_out"].shape == (4, 4, 3, 16, 16)
    g = S.generator_loss(m, S.real_inputs(b["image"], fake), fake, m.reconstruct(fake, c_src), trg)
    assert torch.isfinite(g["loss"])
    g["loss"].backward()
    assert _grad_norm(m.G_global) > 0 and _grad_norm(m.fusion) > 0
    assert (_grad_norm(m.parser) > 0) == end_to_end
    groups = S.parameter_groups(m)
    assert (len(groups["G"]) == 2) == end_to_end


def test_excluded_parts_are_not_translated_and_rectangles_need_landmarks():
    cfg = S.config_for("smoke", parts="rectangular", exclude=("nose",))
    m = S.HierarchicalGAN(cfg)
    b, lab, c_src, c_trg, trg = _batch(cfg)
    with pytest.raises(ValueError, match="landmarks"):
        m.translate(b["image"], c_trg)
    fake = m.translate(b["image"], c_trg, landmarks=b["landmarks"])
    assert fake["masks"] is None and m.parser is None
    assert (fake["parts_out"][:, 2] == 0).all() and (fake["parts_out"][:, 3] != 0).any()
    d = S.discriminator_loss(m, S.real_inputs(b["image"], fake), fake, lab)
    assert "D/nose" not in d and "D/mouth_lips" in d and torch.isfinite(d["loss"])


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown parts"):
        S.config_for("smoke", exclude=("ears",))
    with pytest.raises(ValueError, match="parser"):
        S.config_for("smoke", parser="deeplab")
    with pytest.raises(ValueError, match="profile"):
        S.config_for("laptop")


def test_engine_steps_train_every_branch(tmp_path):
    from faceedit_nb.train import Trainer
    torch.manual_seed(0)
    cfg = S.config_for("smoke", **SCRATCH)
    m = S.HierarchicalGAN(cfg)
    groups = S.parameter_groups(m)
    opts = {k: torch.optim.Adam(v, betas=(0.5, 0.999)) for k, v in groups.items()}
    tr = Trainer({"model": m}, opts, total_steps=2, run_dir=tmp_path / "run", progress=False, seed=0)
    b, *_ = _batch(cfg, n=4)
    before = [p.detach().clone() for p in m.parser.parameters()]
    logs = [S.hierarchical_step(tr, cfg, {"image": b["image"], "expression": b["expression"]}, i) for i in range(2)]
    assert {"D/global", "D/fusion", "D/mouth_lips"} <= set(logs[0]) and "G/fusion" in logs[1]
    assert all(torch.isfinite(torch.as_tensor(float(v))) for v in logs[1].values())
    assert any(not torch.equal(a, p) for a, p in zip(before, m.parser.parameters()))  # Eq. 9 moved the parser


def test_a_global_branch_starts_from_the_cpu_recipes_stargan():
    """The baselines' cpu StarGAN (residual, resize up-sampling, projection critic) loads into the global branch:
    the same edit, and critics equal to its trunk and heads without the label term."""
    cfg = S.config_for("smoke")
    sg = SG.StarGANConfig.profile("smoke", g_residual=True, g_upsample="resize", d_projection=True)
    nets = SG.build_stargan(sg)
    torch.nn.init.normal_(nets["G"].main[-2].weight, std=0.05)  # a generator that changes the face
    cfg.global_stargan = lambda: sg
    m = S.build_hierarchical(cfg, global_nets=nets)
    b, lab, c_src, c_trg, trg = _batch(cfg)
    with torch.no_grad():
        fake = m.translate(b["image"], c_trg)
        assert torch.equal(fake["global"], nets["G"](b["image"], c_trg))
        assert not torch.equal(fake["global"], b["image"])
    critic = {k: v for k, v in nets["D"].state_dict().items() if not k.startswith("embed.")}
    assert set(m.D_global.state_dict()) == set(critic) and len(critic) < len(nets["D"].state_dict())
    assert all(torch.equal(m.D_fusion.state_dict()[k], v) for k, v in critic.items())


def test_a_global_branch_from_stargan_stays_fixed_and_the_fusion_starts_at_its_edit(tmp_path):
    from faceedit_nb.train import Trainer
    cfg = S.config_for("smoke")  # global_from="smoke", train_global=False, fusion_residual=True (as cpu)
    nets = SG.build_stargan(cfg.global_stargan())
    m = S.build_hierarchical(cfg, global_nets=nets)
    b, lab, c_src, c_trg, trg = _batch(cfg)
    with torch.no_grad():
        fake = m.translate(b["image"], c_trg)
        assert torch.equal(fake["global"], nets["G"](b["image"], c_trg))
    assert torch.equal(fake["out"], fake["global"])  # the residual fusion's last layer starts at zero
    assert m.G_global not in m.generator_modules() and m.D_global not in m.discriminator_modules()
    fixed = {k: v.clone() for k, v in [*m.G_global.state_dict().items(), *m.D_global.state_dict().items()]
             if "running" not in k}  # instance-norm running statistics are not used by the forward pass
    d_fusion = [p.detach().clone() for p in m.D_fusion.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(d_fusion, nets["D"].parameters()))  # starts as StarGAN's critic
    opts = S.hierarchical_optimizers(cfg, m)
    tr = Trainer({"model": m}, opts, total_steps=2, run_dir=tmp_path / "run", progress=False, seed=0)
    logs = [S.hierarchical_step(tr, cfg, {"image": b["image"], "expression": b["expression"]}, i) for i in range(2)]
    assert "D/global" not in logs[0] and "G/global" not in logs[1] and "G/fusion" in logs[1]
    now = dict([*m.G_global.state_dict().items(), *m.D_global.state_dict().items()])
    assert all(torch.equal(v, now[k]) for k, v in fixed.items())
    assert any(not torch.equal(a, p) for a, p in zip(d_fusion, m.D_fusion.parameters()))
    with torch.no_grad():
        fake = m.translate(b["image"], c_trg)
    assert not torch.equal(fake["out"], fake["global"])  # the fusion has learnt a correction
    with pytest.raises(ValueError, match="global_from"):
        S.config_for("smoke", global_from="", train_global=False)


def test_train_all_in_two_processes_gives_the_weights_of_training_one_by_one(tmp_path):
    configs = {"rect": S.config_for("smoke", parts="rectangular"), "frozen": S.config_for("smoke", end_to_end=False)}
    def train(where, workers):
        return S.train_all(configs, workers=workers, outdir=tmp_path / where / "runs", cache_dir=tmp_path / where,
                           progress=False)

    assert train("a", 2) == {"cached": 0, "trained": 2}
    assert train("a", 2) == {"cached": 2, "trained": 0}
    assert train("b", 1) == {"cached": 0, "trained": 2}
    for c in configs.values():
        a, b = (S.load_hierarchical(c, cache_dir=tmp_path / w, progress=False).nets["model"].state_dict() for w in "ab")
        assert all(torch.equal(a[k], b[k]) for k in a)


# --- parser pre-training, training and loading through the cache (smoke sizes) ---------------------------
def test_parser_training_set_fractions_are_nested_subsets():
    cfg = S.config_for("smoke")
    full = S.parser_training_set(cfg)
    half = S.parser_training_set(cfg.replace(parser_fraction=0.5))
    assert len(full["image"]) == cfg.parser_masks and len(half["image"]) == cfg.parser_masks // 2
    assert full["image"].dtype == torch.uint8 and full["mask"].shape == (cfg.parser_masks, 32, 32)
    rows = {tuple(r.flatten()[:64].tolist()) for r in full["image"]}
    assert all(tuple(r.flatten()[:64].tolist()) in rows for r in half["image"])
    with pytest.raises(ValueError, match="parser_fraction"):
        S.config_for("smoke", parser_fraction=0.0)


def test_parser_config_is_shared_by_the_variants_and_keyed_by_the_fraction():
    cfg = S.config_for("smoke")
    assert S.parser_config(cfg) == S.parser_config(cfg.replace(end_to_end=False, exclude=("nose",), steps=99))
    assert S.parser_config(cfg) != S.parser_config(cfg.replace(parser_fraction=0.2))


class _LookupParser(torch.nn.Module):
    """Returns the ground-truth logits of the test faces in order (a perfect parser), or those of shifted masks."""

    def __init__(self, masks, shift=0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.masks, self.pos, self.shift = masks, 0, shift

    def forward(self, x):
        m = self.masks[self.pos:self.pos + len(x)]
        self.pos += len(x)
        m = m.roll(self.shift, dims=-1)
        return 10.0 * F.one_hot(m, 19).permute(0, 3, 1, 2).float() + 0 * self.w


def test_parser_miou_is_one_for_a_perfect_parser_and_lower_for_a_shifted_one():
    faces = SynthFaces("test", size=32, n=48, seed=0, n_identities=6)
    masks = faces.batch(torch.arange(48))["mask"]
    perfect = S.parser_miou(_LookupParser(masks), 32, n=48, batch_size=20)
    assert perfect["miou"] == pytest.approx(1.0) and perfect["parts_miou"] == pytest.approx(1.0)
    shifted = S.parser_miou(_LookupParser(masks, shift=3), 32, n=48, batch_size=20)
    assert shifted["parts_miou"] < 0.9 and set(shifted["per_part_iou"]) == set(S.PARTS)


def test_load_parser_trains_once_then_loads(tmp_path):
    cfg = S.config_for("smoke")
    p1, rep1 = S.load_parser(cfg, cache_dir=tmp_path)
    p2, rep2 = S.load_parser(cfg, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1 and rep1 == rep2 and 0 <= rep1["miou"] <= 1
    assert all(torch.equal(a, b) for a, b in zip(p1.state_dict().values(), p2.state_dict().values()))


def test_batches_carry_each_faces_landmarks():
    cfg = S.config_for("smoke")
    data = S.HierarchicalBatches(cfg)
    b = data(3)
    assert b["image"].shape == (cfg.batch_size, 3, 32, 32) and b["landmarks"].shape == (cfg.batch_size, 68, 2)
    want = data.base.dataset.batch(b["index"])["landmarks"]
    assert torch.equal(b["landmarks"], want)


@pytest.mark.parametrize("end_to_end", [True, False])
def test_load_hierarchical_trains_through_the_engine_and_caches(tmp_path, end_to_end):
    cfg = S.config_for("smoke", end_to_end=end_to_end)
    trained = S.load_hierarchical(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path, progress=False, threads=1)
    model = trained.nets["model"]
    assert trained.stats[-1]["step"] == cfg.steps and trained.train_seconds > 0
    pretrained, _ = S.load_parser(cfg, cache_dir=tmp_path)
    same = all(torch.equal(a, b) for a, b in zip(pretrained.state_dict().values(), model.parser.state_dict().values()))
    assert same != end_to_end  # Eq. 9 moves the parser only end to end
    x = SynthFaces("test", size=32, n=4).batch(torch.arange(4))
    with torch.no_grad():
        y = trained.editor(x["image"], x["expression"], (x["expression"] + 1) % 8)
    assert y.shape == x["image"].shape and torch.isfinite(y).all()
    again = S.load_hierarchical(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path, progress=False, threads=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.nets["model"].state_dict().values()))


def test_rectangular_editor_reads_landmarks_by_index(tmp_path):
    cfg = S.config_for("smoke", parts="rectangular")
    trained = S.load_hierarchical(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path, progress=False, threads=1)
    assert trained.editor is None and not any(p.name.startswith("hier-parser") for p in tmp_path.iterdir())
    test = SynthFaces("test", size=32, n=8)
    with pytest.raises(ValueError, match="landmarks"):
        S.hierarchical_editor(trained.nets["model"])
    editor = S.hierarchical_editor(trained.nets["model"], test)
    assert editor.wants_indices
    idx = torch.tensor([5, 2])
    b = test.batch(idx)
    with torch.no_grad():
        y = editor(b["image"], b["expression"], torch.tensor([3, 4]), indices=idx)
        want = trained.nets["model"].translate(b["image"], F.one_hot(torch.tensor([3, 4]), 8).float(),
                                               landmarks=b["landmarks"])["out"]
    assert torch.allclose(y, want)


# --- the paper's data through the loaders: RaFD / AffectNet translation sets, CelebAMask-HQ parser ------
def test_part_centre_landmarks_put_the_boxes_where_the_parts_are():
    b = SynthFaces("test", size=64, n=8).batch(torch.arange(8))
    pseudo = S.part_centre_landmarks(_LookupParser(b["mask"]), b["image"])
    true_boxes = S.rectangular_boxes(b["landmarks"], (0.2, 0.2, 0.18, 0.28), 64)
    boxes = S.rectangular_boxes(pseudo, (0.2, 0.2, 0.18, 0.28), 64)
    assert pseudo.shape == (8, 68, 2)
    assert (boxes - true_boxes).abs().max() < 4  # pixels, at 64 px: the part centres, not the landmarks' mean
    assert (boxes - true_boxes.roll(1, dims=0)).abs().max() > 4  # and they follow each face


@pytest.mark.parametrize("fmt,parts", [("rafd", "rectangular"), ("affectnet", "semantic")])
def test_training_reads_the_papers_data_sets_through_the_loaders(tmp_path, fmt, parts):
    from faceedit_nb.data import export_synthfaces
    root = export_synthfaces(tmp_path / fmt, fmt, n=16, size=64, split="train", n_identities=2)
    masks = export_synthfaces(tmp_path / "celebamask-hq", "celebamask-hq", n=8, size=64, split=("train", "test"))
    cfg = S.config_for("smoke", dataset=fmt, data_root=str(root), parser_data_root=str(masks), parts=parts,
                       parser_masks=8)
    data = S.HierarchicalBatches(cfg, parser=S.load_parser(cfg, cache_dir=tmp_path)[0])
    b = data(0)
    assert b["image"].shape == (cfg.batch_size, 3, 32, 32) and b["landmarks"].shape == (cfg.batch_size, 68, 2)
    trained = S.load_hierarchical(cfg, outdir=tmp_path / "runs", cache_dir=tmp_path, progress=False, threads=1)
    assert trained.stats[-1]["step"] == cfg.steps
    assert len(S.parser_training_set(cfg)["image"]) == 8  # the CelebAMask-HQ export, not SynthFaces' 40
    _, report = S.load_parser(cfg, cache_dir=tmp_path)  # measured on CelebAMask-HQ's test split, as the paper's
    assert report["data"].startswith("celebamaskhq:") and len(report["per_face_miou"]) == 8


def test_real_data_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="data_root"):
        S.config_for("smoke", dataset="rafd")
    with pytest.raises(ValueError, match="dataset must be one of"):
        S.config_for("smoke", dataset="celeba", data_root="x")
    with pytest.raises(FileNotFoundError, match="RaFD"):
        S.HierarchicalBatches(S.config_for("smoke", dataset="rafd", data_root=str(tmp_path / "missing")))
    # 03 / 04 refuse to evaluate RaFD-trained models with SynthFaces' oracles (never silently on other data)
    S.check_evaluation_data("synthfaces")
    with pytest.raises(ValueError, match="not supported in this chapter: the book's oracles"):
        S.check_evaluation_data("rafd", "/data/RaFD")


def test_a_face_parsing_checkpoint_and_imagenet_backbone_reach_the_series_parser(tmp_path):
    from faceedit_nb import labels as L
    from faceedit_nb.nets.parsing import BiSeNet
    torch.manual_seed(1)
    theirs = BiSeNet()
    state = {k: v.clone() for k, v in theirs.state_dict().items()}
    for head in ("conv_out", "conv_out16", "conv_out32"):
        state[f"{head}.conv_out.weight"] = state[f"{head}.conv_out.weight"][L.FROM_BISENET]
    torch.save(state, tmp_path / "79999_iter.pth")
    torch.save(theirs.cp.resnet.state_dict(), tmp_path / "resnet18.pth")
    cfg = S.config_for("smoke", parser="bisenet", parser_checkpoint=str(tmp_path / "79999_iter.pth"), parser_steps=0)
    parser, _ = S.load_parser(cfg, cache_dir=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(parser.cp.resnet.state_dict().values(),
                                                  theirs.cp.resnet.state_dict().values()))
    assert S.parser_config(cfg) != S.parser_config(cfg.replace(parser_checkpoint=""))  # its own cache entry
    with_backbone = S.config_for("smoke", parser="bisenet", backbone_weights=str(tmp_path / "resnet18.pth"))
    backbone = S.build_parser(with_backbone)
    assert all(torch.equal(a, b) for a, b in zip(backbone.cp.resnet.state_dict().values(),
                                                  theirs.cp.resnet.state_dict().values()))
    with pytest.raises(ValueError, match="parser='bisenet'"):
        S.config_for("smoke", parser="unet", parser_checkpoint=str(tmp_path / "79999_iter.pth"))


def test_miou_difference_is_paired_over_the_same_faces():
    faces = SynthFaces("test", size=32, n=24, seed=0, n_identities=3)
    masks = faces.batch(torch.arange(24))["mask"]
    perfect = S.parser_miou(_LookupParser(masks), 32, n=24, batch_size=10)
    shifted = S.parser_miou(_LookupParser(masks, shift=2), 32, n=24, batch_size=10)
    d = C.miou_difference(perfect, shifted)
    assert d.estimate == pytest.approx(perfect["miou"] - shifted["miou"]) and d.estimate > 0 and 0 < d.se < d.estimate
    assert d.low > 0 and C.verdict(d) == "reproduced" and C.verdict(d, better="lower") == "contradicted"
    assert len(perfect["per_face_miou"]) == 24 and min(perfect["per_face_miou"]) == pytest.approx(1.0)
    same = C.miou_difference(perfect, perfect)
    assert (same.estimate, same.se) == (0.0, 0.0) and C.verdict(same) == "inconclusive"
    with pytest.raises(ValueError, match="different test faces"):
        C.miou_difference(perfect, S.parser_miou(_LookupParser(masks), 32, n=20, batch_size=10))
