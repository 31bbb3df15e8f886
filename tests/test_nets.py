"""The baseline networks: official parameter counts and layouts, shapes, conditioning, GANimation's composite."""
from __future__ import annotations

import pytest
import torch

from faceedit_nb.nets import attgan, ganimation, stargan


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- parameter counts, derived by hand from the official architectures (reference-code.md) ----------------
def conv(c_in, c_out, k, bias):
    return c_in * c_out * k * k + (c_out if bias else 0)


def affine_norm(c):  # InstanceNorm2d(affine=True) or BatchNorm2d: weight + bias
    return 2 * c


def stargan_g_count(conv_dim=64, c_dim=5, repeat_num=6, heads=((3, 7),)):
    n = conv(3 + c_dim, conv_dim, 7, False) + affine_norm(conv_dim)
    d = conv_dim
    for _ in range(2):
        n += conv(d, 2 * d, 4, False) + affine_norm(2 * d)
        d *= 2
    n += repeat_num * 2 * (conv(d, d, 3, False) + affine_norm(d))
    for _ in range(2):
        n += conv(d, d // 2, 4, False) + affine_norm(d // 2)
        d //= 2
    return n + sum(conv(d, c_out, k, False) for c_out, k in heads)


def stargan_d_count(image_size=128, conv_dim=64, c_dim=5, repeat_num=6):
    n, d = conv(3, conv_dim, 4, True), conv_dim
    for _ in range(1, repeat_num):
        n += conv(d, 2 * d, 4, True)
        d *= 2
    return n + conv(d, 1, 3, False) + conv(d, c_dim, image_size // 2 ** repeat_num, False)


def attgan_g_count(enc_dim=64, dec_dim=64, layers=5, n_attrs=13, shortcut=1, inject=1, max_dim=1024):
    enc = [min(enc_dim * 2 ** i, max_dim) for i in range(layers)]
    n, c_in = 0, 3
    for c in enc:
        n += conv(c_in, c, 4, False) + affine_norm(c)
        c_in = c
    c_in += n_attrs
    for i in range(layers - 1):
        c = min(dec_dim * 2 ** (layers - i - 1), max_dim)
        n += conv(c_in, c, 4, False) + affine_norm(c)
        c_in = c + (enc[layers - 2 - i] if i < shortcut else 0) + (n_attrs if i < inject else 0)
    return n + conv(c_in, 3, 4, True)


def attgan_d_count(dim=64, layers=5, fc_dim=1024, n_attrs=13, img_size=128, max_dim=1024):
    n, c_in = 0, 3
    for i in range(layers):
        c = min(dim * 2 ** i, max_dim)
        n += conv(c_in, c, 4, False) + affine_norm(c)
        c_in = c
    feat = c_in * (img_size // 2 ** layers) ** 2
    fc = lambda a, b: a * b + b  # noqa: E731
    return n + fc(feat, fc_dim) + fc(fc_dim, 1) + fc(feat, fc_dim) + fc(fc_dim, n_attrs)


OFFICIAL = {  # (ours, derived by hand, official figure)
    "stargan G": (lambda: stargan.Generator(conv_dim=64, c_dim=5, repeat_num=6), stargan_g_count(), 8_430_528),
    "stargan D": (lambda: stargan.Discriminator(image_size=128, conv_dim=64, c_dim=5, repeat_num=6),
                  stargan_d_count(), 44_762_048),
    "ganimation G": (lambda: ganimation.Generator(conv_dim=64, c_dim=17, repeat_num=6),
                     stargan_g_count(c_dim=17, heads=((3, 7), (1, 7))), 8_471_296),
    "ganimation D": (lambda: ganimation.Discriminator(image_size=128, conv_dim=64, c_dim=17, repeat_num=6),
                     stargan_d_count(c_dim=17), 44_860_352),
    "attgan G": (lambda: attgan.Generator(), attgan_g_count(), 43_459_203),
    "attgan D": (lambda: attgan.Discriminator(), attgan_d_count(), 44_718_990),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_parameter_counts_equal_the_official_ones(name):
    build, derived, official = OFFICIAL[name]
    assert derived == official, f"hand derivation of {name} gives {derived:,}, not {official:,}"
    assert n_params(build()) == official


def test_stargan_state_dict_keys_follow_the_official_layout():
    """Official CelebA checkpoints load: main.<i> indices as in yunjey/stargan, conv1 / conv2 heads."""
    G = stargan.Generator(conv_dim=8, c_dim=5, repeat_num=2)
    keys = set(G.state_dict())
    want = set()
    for i in (0, 3, 6):  # stem + two down-samplings: conv, IN, ReLU
        want |= {f"main.{i}.weight", f"main.{i + 1}.weight", f"main.{i + 1}.bias", f"main.{i + 1}.running_mean",
                 f"main.{i + 1}.running_var", f"main.{i + 1}.num_batches_tracked"}
    for r in (9, 10):
        for j in (0, 3):
            want.add(f"main.{r}.main.{j}.weight")
        for j in (1, 4):
            want |= {f"main.{r}.main.{j}.{s}" for s in ("weight", "bias", "running_mean", "running_var",
                                                          "num_batches_tracked")}
    for i in (11, 14):  # up-samplings
        want |= {f"main.{i}.weight", f"main.{i + 1}.weight", f"main.{i + 1}.bias", f"main.{i + 1}.running_mean",
                 f"main.{i + 1}.running_var", f"main.{i + 1}.num_batches_tracked"}
    want.add("main.17.weight")
    assert keys == want
    D = stargan.Discriminator(image_size=32, conv_dim=8, c_dim=5, repeat_num=3)
    assert set(D.state_dict()) == {"main.0.weight", "main.0.bias", "main.2.weight", "main.2.bias", "main.4.weight",
                                   "main.4.bias", "conv1.weight", "conv2.weight"}


# --- shapes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64, 128])
def test_stargan_shapes_and_depth_rule(size):
    depth = stargan.default_d_repeat(size)
    assert 2 ** (depth + 1) == size
    G, D = stargan.Generator(8, 8, 1), stargan.Discriminator(size, 4, 8, depth)
    x, c = torch.rand(2, 3, size, size) * 2 - 1, torch.eye(8)[:2]
    y = G(x, c)
    assert y.shape == x.shape and y.abs().max() <= 1
    src, cls = D(y)
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 8)


def test_discriminator_refuses_a_depth_the_image_cannot_take():
    with pytest.raises(ValueError, match="default_d_repeat"):
        stargan.Discriminator(image_size=48, conv_dim=4, c_dim=3, repeat_num=6)
    with pytest.raises(ValueError, match="power of two"):
        stargan.default_d_repeat(100)


def test_label_shape_errors_are_clear():
    G = stargan.Generator(4, 5, 1)
    with pytest.raises(ValueError, match="labels must be batch x classes"):
        G(torch.zeros(2, 3, 32, 32), torch.zeros(5))
    A = attgan.Generator(4, 4, 3, 13, img_size=32, max_dim=16)
    with pytest.raises(ValueError, match="attributes must be 2 x 13"):
        A(torch.zeros(2, 3, 32, 32), torch.zeros(2, 5))


@pytest.mark.parametrize("make, labels", [(lambda: stargan.Generator(4, 5, 1), 5),
                                          (lambda: ganimation.Generator(4, 17, 1), 17)])
def test_generators_refuse_a_size_they_cannot_give_back(make, labels):
    """Two stride-2 downsamplings: a 50 px face came back at 48 px, silently; now an error naming the input
    size, what it would have become and the sizes that work (multiples of 2**2)."""
    G = make()
    with pytest.raises(ValueError) as err:
        G(torch.zeros(1, 3, 50, 50), torch.zeros(1, labels))
    msg = str(err.value)
    assert "got 50 x 50 px" in msg and "come back as 48 x 48" in msg
    assert "multiple of 4 (2**2" in msg and "48 x 48 or 52 x 52 px" in msg
    with pytest.raises(ValueError, match="got 64 x 62 px"):
        G(torch.zeros(1, 3, 64, 62), torch.zeros(1, labels))
    out = G(torch.zeros(1, 3, 52, 48), torch.zeros(1, labels))  # multiples of 4 that are no power of two
    assert (out[0] if isinstance(out, tuple) else out).shape[-2:] == (52, 48)


def test_ganimation_and_attgan_shapes():
    G, D = ganimation.Generator(8, 17, 1), ganimation.Discriminator(64, 4, 17, 5)
    x, y = torch.rand(3, 3, 64, 64) * 2 - 1, torch.rand(3, 17)
    color, attention = G(x, y)
    assert color.shape == x.shape and attention.shape == (3, 1, 64, 64)
    src, aus = D(x)
    assert src.shape == (3, 1, 2, 2) and aus.shape == (3, 17)
    A = attgan.Generator(8, 8, 4, 13, img_size=64, max_dim=32)
    B = attgan.Discriminator(8, 4, 16, 13, img_size=64, max_dim=32)
    a = torch.randint(0, 2, (3, 13)).float()
    zs = A.encode(x)
    assert [z.shape[-1] for z in zs] == [32, 16, 8, 4]
    out = A.decode(zs, attgan.signed_attributes(a))
    assert out.shape == x.shape
    adv, cls = B(out)
    assert adv.shape == (3, 1) and cls.shape == (3, 13)


# --- conditioning ---------------------------------------------------------------------------------------
def test_stargan_target_and_difference_conditioning():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    c_org, c_trg = torch.eye(5)[[0, 1, 2, 3]], torch.eye(5)[[1, 1, 4, 0]]
    Gt = stargan.Generator(8, 5, 1, condition="target").eval()
    Gd = stargan.Generator(8, 5, 1, condition="difference").eval()
    Gd.load_state_dict(Gt.state_dict())
    with torch.no_grad():
        assert torch.equal(Gt.edit(x, c_org, c_trg), Gt(x, c_trg))
        assert torch.equal(Gd.edit(x, c_org, c_trg), Gd(x, c_trg - c_org))
        assert torch.equal(Gd.edit(x, c_org, c_org), Gd(x, torch.zeros(4, 5)))  # no edit = zero condition
        # sample 1 keeps its label: only the difference generator sees "no change"
        assert not torch.equal(Gd.edit(x, c_org, c_trg)[1], Gt.edit(x, c_org, c_trg)[1])
    assert set(stargan.condition_vector(c_org, c_trg, "difference").unique().tolist()) == {-1.0, 0.0, 1.0}
    with pytest.raises(ValueError, match="condition must be one of"):
        stargan.Generator(8, 5, 1, condition="relative")


def test_attgan_signed_labels_difference_and_test_intensity():
    a = torch.tensor([[0, 1, 1, 0.]])
    b = torch.tensor([[1, 1, 0, 0.]])
    Gt = attgan.Generator(4, 4, 3, 4, img_size=32, max_dim=16, condition="target", thres_int=0.5)
    Gd = attgan.Generator(4, 4, 3, 4, img_size=32, max_dim=16, condition="difference", thres_int=0.5)
    assert Gt.condition_vector(a, b).tolist() == [[0.5, 0.5, -0.5, -0.5]]
    assert Gd.condition_vector(a, b).tolist() == [[1.0, 0.0, -1.0, 0.0]]  # STGAN: b - a
    assert Gd.condition_vector(a, a).abs().sum() == 0
    # test_int scales only the changed attributes (AttGAN-PyTorch test.py: * test_int / thres_int)
    assert Gt.condition_vector(a, b, test_int=1.0).tolist() == [[1.0, 0.5, -1.0, -0.5]]


# --- GANimation ------------------------------------------------------------------------------------------
def test_ganimation_composite_conventions():
    real, color = torch.full((1, 3, 2, 2), 0.25), torch.full((1, 3, 2, 2), -0.75)
    ones, zeros = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    assert torch.equal(ganimation.composite(real, color, ones, "code"), real)  # A = 1 keeps the input
    assert torch.equal(ganimation.composite(real, color, zeros, "code"), color)
    assert torch.equal(ganimation.composite(real, color, ones, "paper"), color)  # the reverse (arXiv Eq. 1)
    half = ganimation.composite(real, color, ones / 2)
    assert torch.allclose(half, (real + color) / 2)
    with pytest.raises(ValueError, match="convention"):
        ganimation.composite(real, color, ones, "other")


def test_ganimation_masks_lie_in_range_and_animate_composes_them():
    torch.manual_seed(0)
    G = ganimation.init_weights(ganimation.Generator(8, 17, 1))
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 17)
    with torch.no_grad():
        color, attention = G(x, y)
        out, att = G.animate(x, y)
    assert color.min() >= -1 and color.max() <= 1
    assert attention.min() >= 0 and attention.max() <= 1 and attention.std() > 0
    assert torch.allclose(out, attention * x + (1 - attention) * color)
    assert torch.equal(att, attention)
    assert torch.equal(G.edit(x, None, y), out)


def test_ganimation_init_is_normal_002_with_zero_biases():
    torch.manual_seed(0)
    D = ganimation.init_weights(ganimation.Discriminator(64, 64, 17, 5))
    w = D.main[6].weight  # 128 -> 256 conv: 524k weights
    assert abs(w.std().item() - 0.02) < 5e-4 and abs(w.mean().item()) < 5e-4
    assert all(m.bias.abs().sum() == 0 for m in D.main if isinstance(m, torch.nn.Conv2d))


def test_stargan_instance_norm_uses_image_statistics_in_eval_and_freezes_buffers():
    """StarGAN's test() never calls eval(): our eval() gives the training-mode output, buffers untouched."""
    torch.manual_seed(0)
    G = stargan.Generator(8, 5, 1)
    x, c = torch.rand(2, 3, 32, 32) * 2 - 1, torch.eye(5)[:2]
    with torch.no_grad():
        train_out = G.train()(x, c)
        stats = {k: v.clone() for k, v in G.state_dict().items() if "running" in k}
        eval_out = G.eval()(x, c)
    assert torch.allclose(train_out, eval_out, atol=1e-6)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in stats.items())
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in stats.items() if "mean" in k)  # tracked in train
