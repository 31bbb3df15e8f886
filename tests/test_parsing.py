"""Face parsers: tempered softmax (Eq. 1), BiSeNet / UNet shapes, losses, training, backbone weights."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from faceedit_nb import labels as L
from faceedit_nb.data import SynthFaces
from faceedit_nb.nets.parsing import (BiSeNet, UNet, ohem_cross_entropy, parser_loss, soft_part_masks,
                                      tempered_softmax, train_parser)


@pytest.fixture(scope="module")
def faces():
    ds = SynthFaces("train", size=64, n=16, n_identities=8, seed=1)
    return ds.batch(torch.arange(16))


# --- Eq. 1 ------------------------------------------------------------------------------------------------
def test_tempered_softmax_is_a_distribution_over_classes():
    logits = torch.randn(2, 19, 5, 7)
    for t in (0.1, 1.0, 10.0):
        m = tempered_softmax(logits, t)
        assert m.shape == logits.shape and (m >= 0).all()
        assert torch.allclose(m.sum(1), torch.ones(2, 5, 7), atol=1e-5)


def test_low_temperature_approaches_the_one_hot_argmax_and_high_flattens():
    torch.manual_seed(0)
    logits = torch.randn(4, 19, 6, 6) * 3
    onehot = F.one_hot(logits.argmax(1), 19).permute(0, 3, 1, 2).float()
    logits = logits + onehot  # the arg-max leads by at least 1
    errors = [float((tempered_softmax(logits, t) - onehot).abs().max()) for t in (1.0, 0.1, 0.01, 0.001)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3
    flat = tempered_softmax(logits, 1e4)
    assert float((flat - 1 / 19).abs().max()) < 1e-3
    assert float((tempered_softmax(logits, 1.0) - 1 / 19).abs().max()) > 0.1


def test_tempered_softmax_passes_gradients_and_rejects_bad_temperatures():
    logits = torch.randn(1, 19, 4, 4, requires_grad=True)
    mask = tempered_softmax(logits, 0.5)
    (mask[:, 3] * torch.randn(1, 4, 4)).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            tempered_softmax(logits, bad)


def test_soft_part_masks_sum_the_classes_of_each_local_part(faces):
    onehot = F.one_hot(faces["mask"], 19).permute(0, 3, 1, 2).float() * 50  # confident logits
    parts = soft_part_masks(onehot, temperature=1.0)
    assert parts.shape == (16, 4, 64, 64)
    hard = L.map_mask(faces["mask"], "local_parts")
    for p in range(4):
        assert torch.equal(parts[:, p] > 0.5, hard == p + 1)
    with pytest.raises(ValueError, match="19-class"):
        soft_part_masks(torch.zeros(1, 5, 8, 8))


# --- networks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [64, 128])
def test_bisenet_heads_are_upsampled_to_the_input(size):
    for spatial_path in ("resnet", "conv"):
        net = BiSeNet(spatial_path=spatial_path).eval()
        with torch.no_grad():
            heads = net.heads(torch.zeros(2, 3, size, size))
            out = net(torch.zeros(2, 3, size, size))
        assert len(heads) == 3 and all(h.shape == (2, 19, size, size) for h in heads)
        assert torch.equal(out, heads[0])
    with pytest.raises(ValueError, match="spatial_path"):
        BiSeNet(spatial_path="none")


@pytest.mark.parametrize("size", [64, 128])
def test_unet_keeps_the_resolution(size):
    net = UNet(base=4, depth=4).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, size, size)).shape == (2, 19, size, size)
    assert len(net.heads(torch.zeros(1, 3, size, size))) == 1
    with pytest.raises(ValueError, match="multiple of 16"):
        net(torch.zeros(1, 3, 40, 40))


def test_unet_default_is_the_papers_width():
    net = UNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(c.out_channels for c in convs) == 1024 and convs[0].out_channels == 64


# --- losses -----------------------------------------------------------------------------------------------
def test_ohem_keeps_the_hard_pixels():
    target = torch.zeros(1, 1, 100, dtype=torch.long)
    logits = torch.zeros(1, 2, 1, 100)
    logits[0, 0, 0, :60] = 10.0    # 60 easy pixels (p ~ 1)
    logits[0, 1, 0, 60:] = 2.0     # 40 hard pixels (p = 1 / (1 + e^2) < 0.7)
    per_pixel = F.cross_entropy(logits, target, reduction="none").flatten()
    assert torch.isclose(ohem_cross_entropy(logits, target), per_pixel[60:].mean())
    # only 2 hard pixels, fewer than 1/16 of 100: the 6 hardest count
    logits[0, 1, 0, 62:] = -10.0
    per_pixel = F.cross_entropy(logits, target, reduction="none").flatten()
    assert torch.isclose(ohem_cross_entropy(logits, target), per_pixel.topk(6).values.mean())
    assert ohem_cross_entropy(logits, target) > F.cross_entropy(logits, target)


def test_parser_loss_sums_the_heads_and_offers_plain_ce():
    logits = torch.randn(2, 19, 8, 8)
    target = torch.randint(19, (2, 8, 8))
    one = parser_loss(logits, target)
    assert torch.isclose(parser_loss((logits, logits, logits), target), 3 * one)
    assert torch.isclose(parser_loss(logits, target, kind="ce"), F.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="kind"):
        parser_loss(logits, target, kind="dice")


# --- training ---------------------------------------------------------------------------------------------
def _loss_on(net, faces):
    """Cross-entropy with batch statistics (after a few steps BN's running averages are still warming up)."""
    net.train()
    with torch.no_grad():
        loss = float(parser_loss(net.heads(faces["image"]), faces["mask"], kind="ce"))
    net.eval()
    return loss


@pytest.mark.parametrize("make, steps, batch, lr", [(lambda: UNet(base=8, depth=3), 30, 8, 1e-2),
                                                     (lambda: BiSeNet(), 8, 4, 3e-3)], ids=["unet", "bisenet"])
def test_a_few_training_steps_reduce_the_loss(make, steps, batch, lr, faces):
    torch.manual_seed(0)
    net = make()
    before = _loss_on(net, faces)
    history = train_parser(net, {"image": faces["image"], "mask": faces["mask"]}, steps=steps,
                           batch_size=batch, lr=lr, seed=0)
    assert len(history) == steps and all(torch.isfinite(torch.tensor(history)))
    assert _loss_on(net, faces) < 0.8 * before
    assert not net.training


def test_train_parser_reads_synthfaces_and_datasets_of_sample_dicts():
    ds = SynthFaces("train", size=32, n=8, n_identities=4)
    for source in (ds, torch.utils.data.Subset(ds, range(8))):
        history = train_parser(UNet(base=4, depth=2), source, steps=2, batch_size=4, seed=0)
        assert len(history) == 2
    with pytest.raises(KeyError, match="mask"):
        train_parser(UNet(base=4, depth=2), {"image": torch.zeros(4, 3, 32, 32)}, steps=1)
    with pytest.raises(ValueError, match="optimizer"):
        train_parser(UNet(base=4, depth=2), ds, steps=1, optimizer="lbfgs")


def test_same_seed_same_training():
    ds = SynthFaces("train", size=32, n=8, n_identities=4)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(train_parser(UNet(base=4, depth=2), ds, steps=3, batch_size=4, seed=5))
    assert runs[0] == runs[1]


# --- weights from local files -----------------------------------------------------------------------------
def test_bisenet_loads_a_user_resnet18_file(tmp_path):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)  # stands in for ImageNet weights
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    net = BiSeNet(backbone_weights=path)
    for k, v in net.cp.resnet.state_dict().items():
        assert torch.equal(v, resnet.state_dict()[k]), k
    other = BiSeNet()
    assert not torch.equal(other.cp.resnet.conv1.weight, resnet.conv1.weight)
    other.load_backbone(str(path))  # also as a string, after construction
    assert torch.equal(other.cp.resnet.conv1.weight, resnet.conv1.weight)


