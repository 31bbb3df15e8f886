"""The hierarchical GAN of Bodur et al.: forward pass, losses, and where the gradients go (Eq. 9)."""
import pytest
import torch
import torch.nn.functional as F

from faceedit_nb import seg_hierarchical as S
from faceedit_nb.data import SynthFaces


def _batch(cfg, n=4):
    b = SynthFaces("train", size=cfg.image_size, n=16).batch(torch.arange(n))
    lab = b["expression"]
    return b, lab, F.one_hot(lab, 8).float(), F.one_hot((lab + 3) % 8, 8).float(), (lab + 3) % 8


def _grad_norm(module):
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("end_to_end", [True, False])
def test_end_to_end_decides_whether_the_parser_learns(end_to_end):
    torch.manual_seed(0)
    cfg = S.config_for("smoke", end_to_end=end_to_end)
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
    cfg = S.config_for("smoke")
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