def test_bisenet_backbone_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*Fix: pass the local path of a torchvision ResNet-18"):
        BiSeNet(backbone_weights=tmp_path / "missing.pth")
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="does not match the network; unexpected keys"):
        BiSeNet().load_backbone(tmp_path / "r34.pth")
    wide = torchvision.models.resnet18(weights=None).state_dict()
    wide["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    torch.save(wide, tmp_path / "wide.pth")
    with pytest.raises(ValueError, match="shape mismatches"):
        BiSeNet().load_backbone(tmp_path / "wide.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights_only=True"):
        BiSeNet().load_backbone(tmp_path / "junk.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        BiSeNet().load_backbone(tmp_path / "list.pth")


def test_face_parsing_checkpoints_are_mapped_to_the_canonical_order(tmp_path):
    torch.manual_seed(0)
    ours = BiSeNet().eval()
    theirs = {k: v.clone() for k, v in ours.state_dict().items()}
    for head in ("conv_out", "conv_out16", "conv_out32"):  # their row j is BiSeNet class j
        theirs[f"{head}.conv_out.weight"] = theirs[f"{head}.conv_out.weight"][L.FROM_BISENET]
    torch.save({f"module.{k}": v for k, v in theirs.items()}, tmp_path / "79999_iter.pth")
    loaded = BiSeNet().load_face_parsing(tmp_path / "79999_iter.pth").eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x), ours(x), atol=1e-5)
    with pytest.raises(ValueError, match="spatial_path='resnet'"):
        BiSeNet(spatial_path="conv").load_face_parsing(tmp_path / "79999_iter.pth")
